"""Summary statistics shared by the evaluation, the benchmarks and the reliability reports, so
that every percentile in the docs means the same thing."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, q in 0..1: the value at rank round(q * (n - 1)) of the sorted
    values (0.5 is the median of an odd count, 1.0 the maximum); 0.0 for no values."""
    if not values:
        return 0.0
    if not 0 <= q <= 1:
        raise ValueError(f"q must be between 0 and 1, not {q}")
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]
