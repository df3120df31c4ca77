"""The benchmark helpers run end to end on a tiny corpus with the fake embedder (bench/smoke.py,
run as a program: the tests do not import bench code). No timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SMOKE = Path(__file__).resolve().parent.parent / "bench" / "smoke.py"


def _smoke(work: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, str(SMOKE), str(work), *args], capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("bench smoke: ok")


@pytest.mark.slow  # seconds, not milliseconds: left out of `make test-fast`
def test_synthetic_papers_are_reproducible_and_spare_the_gold_papers(tmp_path: Path) -> None:
    _smoke(tmp_path, "--quick")


@pytest.mark.slow
def test_bench_pipeline_on_a_tiny_corpus(tmp_path: Path) -> None:
    _smoke(tmp_path)
