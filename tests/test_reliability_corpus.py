"""Bad corpus input (issue 6): a seeded fuzz set of 500+ broken or hostile corpus files. Each one
either ingests cleanly or is rejected with a CorpusError naming the file (and the line, where the
case knows it); never another exception. Every rejected case and a sample of every category's
accepted ones go through a real ingest into a store that already holds a known-good corpus, and
the store is compared before and after: nothing lost, nothing half-written."""

from __future__ import annotations

import random
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from conftest import make_settings
from reliability.common import Snapshot, differences, expected_after, snapshot, write_result
from reliability.corpus_cases import CATEGORIES, Case, base_corpus, build_cases

from assistant.corpus import load_papers
from assistant.errors import AssistantError, CorpusError
from assistant.ingest import ingest

CASES = build_cases(seed=6)
ACCEPTED_PER_CATEGORY = 6  # accepted cases per category that go through a full ingest
MAX_SAMPLE_PAPERS = 40  # keeps the full-ingest sample fast (the 300-paper cases load only)


def materialise(case: Case, root: Path) -> list[Path]:
    folder = root / case.id
    folder.mkdir(parents=True)
    paths = []
    for name, data in case.files:
        if name.endswith("/"):
            (folder / name.rstrip("/")).mkdir()
            paths.append(folder / name.rstrip("/"))
        elif "!missing" in name:
            paths.append(folder / name.split("!")[0])
        else:
            (folder / name).write_bytes(data)
            paths.append(folder / name)
    return paths


def limits(case: Case) -> dict[str, int]:
    values = {"max_title_chars": 1_000, "max_abstract_chars": 20_000, "max_bytes": 512 * 1024 * 1024}
    for key, value in case.limits.items():
        values["max_bytes" if key == "max_corpus_bytes" else key] = value
    return values


def rejection_problems(case: Case, paths: list[Path], exc: Exception) -> list[str]:
    """What is wrong with how a case was rejected (empty when the rejection is clear)."""
    if not isinstance(exc, CorpusError):
        return [f"raised {type(exc).__name__}, not CorpusError: {exc}"]
    message = exc.message
    bad = paths[0]
    if case.bad_file:
        bad = next(p for p in paths if p.name == case.bad_file)
    problems = []
    if str(bad) not in message:
        problems.append(f"message does not name {bad.name}: {message!r}")
    if case.line is not None and f"{bad}:{case.line}:" not in message:
        problems.append(f"message does not name line {case.line}: {message!r}")
    if case.fragment and case.fragment.lower() not in message.lower():
        problems.append(f"message does not mention {case.fragment!r}: {message!r}")
    if len(message) > 600 or "Traceback" in message:
        problems.append(f"message is not short and clear: {message[:200]!r}")
    return problems


def test_fuzz_set_is_large_seeded_and_covers_every_category():
    assert len(CASES) >= 500
    counts = Counter(c.category for c in CASES)
    assert len(counts) == len(CATEGORIES)
    assert min(counts.values()) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    again = build_cases(seed=6)
    assert [c.files for c in again] == [c.files for c in CASES]  # deterministic


def test_every_case_loads_cleanly_or_is_rejected_naming_file_and_line(tmp_path):
    per_category: dict[str, Counter[str]] = defaultdict(Counter)
    failures = []
    started = time.perf_counter()
    for case in CASES:
        paths = materialise(case, tmp_path)
        try:
            report = load_papers(paths, **limits(case))
            for paper in report.papers:
                paper.content_hash  # noqa: B018  # must be computable: the text is encodable
        except Exception as exc:
            problems = rejection_problems(case, paths, exc)
            if case.expect == "accept":
                problems.append(f"a valid file was rejected: {exc}")
            outcome = "rejected" if not problems else "bad rejection"
            if re.search(r":\d+:", getattr(exc, "message", "")):
                per_category[case.category]["rejections naming a line"] += 1
        else:
            problems = []
            if case.expect == "reject":
                problems.append(f"accepted {len(report.papers)} paper(s) from a file that must be rejected")
            if not report.papers:
                problems.append("accepted, but no papers")
            for paper in report.papers:
                if not paper.title or not paper.abstract:
                    problems.append(f"empty field in {paper.id}")
            outcome = "accepted" if not problems else "bad acceptance"
            per_category[case.category]["duplicates reported"] += len(report.duplicates)
        per_category[case.category][outcome] += 1
        per_category[case.category]["cases"] += 1
        if problems:
            failures.append(f"{case.id}: {'; '.join(problems)}")
    write_result(
        "corpus_load",
        {
            "seed": 6,
            "cases": len(CASES),
            "seconds": round(time.perf_counter() - started, 2),
            "categories": {k: dict(v) for k, v in per_category.items()},
            "failures": failures,
        },
    )
    assert not failures, "\n".join(failures[:30])


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
