"""`pip install .` (not editable) gives a working `assistant`: the wheel is built from this checkout,
installed into a fresh virtual environment, and used from a folder outside the checkout: prompts
and bundled data come from the wheel, the default store goes to the per-user data folder, and the
test doubles (assistant.testing) are not in it.

Nothing is downloaded: the wheel is built without build isolation and installed with --no-deps;
the fresh environment sees the dependencies already installed for the tests through a .pth file
(which adds their folder but runs none of its .pth files, so not an editable install of this
checkout either)."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("pyproject.toml", "README.md", "assistant", "prompts", "data")
PAPERS = [
    {"title": "AlphaNet: Liver Tumour Segmentation",
     "abstract": "AlphaNet segments liver tumours in CT with 91.5% Dice on 400 scans."},
    {"title": "BetaSeg: Retinal Vessel Segmentation",
     "abstract": "BetaSeg segments retinal vessels in fundus photographs with 82.3% Dice."},
]


def _run(cmd: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
         ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{cmd}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a copy, so the checkout gets no build/ or *.egg-info.
    source = tmp / "source"
    for name in SHIPPED:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy(ROOT / name, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "--disable-pip-version-check", "-q", "-w", tmp / "dist", source], cwd=tmp)
    (wheel,) = (tmp / "dist").glob("*.whl")

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp)
    python = venv / "bin" / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=tmp).stdout.strip())
    (purelib / "test-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check",
          "-q", wheel], cwd=tmp)
    return {"tmp": tmp, "wheel": wheel, "venv": venv, "python": python, "purelib": purelib}


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ASSISTANT_", "OPENAI_")) and k != "PYTHONPATH"}
    return env | {"HF_HUB_OFFLINE": "1", "XDG_DATA_HOME": str(tmp / "user-data"), "HOME": str(tmp)}


def test_the_wheel_holds_every_module_and_the_bundled_files(installed: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "assistant").rglob("*.py")}
    doubles = {m for m in modules if m.startswith("assistant/testing/")}
    assert doubles and not doubles & names  # the test doubles are not part of the product
    assert modules - doubles - names == set()  # a subpackage missing from pyproject.toml fails here
    for folder in ("prompts", "data"):
        for path in (ROOT / folder).iterdir():
            if path.suffix in (".txt", ".md"):
                assert f"assistant/bundled/{folder}/{path.name}" in names


def test_ingest_ask_and_status_from_outside_the_checkout(installed: dict[str, Path]) -> None:
    tmp, venv = installed["tmp"], installed["venv"]
    work = tmp / "elsewhere"
    work.mkdir()
    env = _env(tmp)
    # The installed copy is the one imported, and it finds its files inside the wheel.
    where = _run([installed["python"], "-c",
                  "import assistant.resources as r; print(r.__file__); print(r.prompts_dir()); "
                  "print(r.bundled_corpus()); print(r.disease_names()); print(r.default_store_dir())"],
                 cwd=work, env=env).stdout.split()
    purelib = str(installed["purelib"])
    assert all(line.startswith(purelib) for line in where[:4]), where
    assert all(Path(line).exists() for line in where[:4]), where
    assert where[4] == str(tmp / "user-data" / "paper-assistant" / "vectorstore")

    assistant = venv / "bin" / "assistant"
    corpus = work / "papers.jsonl"
    corpus.write_text("".join(json.dumps(p) + "\n" for p in PAPERS), encoding="utf-8")
    ingested = json.loads(_run([assistant, "ingest", corpus, "--json"], cwd=work, env=env).stdout)
    assert ingested["papers_total"] == 2
    store = tmp / "user-data" / "paper-assistant" / "vectorstore"
    assert (store / "chroma.sqlite3").is_file()  # the per-user store, not site-packages
    assert not (installed["purelib"] / "vectorstore").exists()

    answer = json.loads(_run([assistant, "ask", "What Dice does AlphaNet reach?", "--json"],
                             cwd=work, env=env).stdout)
    assert not answer["abstained"] and "91.5%" in answer["answer"]
    assert answer["citations"][0]["title"] == PAPERS[0]["title"]

    status = _run([assistant, "status"], cwd=work, env=env).stdout
    assert f"store: {store}" in status and "papers: 2" in status and "None" not in status
