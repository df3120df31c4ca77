"""Regenerate the tables of docs/RELIABILITY.md from the suite's results.

    .venv/bin/python -m tests.reliability.report          # tables from tests/reliability/results/
    .venv/bin/python -m tests.reliability.report --run    # run the suite first, then the tables

The suite's tests write one JSON file each into tests/reliability/results/ (RELIABILITY_RESULTS_DIR
overrides it). The document keeps its prose; only the text between `<!-- BEGIN name -->` and
`<!-- END name -->` markers is replaced.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from .common import RECORD, read_result

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "RELIABILITY.md"
SUITE = [
    "tests/test_reliability_corpus.py",
    "tests/test_reliability_faults.py",
    "tests/test_reliability_injection.py",
    "tests/test_reliability_questions.py",
    "tests/test_load.py",
    "tests/test_reliability_attacks.py",
]


def table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        text = re.sub(r"/tmp/[^\s;,)'\"]+", "…", str(value))  # temporary paths say nothing
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def missing(name: str) -> str:
    return f"_No results yet for `{name}`: run `python -m tests.reliability.report --run`._"


def _sum(counters: dict[str, dict[str, int]], key: str) -> int:
    return sum(c.get(key, 0) for c in counters.values())


# --- sections -----------------------------------------------------------------------------------
def summary() -> str:
    rows = []
    load, ingest = read_result("corpus_load"), read_result("corpus_ingest")
    if load and ingest:
        cats = load["categories"]
        ing = ingest["categories"]
        rows.append(
            [
                "Corpus files",
                f"seeded fuzz set (seed {load['seed']}), {len(cats)} categories",
                load["cases"],
                f"{_sum(cats, 'accepted')} ingested cleanly, {_sum(cats, 'rejected')} rejected with a "
                f"message naming the file ({_sum(cats, 'rejections naming a line')} also the line); "
                f"{len(load['failures'])} other outcomes. {_sum(ing, 'ingested')} of them through a full "
                f"ingest into a store holding {ingest['base_papers']} papers: "
                f"{_sum(ing, 'store checks passed')} exact before/after store checks passed",
                "nothing" if not ingest["failures"] and not load["failures"] else "SEE FAILURES",
            ]
        )
    questions = read_result("questions")
    if questions:
        edges = questions["edges"]
        counts = {
            edge: sum(sum(c.values()) - c.get("failures", 0) for c in cats.values())
            for edge, cats in edges.items()
        }
        fails = len(questions["failures"])
        rows.append(
            [
                "Questions",
                "empty, whitespace, 100 kB, binary, all 17 Unicode planes, markdown/HTML "
                "injection, SQL-looking",
                " + ".join(f"{n} {e}" for e, n in counts.items()),
                "a clear message (400/413, exit 2, the UI's error box) or an answer; "
                f"{fails} tracebacks, 500s or unsafe answers",
                "nothing",
            ]
        )
    llm = read_result("llm_faults")
    if llm:
        worst = max(r["seconds"] for r in llm["rows"])
        offline = sum(1 for r in llm["rows"] if r["mode"] == "extractive" and r["llm_error"])
        rows.append(
            [
                "LLM endpoint",
                f"{len({r['fault'] for r in llm['rows']})} faults (down, slow, 500, 429, "
                "Retry-After, malformed/truncated/stalled streams...), fresh question and follow-up",
                len(llm["rows"]),
                f"{offline}/{len(llm['rows'])} got the offline answer marked as such; slowest "
                f"{worst:.2f}s with a {llm['timeout']:g}s timeout",
                "nothing",
            ]
        )
    chroma = read_result("chroma_outage")
    if chroma:
        rows.append(
            [
                "Chroma server",
                "killed, then restarted on the same port; then hung (SIGSTOP)",
                len(chroma["calls_during_outage"]) + len(chroma.get("hung_server", [])),
                f"every call a 503 naming the server; the same Engine answered again after the restart "
                f"({chroma['restart_seconds']}s); a hung server times out after "
                f"{chroma.get('chroma_timeout', '?')}s",
                "nothing",
            ]
        )
    kill = read_result("kill_ingest")
    if kill:
        phases = ", ".join(f"{n} {p}" for p, n in sorted(kill["phases"].items(), key=lambda x: -x[1]))
        ok = sum(1 for r in kill["rows"] if not r["problems"])
        rows.append(
            [
                "kill -9 during ingest",
                f"SIGKILL at {kill['points']} seeded random moments (seed "
                f"{kill['seed']}) of a {kill['papers']}-paper ingest, fresh and updating stores",
                kill["points"],
                f"landed: {phases}; {ok}/{kill['points']} next runs ended with exactly "
                "the corpus's papers and chunks (ids, texts, no duplicates, lexical index fresh)",
                "nothing" if ok == kill["points"] else "SEE FAILURES",
            ]
        )
    both = read_result("concurrent_ingest")
    if both:
        refused = [r for r in both["refuse"]["results"] if r["exit"] != 0]
        rows.append(
            [
                "Two ingests at once",
                "two processes on one store, released together; lock timeout 60s (wait) and 0s (refuse)",
                4,
                "wait: both finished, one after the other; refuse: one finished, "
                f"{len(refused)} got HTTP-409-style `{refused[0]['error'][:40]}…`"
                if refused
                else "see table",
                "nothing"
                if not both["wait"]["store_problems"] and not both["refuse"]["store_problems"]
                else "SEE FAILURES",
            ]
        )
    damaged = read_result("damaged_store")
    if damaged:
        rebuilt = Counter(r["recovered_by"] for r in damaged["rows"])
        rows.append(
            [
                "Missing or damaged store",
                "; ".join(r["damage"] for r in damaged["rows"]),
                len(damaged["rows"]),
                "a clear message with the rebuild command, or a normal answer where the store heals "
                "itself; recovered by " + ", ".join(f"`{k}` ({n})" for k, n in rebuilt.items()),
                "nothing (after recovery the store equals the corpus)",
            ]
        )
    load_result = read_result("load")
    if load_result:
        first = load_result["phases"].get("offline, plain") or next(iter(load_result["phases"].values()))
        total = sum(p["requests"] for p in load_result["phases"].values())
        errors = sum(p["errors"] for p in load_result["phases"].values())
        rows.append(
            [
                "Load (HTTP API)",
                f"{load_result['concurrent']} concurrent chat requests per phase, "
                f"{len(load_result['phases'])} phases, loopback",
                total,
                f"{errors} errors; offline, plain (cold caches): {first['throughput_rps']} req/s, "
                "p50/p95/p99 "
                f"{first['latency_s']['p50']}/{first['latency_s']['p95']}/{first['latency_s']['p99']}s",
                "nothing",
            ]
        )
    drops, slow = read_result("attack_dropped_streams"), read_result("attack_slow_bodies")
    if drops and slow:
        rows.append(
            [
                "Attacks (HTTP)",
                f"{drops['clients']} clients reading the first event of a streamed answer, then "
                f"resetting; {slow['clients']} clients announcing 50 kB and sending 1 byte",
                drops["clients"] + slow["clients"],
                f"at most {drops['peak_answers']} answers computing at once (limit "
                f"{drops['concurrency']}), {drops['statuses'].get('429', 0)} refused with 429 + "
                f"Retry-After; {slow['statuses'].get('408', 0)} slow bodies cut off with 408 within "
                f"{slow['cut_off_s']['max']}s (timeout {slow['body_timeout']:g}s)",
                "nothing",
            ]
        )
    inj, inj_api = read_result("injection"), read_result("injection_api")
    if inj:
        stats = inj["stats"]
        asked = _sum(stats, "questions")
        bad = _sum(stats, "answers with a violation")
        drafts = _sum(stats, "drafts checked")
        bad_drafts = _sum(stats, "drafts with a violation")
        rows.append(
            [
                "Prompt injection",
                f"{inj['poisoned_papers']} poisoned abstracts, both modes (LLM mode: "
                "a scripted server that obeys them)",
                asked + (inj_api or {}).get("streams_checked", 0),
                f"{bad} of {asked} answers and {bad_drafts} of {drafts} streamed drafts showed an outside "
                "link, image, raw HTML, foreign citation or the system prompt; API streams: "
                f"{len((inj_api or {}).get('failures', []))} of {(inj_api or {}).get('streams_checked', 0)}",
                "nothing",
            ]
        )
    return (
        table(["Case", "What was tried", "How many", "What happened", "Lost"], rows)
        if rows
        else missing("any")
    )


def corpus() -> str:
    load, ingest = read_result("corpus_load"), read_result("corpus_ingest")
    if not load or not ingest:
        return missing("corpus_load/corpus_ingest")
    rows = []
    for category, c in load["categories"].items():
        i = ingest["categories"].get(category, {})
        rows.append(
            [
                category,
                c.get("cases", 0),
                c.get("accepted", 0),
                c.get("rejected", 0),
                c.get("rejections naming a line", 0),
                c.get("duplicates reported", 0),
                i.get("ingested", 0),
                i.get("store checks passed", 0),
                i.get("store checks failed", 0),
            ]
        )
    out = table(
        [
            "Category",
            "Cases",
            "Ingested cleanly",
            "Rejected (file named)",
            "…and line named",
            "Duplicate titles reported",
            "Through full ingest",
            "Store exact after",
            "Store wrong after",
        ],
        rows,
    )
    return (
        out + f"\n\nValidation of all {load['cases']} cases took {load['seconds']}s; the full-ingest "
        f"sample {ingest['seconds']}s, ending with {ingest['final_papers']} papers in "
        f"{ingest['final_chunks']} chunks. Failures: {len(load['failures']) + len(ingest['failures'])}."
    )


def questions_section() -> str:
    data = read_result("questions")
    if not data:
        return missing("questions")
    edges = data["edges"]
    categories = sorted({c for cats in edges.values() for c in cats})
    rows = []
    for category in categories:
        row: list[Any] = [category]
        for edge in edges:
            c = edges[edge].get(category, {})
            row.append(", ".join(f"{n} {k}" for k, n in sorted(c.items()) if k != "failures") or "—")
        rows.append(row)
    return (
        table(["Category", *edges], rows)
        + f"\n\nTracebacks, 500s or unsafe answers: {len(data['failures'])}."
    )


def llm_section() -> str:
    data = read_result("llm_faults")
    if not data:
        return missing("llm_faults")
    rows = [
        [
            r["fault"],
            r["what"],
            "follow-up" if r["follow_up"] else "question",
            r["requests"] or "—",
            f"{r['seconds']:.2f}",
            r["mode"],
            (r["llm_error"] or "")[:70],
        ]
        for r in data["rows"]
    ]
    return (
        table(
            [
                "Fault",
                "What the endpoint does",
                "Turn",
                "HTTP requests",
                "Seconds",
                "Answer mode",
                "Notice shown (start)",
            ],
            rows,
        )
        + f"\n\nTimeout `ASSISTANT_LLM_TIMEOUT={data['timeout']:g}` s, one retry. A healthy "
        f"endpoint in the same run answered in mode `{data['healthy_mode']}`."
    )


def kill_section() -> str:
    data = read_result("kill_ingest")
    if not data:
        return missing("kill_ingest")
    rows = [
        [
            r["point"],
            r["start"],
            r["kill_after_s"],
            r["phase"],
            r["batches_written_before_kill"],
            r["papers_at_kill"],
            r["next_run_s"],
            f"{r['papers']}/{r['chunks']}",
            "exact" if not r["problems"] else "; ".join(r["problems"]),
        ]
        for r in data["rows"]
    ]
    return (
        f"Corpus: {data['papers']} papers, batches of {data['batch_papers']}; measured run "
        f"{data['durations_s']['empty']}s on an empty store, {data['durations_s']['update']}s updating an "
        "older store (35 same, 15 edited, 10 to prune, 10 new).\n\n"
        + table(
            [
                "#",
                "Store",
                "Killed at (s)",
                "Where it landed",
                "Batches written",
                "Papers at kill",
                "Next run (s)",
                "Papers/chunks after",
                "Check",
            ],
            rows,
        )
    )


def concurrent_section() -> str:
    data = read_result("concurrent_ingest")
    if not data:
        return missing("concurrent_ingest")
    rows = []
    for scenario in ("wait", "refuse"):
        for k, r in enumerate(data[scenario]["results"]):
            outcome = (
                f"added {r['added']}, store then held {r['total']}"
                if r["exit"] == 0
                else f"refused ({r['status']}): {r['error'][:60]}…"
            )
            rows.append(
                [
                    scenario,
                    k,
                    r["exit"],
                    f"{r['seconds']:.2f}",
                    outcome,
                    "exact" if not data[scenario]["store_problems"] else data[scenario]["store_problems"],
                ]
            )
    return table(["Lock timeout", "Process", "Exit", "Seconds", "Outcome", "Store after"], rows)


def damaged_section() -> str:
    data, cli = read_result("damaged_store"), read_result("damaged_store_cli")
    if not data:
        return missing("damaged_store")
    rows = [
        [
            r["damage"],
            re.sub(r"/\S*pytest\S*/", "…/", r["user_sees"])[:150],
            r.get("status", "—"),
            f"`{r['recovered_by']}`",
            "exact" if not r["problems"] else r["problems"],
        ]
        for r in data["rows"]
    ]
    out = table(["Damage", "What the user sees", "Status", "Recovered by", "Store after"], rows)
    if cli:
        out += (
            "\n\nThrough the real command line (garbage `chroma.sqlite3`):\n\n```\n$ assistant ask "
            "... --store STORE\n"
            + re.sub(r"/\S*pytest\S*/", "…/", cli["broken"])
            + f"\n$ assistant ingest CORPUS --store STORE --rebuild --json\n{cli['rebuild']}\n```"
        )
    return out


def chroma_section() -> str:
    data = read_result("chroma_outage")
    if not data:
        return missing("chroma_outage")
    rows = [
        ["server killed", c["status"], f"{c['seconds']:.3f}", c["message"]]
        for c in data["calls_during_outage"]
    ]
    rows += [
        ["server hung (SIGSTOP)", c["status"], f"{c['seconds']:.2f}", c["message"]]
        for c in data.get("hung_server", [])
    ]
    return (
        table(["State", "Status", "Seconds to fail", "Message"], rows)
        + f"\n\nRestart on the same port and data: {data['restart_seconds']}s; the same Engine then "
        f"answered again (same sources, same text) and reported {data['papers_after']} papers."
    )


def load_section() -> str:
    data = read_result("load")
    if not data:
        return missing("load")
    rows = []
    order = ["offline, plain", "offline, streamed", "LLM endpoint down, plain"]
    phases = sorted(data["phases"].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 9)
    for name, p in phases:
        lat = p["latency_s"]
        first = p.get("first_byte_s") or {}
        rows.append(
            [
                name,
                p["requests"],
                p["ok"],
                p["errors"],
                p["wall_s"],
                p["throughput_rps"],
                lat["p50"],
                lat["p95"],
                lat["p99"],
                lat["max"],
                first.get("p50", "—"),
                ", ".join(f"{k}: {v}" for k, v in p["modes"].items()),
            ]
        )
    return (
        table(
            [
                "Phase",
                "Requests",
                "OK",
                "Errors",
                "Wall (s)",
                "Req/s",
                "p50 (s)",
                "p95 (s)",
                "p99 (s)",
                "Max (s)",
                "First byte p50 (s)",
                "Modes",
            ],
            rows,
        )
        + f"\n\nApp limits: {data['concurrency']} answered at once, {data['queue_size']} waiting."
    )


def attacks_section() -> str:
    drops, slow = read_result("attack_dropped_streams"), read_result("attack_slow_bodies")
    if not drops or not slow:
        return missing("attack_dropped_streams/attack_slow_bodies")
    dh, sh = drops["health"]["latency_s"], slow["health"]["latency_s"]
    rows = [
        [
            "dropped streams",
            drops["clients"],
            ", ".join(f"{n}× {k}" for k, n in sorted(drops["statuses"].items())),
            f"{drops['peak_answers']} (limit {drops['concurrency']})",
            f"{drops['threads_before']} → {drops['threads_peak']}",
            f"{dh['p50']} / {dh['max']}",
            f"{drops['wall_s']} (+{drops['drain_s']} for the last answers)",
        ],
        [
            "slow bodies",
            slow["clients"],
            ", ".join(f"{n}× {k}" for k, n in sorted(slow["statuses"].items())),
            "—",
            "—",
            f"{sh['p50']} / {sh['max']}",
            f"{slow['wall_s']} (cut off p50/max {slow['cut_off_s']['p50']}/{slow['cut_off_s']['max']})",
        ],
    ]
    return (
        table(["Attack", "Clients", "Answers", "Answers computing at once (max)", "Threads",
               "/health p50 / max (s)", "Wall (s)"], rows)
        + f"\n\nLimits: {drops['concurrency']} answered at once, {drops['queue_size']} waiting; "
        f"each answer made to take at least {drops['work_seconds']}s; body timeout "
        f"{slow['body_timeout']:g}s. Errors: {len(drops['errors']) + len(slow['errors'])}."
    )


def injection_section() -> str:
    data, api = read_result("injection"), read_result("injection_api")
    if not data:
        return missing("injection")
    keys = [
        "questions",
        "poisoned paper retrieved",
        "LLM obeyed the injection",
        "drafts checked",
        "drafts with a violation",
        "answers with a violation",
        "defence: links_removed",
        "defence: html_removed",
        "defence: invented_removed",
        "defence: instructions_removed",
    ]
    rows = [[name, *[s.get(k, "—") for k in keys]] for name, s in data["stats"].items()]
    out = table(
        [
            "Mode: poison",
            "Questions",
            "Poisoned paper retrieved",
            "Model obeyed",
            "Drafts checked",
            "Drafts unsafe",
            "Answers unsafe",
            "Links/images removed",
            "HTML tags removed",
            "Foreign citations removed",
            "Instruction text removed",
        ],
        rows,
    )
    if api:
        out += (
            f"\n\nOpenAI-compatible API, LLM mode, streamed: {api['streams_checked']} streams; "
            f"{len(api['failures'])} showed any of the above in the concatenated message or the final "
            "`answer`."
        )
    return out


def soak_section() -> str:
    data = read_result("soak")
    if not data:
        return "_No soak run recorded yet: `.venv/bin/python bench/soak.py`._"
    rows = []
    if "fuzz" in data:
        f = data["fuzz"]
        rows.append(
            [
                "Corpus fuzz (validation)",
                f"{f['seeds']} seeds, {f['cases']} cases",
                ", ".join(f"{n} {k}" for k, n in f["outcomes"].items() if n),
                len(f["failures"]),
            ]
        )
    if "kills" in data:
        k = data["kills"]
        rows.append(
            [
                "kill -9 during ingest",
                f"{k['points']} points (seed {k['seed']})",
                ", ".join(f"{n} {p}" for p, n in k["phases"].items()),
                len(k["failures"]),
            ]
        )
    if "load" in data:
        ld = data["load"]
        lat = [p["latency_s"] for p in ld["phases"]]
        rows.append(
            [
                "HTTP API load",
                f"{ld['rounds']} rounds of {ld['concurrent']} concurrent requests "
                "(plain and streamed alternately)",
                f"{ld['requests'] - ld['errors']}/{ld['requests']} answered; req/s per round "
                + ", ".join(str(p["throughput_rps"]) for p in ld["phases"])
                + "; p95 per round "
                + ", ".join(f"{x['p95']}s" for x in lat),
                ld["errors"],
            ]
        )
    return f"Run on {data.get('machine', '?')}, {data.get('date', '?')}.\n\n" + table(
        ["Part", "Size", "Outcome", "Failures"], rows
    )


SECTIONS = {
    "summary": summary,
    "corpus": corpus,
    "questions": questions_section,
    "llm": llm_section,
    "chroma": chroma_section,
    "kill": kill_section,
    "concurrent": concurrent_section,
    "damaged": damaged_section,
    "load": load_section,
    "attacks": attacks_section,
    "injection": injection_section,
    "soak": soak_section,
}


def render(doc: str) -> str:
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n)(?:.*?\n)?(<!-- END {name} -->)", re.S)
        if not pattern.search(doc):
            raise SystemExit(f"{DOC}: no BEGIN/END markers for {name!r}")
        doc = pattern.sub(lambda m, make=make: m.group(1) + make() + "\n" + m.group(2), doc)
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", action="store_true", help="run the reliability suite first")
    args = parser.parse_args()
    if args.run:
        env = {**os.environ, "RELIABILITY_RESULTS_DIR": str(RECORD)}
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", *SUITE], cwd=ROOT, env=env)
        if done.returncode:
            print("the suite failed; the tables show its results anyway", file=sys.stderr)
    DOC.write_text(render(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"updated {DOC}")


if __name__ == "__main__":
    main()
