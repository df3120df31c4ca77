"""Bad corpus input (issue 6): a seeded fuzz set of 500+ broken or hostile corpus files. Each one
either ingests cleanly or is rejected with a CorpusError naming the file (and the line, where the
case knows it); never another exception. Every rejected case and a sample of every category's
accepted ones go through a real ingest into a store that already holds a known-good corpus, and
the store is compared before and after: nothing lost, nothing half-written."""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict

import pytest
from conftest import make_settings
from reliability.common import Snapshot, differences, expected_after, snapshot, write_result
from reliability.corpus_cases import (
    CATEGORIES,
    Case,
    base_corpus,
    build_cases,
    check_loading,
    limits,
    materialise,
    rejection_problems,
)

from assistant.corpus import load_papers
from assistant.errors import AssistantError
from assistant.ingest import ingest

CASES = build_cases(seed=6)
ACCEPTED_PER_CATEGORY = 6  # accepted cases per category that go through a full ingest
MAX_SAMPLE_PAPERS = 40  # keeps the full-ingest sample fast (the 300-paper cases load only)


def test_fuzz_set_is_large_seeded_and_covers_every_category():
    assert len(CASES) >= 500
    counts = Counter(c.category for c in CASES)
    assert len(counts) == len(CATEGORIES)
    assert min(counts.values()) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    again = build_cases(seed=6)
    assert [c.files for c in again] == [c.files for c in CASES]  # deterministic


@pytest.mark.slow  # seconds, not milliseconds: left out of `make test-fast`
def test_every_case_loads_cleanly_or_is_rejected_naming_file_and_line(tmp_path):
    result = check_loading(CASES, tmp_path)
    write_result("corpus_load", {"seed": 6, **result})
    assert not result["failures"], "\n".join(result["failures"][:30])


def sample_for_ingest(seed: int = 6) -> list[Case]:
    """Every case a validator should reject, plus a seeded sample of every category's others."""
    rng = random.Random(seed)
    chosen = []
    for category in dict.fromkeys(c.category for c in CASES):
        members = [c for c in CASES if c.category == category]
        rejected = [c for c in members if c.expect == "reject"]
        others = [
            c
            for c in members
            if c.expect != "reject" and sum(d.count(b"\n") for _, d in c.files) <= 2 * MAX_SAMPLE_PAPERS + 10
        ]
        chosen += rejected + rng.sample(others, min(ACCEPTED_PER_CATEGORY, len(others)))
    return chosen


@pytest.mark.slow
def test_ingesting_bad_files_never_loses_or_half_writes_the_store(tmp_path):
    settings = make_settings(tmp_path / "store", embed_backend="hash")
    base = tmp_path / "base.txt"
    base.write_text(base_corpus(), encoding="utf-8")
    ingest(settings, [base], progress=False)
    before = snapshot(settings)
    base_papers = dict(before.papers)
    assert len(base_papers) == 6 and not before.dirty

    per_category: dict[str, Counter[str]] = defaultdict(Counter)
    failures = []
    started = time.perf_counter()
    for case in sample_for_ingest():
        paths = materialise(case, tmp_path / "cases")
        case_settings = settings.model_copy(update=case.limits) if case.limits else settings
        stats = per_category[case.category]
        stats["ingested"] += 1
        try:
            summary = ingest(case_settings, paths, progress=False)
        except AssistantError as exc:
            problems = rejection_problems(case, paths, exc)
            want: Snapshot = before
            stats["rejected"] += 1
        except Exception as exc:  # anything else is a failure of the defence
            problems = [f"{type(exc).__name__}: {exc}"]
            want = before
        else:
            problems = [] if case.expect != "reject" else ["a file that must be rejected was ingested"]
            accepted = load_papers(paths, **limits(case)).papers
            want = expected_after(before, accepted, settings)
            stats["accepted"] += 1
            stats["papers written"] += summary.papers_added + summary.papers_updated
            if summary.papers_total != len(want.papers) or summary.chunks_total != want.n_chunks:
                problems.append(
                    f"summary says {summary.papers_total}/{summary.chunks_total}, "
                    f"store should hold {len(want.papers)}/{want.n_chunks}"
                )
        after = snapshot(settings)
        problems += differences(after, want)
        lost = [pid for pid in base_papers if pid not in after.papers]
        if lost:
            problems.append(f"{len(lost)} base paper(s) lost")
        stats["store checks passed" if not problems else "store checks failed"] += 1
        if problems:
            failures.append(f"{case.id}: {'; '.join(problems)}")
        before = after
    write_result(
        "corpus_ingest",
        {
            "base_papers": len(base_papers),
            "final_papers": len(before.papers),
            "final_chunks": before.n_chunks,
            "seconds": round(time.perf_counter() - started, 2),
            "categories": {k: dict(v) for k, v in per_category.items()},
            "failures": failures,
        },
    )
    assert not failures, "\n".join(failures[:30])
