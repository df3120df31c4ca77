"""A local store's manifest (embedding model, chunking, generation, clean or dirty) and its paper
and chunk counts, copied to `manifest.json` in the store's folder whenever an ingest changes them,
so that `assistant status` reads them without loading Chroma, torch or a model. Chroma's
collection metadata stays the source of truth (store.py); this file is only a copy for reading."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FILE = "manifest.json"


def save(store_dir: Path, data: dict[str, Any]) -> None:
    """Write the copy atomically: a reader never sees half a file."""
    tmp = store_dir / f".{FILE}.tmp"
    tmp.write_text(json.dumps(data, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, store_dir / FILE)


def load(store_dir: Path) -> dict[str, Any] | None:
    """The copy, or None when there is none (a store from before it existed) or it is unreadable."""
    try:
        data = json.loads((store_dir / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
