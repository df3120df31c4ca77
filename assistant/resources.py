"""Files the package reads at run time, found the same way in a checkout and in an installed wheel.

They live in the checkout's top-level `prompts/` and `data/` folders; pyproject.toml maps those two
folders into the wheel as `assistant/bundled/prompts` and `assistant/bundled/data` (setuptools
`package-dir`), so `pip install .` ships them. `importlib.resources` finds the installed copy; a
checkout (editable install, or PYTHONPATH) has no `assistant/bundled/` and uses the folders
themselves. One function per resource, so nothing else knows where they are.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def _folder(name: str) -> Path:
    installed = files("assistant") / "bundled" / name
    if installed.is_dir():
        # A wheel is installed unpacked (pip never imports from a zip), so this is a real folder.
        return Path(str(installed))
    return CHECKOUT / name


def prompts_dir() -> Path:
    """The prompt templates (`*.txt`, one per prompt)."""
    return _folder("prompts")


def bundled_corpus() -> Path:
    """The 215 medical-AI abstracts ingested when no corpus is given (source: data/README.md)."""
    return _folder("data") / "medical-ai-papers.txt"


def disease_names() -> Path:
    """Disease Ontology names, one per line (source: data/README.md)."""
    return _folder("data") / "disease-names.txt"


@cache
def checkout_root() -> Path | None:
    """The source checkout this package runs from, or None when it is installed (site-packages)."""
    if (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "prompts").is_dir():
        return CHECKOUT
    return None


def default_store_dir() -> Path:
    """The checkout's `vectorstore/` when run from a checkout; else a per-user data directory
    (e.g. ~/.local/share/paper-assistant/vectorstore): never inside site-packages."""
    root = checkout_root()
    if root is not None:
        return root / "vectorstore"
    from platformdirs import user_data_path

    return user_data_path("paper-assistant", appauthor=False) / "vectorstore"


def default_onnx_dir() -> Path:
    """Per-user cache of the embedding model's ONNX export: derived data, safe to delete."""
    from platformdirs import user_cache_path

    return user_cache_path("paper-assistant", appauthor=False) / "onnx"
