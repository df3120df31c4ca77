"""The benchmark helpers end to end on a tiny corpus with the fake embedder: they produce every
figure the report needs. No timing is checked (speed is what bench/run.py measures).
tests/test_bench_smoke.py runs this as a program, so the tests do not import bench code.

    .venv/bin/python bench/smoke.py WORK_DIR [--quick]     (--quick: the synthetic-paper check only)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import ingest_bench, latency, report, run, synthetic
from bench.common import load_dev_questions, make_settings, summary_ms


def check_synthetic_papers(work: Path) -> None:
    """Synthetic papers are reproducible and spare the gold papers of the dev questions."""
    settings = make_settings(work / "store", embed_backend="hash")
    bank = synthetic.sentence_bank(work, settings)
    assert synthetic.synthetic_paper(bank, 7) == synthetic.synthetic_paper(bank, 7)
    assert synthetic.synthetic_paper(bank, 7) != synthetic.synthetic_paper(bank, 8)
    donors = {s for d in bank.donors for s in bank.paper_sentences[d]}
    for i in range(50):
        _title, _abstract, chunks = synthetic.synthetic_paper(bank, i)
        assert all(s in donors for chunk in chunks for s in chunk)
    assert len(bank.donors) < len(bank.paper_sentences)  # the dev questions' papers are left out
    assert summary_ms([0.001, 0.003])["max"] == 3.0


def check_pipeline(work: Path) -> None:
    from assistant.engine import Engine

    ing = ingest_bench.run(work / "ingest", n_papers=6, embed_backend="hash")
    assert ing["papers"] == 6 and ing["chunks"] >= 6
    assert ing["ratio_vs_raw"] is not None and ing["ingest_papers_per_s"] > 0

    store_dir = work / "ingest" / "ingest-store"
    settings = make_settings(store_dir, embed_backend="hash")
    bank = synthetic.sentence_bank(work, settings)
    questions = load_dev_questions(3)
    engine = Engine(settings)
    small = latency.measure(engine, questions, label="tiny")
    assert set(small["retrieval_ms"]) == {"ours", "hybrid", "numpy_exact", "llama_index_default"}
    assert small["e2e"]["warm_ms"]["n"] == 3

    scale_dir = work / "scale"
    synthetic.copy_store(store_dir, scale_dir)
    build = synthetic.grow_store(make_settings(scale_dir, embed_backend="hash"), bank, 40, batch=16)
    assert build["papers"] == 46 and build["synthetic_added"] == 40
    big = latency.measure(Engine(make_settings(scale_dir, embed_backend="hash")), questions,
                          label="tiny+40", e2e=False)
    assert big["papers"] == 46 and big["chunks"] > small["chunks"]

    app = {"ready_s": 1.0, "peak_rss_mb": 100.0, "rss_ready_mb": 90.0, "api_answer_ms": summary_ms([])}
    assert build["lexical_write_s"] >= 0 and build["lexical_disk_bytes"] > 0
    sizes = [
        {"synthetic": 0, "papers": 6, "chunks": small["chunks"], "disk_mb": 1.0, "lexical_mb": 0.1,
         "build": None, "engine_load_s": 0.1, "latency": small, "app": app},
        {"synthetic": 40, "papers": 46, "chunks": big["chunks"], "disk_mb": 2.0, "lexical_mb": 0.2,
         "build": build, "engine_load_s": 0.1, "latency": big, "app": app},
    ]
    results = {"mode": "quick", "ingest": ing, "sizes": sizes}
    results["per_10k"] = run.per_10k(sizes, ing)
    results["extrapolation"] = run.extrapolate(results["per_10k"])
    assert results["extrapolation"]["36M"]["chunks"] > results["extrapolation"]["1M"]["chunks"]
    head = run.headline(results)
    assert head["recall@10@6"] is not None and "ingest_ratio_vs_raw_embedding" in head
    text = report.summary_text(results)
    assert "Retrieval p95 at 6 papers" in text and "numpy exact" in text
    assert results["per_10k"]["lexical_write_s"] is not None
    assert "Ready UI at 46 papers" in text and "lexical index writes" in text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="an empty working folder")
    parser.add_argument("--quick", action="store_true", help="the synthetic-paper check only")
    args = parser.parse_args()
    check_synthetic_papers(args.work / "synthetic")
    if not args.quick:
        check_pipeline(args.work / "pipeline")
    print("bench smoke: ok")


if __name__ == "__main__":
    main()
