"""Every benchmark of issue 7 in one run, with results in bench/results/<mode>.json and the tables of
docs/PERFORMANCE.md regenerated from them.

    .venv/bin/python bench/run.py --quick     # a few minutes: 215 papers + 10k synthetic abstracts
    .venv/bin/python bench/run.py             # full: up to 100k synthetic abstracts (long; --sizes for more)

At the largest size it also measures (bench/large_store.py, section `largest`) two app replicas on a
Chroma server sharing the lexical index, an ingest of new papers with the real model, and a full
rebuild of the lexical index.

Prints its results as it goes and ends with one JSON line of the headline figures. Timings are
compared within the run (ratios, side by side) because absolute times drift on shared machines.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report
from bench.common import (
    RESULTS,
    ROOT,
    du,
    load_dev_questions,
    log,
    machine,
    make_settings,
    mb,
    warmup_questions,
    write_result,
)

QUICK = {"ingest_papers": 60, "sizes": [10_000], "questions": 30, "app_questions": 5,
         "llm_questions": 15, "scale_out_papers": 40, "scale_out_questions": 10, "new_papers": 100}
FULL = {"ingest_papers": None, "sizes": [10_000, 20_000, 50_000, 100_000], "questions": None,
        "app_questions": 10, "llm_questions": None, "scale_out_papers": 100,
        "scale_out_questions": 30, "new_papers": 1_000}
SECTIONS = ("ingest", "scale", "largest", "llm", "scale_out")


def base_store(work: Path, fresh: bool) -> Path:
    """The bundled corpus ingested with the real model: built once per work directory."""
    from assistant.errors import AssistantError
    from assistant.ingest import ingest
    from assistant.store import PaperStore

    store_dir = work / "base-215"
    settings = make_settings(store_dir)
    if not fresh and (store_dir / "chroma.sqlite3").exists():
        try:
            store = PaperStore(settings)
            store.check_compatible()
            if store.count_papers() and not store.dirty:
                ingest(settings, progress=False)  # no-op when in step; repairs BM25 if not
                return store_dir
        except AssistantError as exc:
            log(f"base store unusable ({exc}); rebuilding")
    log("building the base store (the bundled corpus, real model)")
    ingest(settings, progress=False, rebuild=True)
    return store_dir


def measure_size(store_dir: Path, n_synthetic: int, questions: list[dict[str, Any]],
                 app_questions: list[dict[str, Any]], build: dict[str, Any] | None,
                 work: Path) -> dict[str, Any]:
    from assistant.engine import Engine
    from bench import app_bench, latency

    # No background warm-up here: it would compete with the latency measurement for the CPU.
    settings = make_settings(store_dir, sentence_cache_max_papers=0)
    t = time.perf_counter()
    engine = Engine(settings)
    engine_load_s = time.perf_counter() - t
    row: dict[str, Any] = {
        "synthetic": n_synthetic,
        "papers": engine.store.count_papers(),
        "chunks": engine.store.count_chunks(),
        "engine_load_s": round(engine_load_s, 2),
        "disk_mb": mb(du(store_dir)),
        "lexical_mb": mb(du(settings.lexical_path)),
        "build": build,
    }
    row["load_breakdown_s"] = load_breakdown(engine)
    row["latency"] = latency.measure(engine, questions, label=f"{row['papers']} papers",
                                     warmup=warmup_questions(10 if len(questions) < 50 else 30))
    del engine
    gc.collect()
    if row["papers"] <= make_settings(store_dir).sentence_cache_max_papers:
        row["sentence_warmup"] = measure_warmup(store_dir)
    row["app"] = app_bench.run_app(store_dir, app_questions,
                                   log_path=work / f"app-{n_synthetic}.log")
    return row


def measure_largest(store_dir: Path, n_synthetic: int, questions: list[dict[str, Any]], work: Path,
                    bank: Any, new_papers: int, baseline: Path | None
                    ) -> Iterator[tuple[str, dict[str, Any]]]:
    """The app of an earlier checkout (if given), replicas on a Chroma server, an ingest of new
    papers, a full lexical rebuild (in that order: the last two change the store); each part's
    result as soon as it is measured."""
    from bench import large_store

    parts: list[tuple[str, Any]] = []
    if baseline is not None:
        parts.append(("baseline", lambda: large_store.baseline_app(store_dir, baseline, questions, work)))
    for key, fn in (*parts, ("replicas", lambda: large_store.replicas(store_dir, work, questions)),
                    ("ingest_new", lambda: large_store.ingest_new_papers(
                        store_dir, bank, n_synthetic, new_papers, work)),
                    ("lexical_rebuild", lambda: large_store.time_rebuild(store_dir))):
        try:
            yield key, fn()
        except Exception as exc:  # one failed part must not lose the rest of the run
            log(f"{key} failed: {type(exc).__name__}: {exc}")
            yield key, {"error": f"{type(exc).__name__}: {exc}"}


def load_breakdown(engine: Any) -> dict[str, float]:
    """What the engine's lexical parts cost to open, each once on its own, in the order
    HybridRetriever.refresh opens them (nothing is rebuilt: the index is on disk)."""
    from assistant.lexical import Vocabulary, open_index
    from assistant.name_index import IndexedTitles

    s = engine.settings
    out: dict[str, float] = {}
    t = time.perf_counter()
    index, _ = open_index(s, engine.store)
    out["lexical_index_open"] = time.perf_counter() - t
    t = time.perf_counter()
    Vocabulary(index)
    IndexedTitles(index, s.alias_max_mention_share).resolve("What does SegMamba do?")
    out["vocabulary_and_title_index"] = time.perf_counter() - t
    return {k: round(v, 3) for k, v in out.items()}


def measure_warmup(store_dir: Path) -> dict[str, Any]:
    """The background sentence warm-up from scratch, then a restart that loads its saved copy."""
    from assistant.engine import SENTENCE_CACHE, Engine

    (store_dir / SENTENCE_CACHE).unlink(missing_ok=True)
    t = time.perf_counter()
    engine = Engine(make_settings(store_dir))
    engine.warmup_done(timeout=1800)
    warm_s = time.perf_counter() - t
    sentences = len(engine.vectors)
    t = time.perf_counter()
    again = Engine(make_settings(store_dir))
    again.warmup_done(timeout=600)
    out = {"sentences": sentences, "warmup_s": round(warm_s, 2),
           "restart_with_saved_cache_s": round(time.perf_counter() - t, 2),
           "cache_file_mb": mb(du(store_dir / SENTENCE_CACHE))}
    log(f"sentence warm-up: {sentences} sentences in {warm_s:.1f}s")
    return out


def per_10k(sizes: list[dict[str, Any]], ingest: dict[str, Any] | None) -> dict[str, Any]:
    """Costs per 10k abstracts from the smallest and largest measured sizes."""
    if len(sizes) < 2:
        return {}
    lo, hi = sizes[0], sizes[-1]
    units = (hi["papers"] - lo["papers"]) / 10_000
    chunks_per_paper = (hi["chunks"] - lo["chunks"]) / max(hi["papers"] - lo["papers"], 1)
    writes = [s["build"] for s in sizes if s.get("build")]
    write_s = sum(b["chroma_write_s"] for b in writes)
    lexical_s = sum(b.get("lexical_write_s", 0) + b.get("lexical_commit_s", 0) for b in writes)
    added = sum(b["synthetic_added"] for b in writes)
    out: dict[str, Any] = {
        "chunks": round(chunks_per_paper * 10_000),
        "disk_mb": round((hi["disk_mb"] - lo["disk_mb"]) / units, 1),
        "app_peak_rss_mb": round((hi["app"]["peak_rss_mb"] - lo["app"]["peak_rss_mb"]) / units, 1),
        # Between the two largest sizes: the growth past the one-time costs of a first 10k.
        "app_peak_rss_mb_marginal": _marginal(sizes, lambda s: s["app"]["peak_rss_mb"]),
        # The engine's own load (index open) in a warm process: app start's share that grows with
        # the store, without the import time's noise on a busy machine.
        "engine_load_s": round(max(0.0, hi["engine_load_s"] - lo["engine_load_s"]) / units, 3),
        "chroma_write_s": round(write_s / max(added, 1) * 10_000, 1),
        "lexical_write_s": round(lexical_s / max(added, 1) * 10_000, 1),
        # Rows measured before the on-disk index (an older results file) have no lexical size.
        "lexical_disk_mb": (round((hi["lexical_mb"] - lo["lexical_mb"]) / units, 1)
                            if "lexical_mb" in hi and "lexical_mb" in lo else None),
    }
    rebuild = (hi.get("lexical_rebuild") or {}).get("seconds")
    if rebuild:
        out["lexical_rebuild_s_at_largest"] = rebuild
        out["lexical_rebuild_s_per_10k"] = round(rebuild / (hi["papers"] / 10_000), 2)
    if ingest:
        # Embedding dominates a real ingest: the measured chunks/s of the model on this machine.
        out["embed_s_cpu"] = round(out["chunks"] / ingest["raw_chunks_per_s"], 1)
        out["ingest_s_cpu"] = round(out["embed_s_cpu"] * ingest["ratio_vs_raw"], 1)
    return out


def _marginal(sizes: list[dict[str, Any]], value: Any) -> float | None:
    """Per 10k papers between the two largest sizes (None with fewer than three sizes)."""
    if len(sizes) < 3:
        return None
    a, b = sizes[-2], sizes[-1]
    return round((value(b) - value(a)) / ((b["papers"] - a["papers"]) / 10_000), 1)


def extrapolate(unit: dict[str, Any]) -> dict[str, Any]:
    if not unit:
        return {}
    out = {}
    for label, n in (("1M", 1_000_000), ("10M", 10_000_000), ("36M", 36_000_000)):
        f = n / 10_000
        out[label] = {
            "chunks": round(unit["chunks"] * f),
            "disk_gb": round(unit["disk_mb"] * f / 1024, 1),
            "app_rss_gb": round(unit["app_peak_rss_mb"] * f / 1024, 1),
            "vectors_gb": round(unit["chunks"] * f * 384 * 4 / 2**30, 1),
            "engine_load_s": round(unit["engine_load_s"] * f, 1),
            "embed_hours_this_cpu": round(unit.get("embed_s_cpu", 0) * f / 3600, 1)
            if unit.get("embed_s_cpu") else None,
            "chroma_write_hours": round(unit["chroma_write_s"] * f / 3600, 1),
        }
    return out


def headline(results: dict[str, Any]) -> dict[str, Any]:
    h: dict[str, Any] = {"mode": results["mode"]}
    ing = results.get("ingest")
    if ing:
        h["ingest_ratio_vs_raw_embedding"] = ing["ratio_vs_raw"]
        h["ingest_papers_per_s"] = ing["ingest_papers_per_s"]
        h["ingest_chunks_per_s"] = ing["ingest_chunks_per_s"]
    sizes = results.get("sizes") or []
    for s in sizes:
        key = f"{s['papers']}"
        lat = s["latency"]
        h[f"retrieval_p95_ms@{key}"] = lat["retrieval_ms"]["ours"]["p95"]
        h[f"numpy_p95_ms@{key}"] = lat["retrieval_ms"]["numpy_exact"]["p95"]
        h[f"recall@10@{key}"] = lat["recall@10"]["ours"]
        if lat.get("e2e"):
            h[f"answer_p50_ms_warm@{key}"] = lat["e2e"]["warm_ms"]["p50"]
            h[f"answer_p50_ms_cold@{key}"] = lat["e2e"]["cold_ms"]["p50"]
        h[f"app_ready_s@{key}"] = s["app"]["ready_s"]
        h[f"app_peak_rss_mb@{key}"] = s["app"]["peak_rss_mb"]
        new = s.get("ingest_new") or {}
        if new.get("ratio_in_run"):
            h[f"ingest_{new['papers']}_new_s@{key}"] = new["ingest_s"]
            h[f"ingest_new_ratio_to_embedding@{key}"] = new["ratio_in_run"]
        reps = (s.get("replicas") or {}).get("apps")
        if reps:
            h[f"replica_ready_s@{key}"] = [a["ready_s"] for a in reps]
            h[f"replica_peak_rss_mb@{key}"] = [a["peak_rss_mb"] for a in reps]
    if results.get("llm"):
        h["llm_ttft_overhead_ms_p50"] = results["llm"]["warm"]["ttft_overhead_ms"]["p50"]
        h["llm_total_overhead_ms_p50"] = results["llm"]["warm"]["total_overhead_ms"]["p50"]
    so = results.get("scale_out")
    if so:
        h["scale_out_ok"] = bool(so["ingest"]["complete"] and all(so.get("apps_see_new_paper", [])))
    return h


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the reduced run (a few minutes)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "bench",
                        help="scratch directory for stores (default: build/bench)")
    parser.add_argument("--sizes", type=str, default=None,
                        help="synthetic abstracts to add, comma-separated (e.g. 10000,100000)")
    parser.add_argument("--questions", type=int, default=None, help="development questions used")
    parser.add_argument("--skip", type=str, default="", help=f"sections to skip: {SECTIONS}")
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached base store")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/PERFORMANCE.md")
    parser.add_argument("--name", type=str, default=None,
                        help="results name (default: quick or full)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a checkout of an earlier commit whose app is measured on the largest "
                        "store too (before/after in one run)")
    args = parser.parse_args()
    plan = dict(QUICK if args.quick else FULL)
    if args.sizes:
        plan["sizes"] = [int(x) for x in args.sizes.split(",") if x.strip()]
    if args.questions:
        plan["questions"] = args.questions
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    mode = "quick" if args.quick else "full"
    name = args.name or mode
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    from bench import synthetic

    results: dict[str, Any] = {
        "mode": mode, "plan": plan, "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
    }
    questions = load_dev_questions(plan["questions"])
    app_questions = load_dev_questions(plan["app_questions"])

    # 1. Ingestion versus raw embedding (issue 2).
    if "ingest" not in skip:
        from bench import ingest_bench

        results["ingest"] = ingest_bench.run(work / "ingest", plan["ingest_papers"])
        for line in ingest_bench.format_lines(results["ingest"]):
            print(line, flush=True)

    # 2. Latency, quality, start time and memory at growing sizes.
    if "scale" not in skip:
        if plan["ingest_papers"] is None and "ingest" not in skip:
            # The ingest bench just built the whole corpus with the real model: the base store.
            base = work / "ingest" / "ingest-store"
        else:
            base = base_store(work, args.fresh)
        bank = synthetic.sentence_bank(work, make_settings(base))
        results["sentence_bank"] = {"sentences": len(bank.sentences), "donor_papers": len(bank.donors),
                                    "embed_s": round(bank.seconds, 2)}
        sizes = [measure_size(base, 0, questions, app_questions, None, work)]
        results["sizes"] = sizes
        scale_dir = work / "scale"
        if plan["sizes"]:
            synthetic.copy_store(base, scale_dir)
        for n in sorted(plan["sizes"]):
            log(f"growing the store to {n} synthetic abstracts")
            build = synthetic.grow_store(make_settings(scale_dir), bank, n)
            row = measure_size(scale_dir, n, questions, app_questions, build, work)
            sizes.append(row)
            write_result(f"{name}.partial", results)
            if n == max(plan["sizes"]) and "largest" not in skip:
                for key, value in measure_largest(scale_dir, n, app_questions, work, bank,
                                                  plan["new_papers"], args.baseline):
                    row[key] = value
                    write_result(f"{name}.partial", results)  # a run cut short keeps what it has
        results["per_10k"] = per_10k(sizes, results.get("ingest"))
        results["extrapolation"] = extrapolate(results["per_10k"])

    # 3. LLM mode against the scripted server.
    if "llm" not in skip:
        from bench import llm_bench

        store = work / "ingest" / "ingest-store"
        if plan["ingest_papers"] is not None or not (store / "chroma.sqlite3").exists():
            store = base_store(work, False)
        results["llm"] = llm_bench.run(make_settings(store), load_dev_questions(plan["llm_questions"]))

    # 4. Past one machine, small scale.
    if "scale_out" not in skip:
        from bench import scale_out

        try:
            results["scale_out"] = scale_out.run(work / "scale-out", plan["scale_out_papers"],
                                                 load_dev_questions(plan["scale_out_questions"]))
        except Exception as exc:  # a missing `chroma` CLI must not lose the rest of the run
            log(f"scale-out failed: {type(exc).__name__}: {exc}")
            results["scale_out"] = {"error": f"{type(exc).__name__}: {exc}"}

    results["seconds"] = round(time.perf_counter() - started, 1)
    results["headline"] = headline(results)
    write_result(name, results)
    (RESULTS / f"{name}.partial.json").unlink(missing_ok=True)
    print(report.summary_text(results), flush=True)
    if not args.no_docs:
        path = report.write_docs()
        log(f"wrote {path.relative_to(ROOT)}")
    print(json.dumps(results["headline"]), flush=True)


if __name__ == "__main__":
    main()
