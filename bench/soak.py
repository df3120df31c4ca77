"""Reliability soak: the suite's checks, longer than CI affords. Numbers go to
tests/reliability/results/soak.json, which `python -m tests.reliability.report` puts into
docs/RELIABILITY.md ("Soak runs").

    .venv/bin/python bench/soak.py                       # defaults: about 10-15 minutes on 2 cores
    .venv/bin/python bench/soak.py --kills 100 --fuzz-seeds 20 --load-rounds 10 --concurrent 100
    .venv/bin/python bench/soak.py --only fuzz,kills     # skip the load part (it builds a real store)

Everything runs on loopback and in temporary folders; `--store DIR` reuses an existing store of the
bundled corpus for the load part instead of building one (a minute or two with the real model).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.reliability.common import read_result, write_result  # noqa: E402
from tests.reliability.corpus_cases import build_cases, check_loading  # noqa: E402
from tests.reliability.killing import kill_campaign  # noqa: E402
from tests.reliability.load import fire, summary  # noqa: E402


def fuzz(seeds: int, tmp: Path) -> dict[str, Any]:
    total = {"cases": 0, "failures": [], "seconds": 0.0, "outcomes": {}}
    for seed in range(1, seeds + 1):
        result = check_loading(build_cases(seed), tmp / f"fuzz-{seed}")
        total["cases"] += result["cases"]
        total["seconds"] += result["seconds"]
        total["failures"] += [f"seed {seed}: {f}" for f in result["failures"]]
        for counts in result["categories"].values():
            for key in ("accepted", "rejected", "bad rejection", "bad acceptance"):
                total["outcomes"][key] = total["outcomes"].get(key, 0) + counts.get(key, 0)
        print(f"fuzz seed {seed}: {result['cases']} cases, {len(result['failures'])} failures", flush=True)
    total["seeds"] = seeds
    total["seconds"] = round(total["seconds"], 1)
    return total


def kills(points: int, seed: int, tmp: Path) -> dict[str, Any]:
    result = kill_campaign(tmp / "kills", points=points, seed=seed)
    print(
        f"kills: {points} points, phases {result['phases']}, {len(result['failures'])} failures", flush=True
    )
    result.pop("rows")  # the suite's report has the per-point table; the soak keeps the totals
    return result


def load(rounds: int, concurrent: int, store: Path | None, tmp: Path) -> dict[str, Any]:
    from assistant.engine import Engine
    from assistant.ingest import ingest
    from assistant.resources import bundled_corpus
    from assistant.testing import make_settings
    from assistant.web.server import BackgroundServer, create_app

    settings = make_settings(store or tmp / "store", answer_mode="extractive",
                             queue_size=max(64, concurrent))
    if store is None:
        started = time.perf_counter()
        ingest(settings, [bundled_corpus()], progress=False)
        print(f"load: built the store in {time.perf_counter() - started:.0f}s", flush=True)
    questions = [line for line in (ROOT / "tests/data/dev_questions.jsonl").read_text().splitlines() if line]
    import json

    pool = [json.loads(q)["question"] for q in questions]
    phases = []
    with BackgroundServer(create_app(settings, Engine(settings))) as server:
        for r in range(rounds):
            bodies = [
                {
                    "model": "paper-assistant",
                    "stream": bool(r % 2),
                    "messages": [{"role": "user", "content": pool[(r * concurrent + i) % len(pool)]}],
                }
                for i in range(concurrent)
            ]
            results, wall = fire(server.url, bodies, timeout=600)
            phase = summary(results, wall)
            phase["round"] = r
            phase["stream"] = bool(r % 2)
            phases.append(phase)
            print(
                f"load round {r}: {phase['ok']}/{phase['requests']} ok, {phase['throughput_rps']} req/s, "
                f"p95 {phase['latency_s']['p95']}s",
                flush=True,
            )
    return {
        "rounds": rounds,
        "concurrent": concurrent,
        "phases": phases,
        "errors": sum(p["errors"] for p in phases),
        "requests": sum(p["requests"] for p in phases),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=60, help="SIGKILL points (the suite does 20)")
    parser.add_argument("--kill-seed", type=int, default=2024)
    parser.add_argument("--fuzz-seeds", type=int, default=10, help="fuzz sets of ~536 cases each")
    parser.add_argument("--load-rounds", type=int, default=6)
    parser.add_argument("--concurrent", type=int, default=100, help="requests released at once per round")
    parser.add_argument("--store", type=Path, help="an existing store of the bundled corpus (load part)")
    parser.add_argument("--only", default="fuzz,kills,load", help="comma-separated parts to run")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    previous = read_result("soak") or {}
    result: dict[str, Any] = {
        **previous,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }
    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        tmp = Path(folder)
        if "fuzz" in parts:
            result["fuzz"] = fuzz(args.fuzz_seeds, tmp)
            write_result("soak", result)  # kept if a later part fails
        if "kills" in parts:
            result["kills"] = kills(args.kills, args.kill_seed, tmp)
            write_result("soak", result)  # kept if a later part fails
        if "load" in parts:
            result["load"] = load(args.load_rounds, args.concurrent, args.store, tmp)
            write_result("soak", result)  # kept if a later part fails
    path = write_result("soak", result)
    print(f"wrote {path}")
    failed = (
        result.get("fuzz", {}).get("failures")
        or result.get("kills", {}).get("failures")
        or result.get("load", {}).get("errors")
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
