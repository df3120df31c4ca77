"""Parameters fitted on the tune split of the blind question set (bench/fit_answers.py writes
them): per-kind fusion weights, the relevance model's coefficients and thresholds, the quote
model's coefficients. Data, not code: refitting changes this file only."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

FILE = "fitted_params.json"


@lru_cache(maxsize=1)
def fitted_params() -> dict[str, Any]:
    """The fitted parameters, or {} where none were fitted (every user then falls back to its
    settings' defaults)."""
    try:
        text = resources.files("assistant").joinpath(FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return json.loads(text)
