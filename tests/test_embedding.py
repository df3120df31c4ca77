"""The embedder backends: the default onnx one against sentence-transformers, its one-time export,
and its failures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from assistant.embedding import _resolve_model, get_embedder
from assistant.errors import AssistantError
from assistant.onnx_embedder import OnnxEmbedder, exported_model
from assistant.resources import bundled_corpus
from assistant.settings import BUNDLED_EMBED_MODEL
from assistant.testing import make_settings

MODEL_DIR = Path(_resolve_model(BUNDLED_EMBED_MODEL))
SESSION_EXPORTS = Path(os.environ["ASSISTANT_EMBED_ONNX_DIR"])


def corpus_texts(n: int) -> list[str]:
    lines = bundled_corpus().read_text(encoding="utf-8").splitlines()[2:]
    return [f"{title}\n{abstract}" for title, abstract in zip(lines[0:2 * n:2], lines[1:2 * n:2],
                                                             strict=True)]


@pytest.mark.slow
def test_onnx_gives_the_vectors_and_token_counts_of_sentence_transformers(tmp_path: Path) -> None:
    texts = [*corpus_texts(40), "compare SegMamba and Swin SMT", "Dice?", "a " * 600]
    onnx = get_embedder(make_settings(tmp_path / "store"))
    torch = get_embedder(make_settings(tmp_path / "store", embed_backend="sentence-transformers"))
    assert (onnx.dim, onnx.max_tokens) == (torch.dim, torch.max_tokens) == (384, 256)
    a, b = onnx.embed(texts), torch.embed(texts)
    assert a.shape == b.shape == (len(texts), 384) and a.dtype == np.float32
    assert np.abs(a - b).max() < 1e-5
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    # Counting is never truncated: ingest refuses chunks past the window by this count.
    counts = [onnx.count_tokens(t) for t in texts]
    assert counts == [torch.count_tokens(t) for t in texts]
    assert max(counts) > onnx.max_tokens
    assert onnx.embed([]).shape == (0, 384)


@pytest.mark.slow
def test_the_export_is_made_once_and_a_serving_process_never_loads_torch(tmp_path: Path,
                                                                          monkeypatch) -> None:
    cache = tmp_path / "exports"
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from assistant.testing import make_settings
        from assistant.embedding import get_embedder
        settings = make_settings(Path({str(tmp_path / 'store')!r}), embed_onnx_dir=Path({str(cache)!r}))
        vector = get_embedder(settings).embed(["Which papers adapt SAM?"])[0]
        print(len(vector), round(float((vector ** 2).sum()), 4), "torch" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["384", "1.0", "False"]
    exports = list(cache.iterdir())
    assert len(exports) == 1 and exports[0].suffix == ".onnx"  # no partial file left behind

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr("assistant.onnx_embedder.subprocess.run", no_export)
    assert exported_model(MODEL_DIR, cache, 60) == exports[0]
    OnnxEmbedder(MODEL_DIR, BUNDLED_EMBED_MODEL, cache).embed(["reused"])


def copy_model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    shutil.copytree(MODEL_DIR, model)
    return model


def test_a_failed_export_says_why_and_leaves_no_file(tmp_path: Path) -> None:
    model = copy_model(tmp_path)
    (model / "model.safetensors").write_bytes(b"not a weights file")
    cache = tmp_path / "exports"
    with pytest.raises(AssistantError, match="could not export the embedding model") as caught:
        OnnxEmbedder(model, "broken", cache)
    assert "sentence-transformers" in (caught.value.hint or "")
    assert list(cache.iterdir()) == []


def test_unusable_models_and_cache_directories_are_clear_errors(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(AssistantError, match="cannot create") as caught:
        OnnxEmbedder(MODEL_DIR, BUNDLED_EMBED_MODEL, not_a_dir / "exports")
    assert "ASSISTANT_EMBED_ONNX_DIR" in (caught.value.hint or "")

    no_weights = copy_model(tmp_path)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(AssistantError, match="no model weights"):
        OnnxEmbedder(no_weights, "no-weights", tmp_path / "exports")

    (no_weights / "tokenizer.json").unlink()
    with pytest.raises(AssistantError, match=r"no tokenizer\.json"):
        OnnxEmbedder(no_weights, "no-tokenizer", tmp_path / "exports")

    hub_name = make_settings(tmp_path / "store", embed_model="someone/some-model-on-the-hub")
    with pytest.raises(AssistantError, match="local model directory"):
        get_embedder(hub_name)


def test_a_damaged_export_names_the_file_to_delete(tmp_path: Path) -> None:
    cache = tmp_path / "exports"
    cache.mkdir()
    # Where the export of the bundled model would be: a damaged copy is not silently re-exported.
    target = cache / exported_model(MODEL_DIR, SESSION_EXPORTS, 600).name
    target.write_bytes(b"truncated")
    with pytest.raises(AssistantError, match="cannot load the ONNX export") as caught:
        OnnxEmbedder(MODEL_DIR, BUNDLED_EMBED_MODEL, cache)
    assert str(target) in (caught.value.hint or "")


def test_building_the_web_app_imports_neither_torch_nor_scikit_learn() -> None:
    """What the page waits for when an app starts: the engine (and its model) load afterwards, in
    the background, and the stop words of scikit-learn (1.3 s to import) on first use."""
    code = ("import sys\nimport assistant.web.server\n"
            "print([m for m in ('torch', 'sklearn', 'sentence_transformers', 'onnxruntime') "
            "if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
