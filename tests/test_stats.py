"""The one percentile rule (assistant.stats) used by the evaluation, the benchmarks and the
reliability reports."""

from __future__ import annotations

import pytest

from assistant.stats import percentile


def test_nearest_rank_percentiles() -> None:
    assert percentile([], 0.5) == 0.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0  # order of the input does not matter
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.0) == 1.0 and percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0


def test_a_quantile_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError):
        percentile([1.0, 2.0], 95)
