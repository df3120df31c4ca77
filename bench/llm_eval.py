"""Answer quality and speed in LLM mode against a real model, next to offline mode on the same
questions. Not part of CI: a small model on 2 CPU cores takes 10-90 s per question.

    .venv/bin/python bench/llm_eval.py --local /path/model.gguf --limit 20 --name smollm2
    OPENAI_BASE_URL=... OPENAI_API_KEY=... ASSISTANT_LLM_MODEL=... .venv/bin/python bench/llm_eval.py

The LLM is a local GGUF model (`--local`, the app's own llama.cpp backend, so the local_* settings
apply) or else the endpoint configured the usual way (OPENAI_BASE_URL / OPENAI_API_KEY /
ASSISTANT_LLM_MODEL, read before anything else clears them). Questions default to
tests/data/dev_questions.jsonl; `--limit N` takes N of them spread over the kinds (round robin),
`--kinds` keeps some kinds only.

Per mode (offline quoting vs LLM), the same questions, one engine each:
- must-contain rate: answers holding every expected figure or phrase (questions that list some);
- cited-title precision: share of the cited papers that are gold papers (answerable questions whose
  answer cites something), and how many answerable answers cite nothing at all;
- citations caught: the checker's work on the model's text (invented numbers removed + citations
  moved to a supporting paper + flagged `[n?]`), from Answer.checks;
- abstention accuracy: unanswerable questions abstained on (decided by retrieval, before any model);
- time to first token: question in -> first non-empty text out of Engine.stream; total time;
- fallbacks: answers where the model failed or timed out and the offline answer was given.

Writes bench/results/llm_eval-<name>.json and the table into docs/LLM_MODES.md (between markers
named after `--name`, so runs for several models sit side by side).
"""

from __future__ import annotations

import os
import sys

# Before bench.common, which clears them so that benchmarks never reach a real LLM by accident.
_ENDPOINT = {k: os.environ[k] for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ASSISTANT_LLM_MODEL",
                                         "ASSISTANT_OPENAI_BASE_URL", "ASSISTANT_OPENAI_API_KEY")
             if os.environ.get(k)}

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bench.common import (  # noqa: E402
    DEV_QUESTIONS,
    ROOT,
    log,
    machine,
    make_settings,
    percentile,
    write_result,
)

DOC = ROOT / "docs" / "LLM_MODES.md"
DEFAULT_STORE = ROOT / "build" / "llm-eval" / "base-215"


def _relative(arg: str) -> str:
    """A path inside the repository (the venv's model file, say) as the doc should show it."""
    try:
        return str(Path(arg).resolve().relative_to(ROOT)) if os.path.isabs(arg) else arg
    except ValueError:
        return arg


def select(questions: list[dict[str, Any]], kinds: list[str] | None, limit: int | None
           ) -> list[dict[str, Any]]:
    """`limit` questions taken round robin over the kinds (file order within a kind)."""
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for q in questions:
        kind = q.get("kind") or "unspecified"
        if not kinds or kind in kinds:
            by_kind[kind].append(q)
    picked: list[dict[str, Any]] = []
    queues = [list(v) for v in by_kind.values()]
    while queues and (limit is None or len(picked) < limit):
        for queue in list(queues):
            if limit is not None and len(picked) >= limit:
                break
            picked.append(queue.pop(0))
            if not queue:
                queues.remove(queue)
    return picked


def store(path: Path) -> Path:
    """The bundled corpus ingested with the real embedder, built once (reused when in step)."""
    from assistant.ingest import ingest

    summary = ingest(make_settings(path), progress=False)
    log(f"store {path}: {summary.line()}")
    return path


def run_mode(engine: Any, questions: list[dict[str, Any]], label: str) -> list[dict[str, Any]]:
    from assistant.corpus import normalize_title
    from assistant.engine import Answer
    from assistant.evaluation import contains_all

    rows = []
    for i, q in enumerate(questions, start=1):
        started = time.perf_counter()
        first: float | None = None
        answer: Answer | None = None
        for event in engine.stream(q["question"]):
            if isinstance(event, Answer):
                answer = event
            elif first is None and event.strip():
                first = time.perf_counter() - started
        total = time.perf_counter() - started
        assert answer is not None
        gold = {normalize_title(t) for t in q.get("gold_titles", [])}
        cited = [normalize_title(t) for t in answer.cited_titles]
        checks = answer.checks
        row: dict[str, Any] = {
            "question": q["question"], "kind": q.get("kind", "unspecified"), "mode": answer.mode,
            "llm_error": answer.llm_error, "abstained": answer.abstained,
            "ttft_s": round(first if first is not None else total, 3), "total_s": round(total, 3),
            "cited_titles": answer.cited_titles, "gold_titles": q.get("gold_titles", []),
            "caught": sum(checks.get(k, 0) for k in ("invented_removed", "reattributed", "flagged")),
            "checks": checks, "answer": answer.answer,
        }
        if gold:
            row["cites_nothing"] = not cited and not answer.abstained
            if cited:
                row["cited_precision"] = sum(c in gold for c in cited) / len(cited)
            row["cites_all_gold"] = gold <= set(cited)
            if q.get("must_contain"):
                row["contains_all"] = contains_all(answer.answer, q["must_contain"])
        else:
            row["abstained_correctly"] = answer.abstained
        rows.append(row)
        log(f"{label} {i}/{len(questions)} {row['kind']}: {answer.mode}, first text "
            f"{row['ttft_s']:.1f}s, total {total:.1f}s, caught {row['caught']}"
            + (f" ({answer.llm_error})" if answer.llm_error else ""))
    return rows


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in rows if key in r]
    return round(sum(values) / len(values), 3) if values else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ttft = [r["ttft_s"] for r in rows if not r["abstained"]]
    total = [r["total_s"] for r in rows if not r["abstained"]]
    answered = [r for r in rows if not r["abstained"]]
    by_model = [r for r in answered if r["mode"] == "llm"]
    fallbacks = [r for r in rows if r["mode"] == "extractive" and r["llm_error"]]
    return {
        "questions": len(rows),
        "answered": len(answered),
        "model_answers": len(by_model),
        "must_contain": _mean(rows, "contains_all"),
        "must_contain_n": sum("contains_all" in r for r in rows),
        "must_contain_model": _mean(by_model, "contains_all"),
        "must_contain_model_n": sum("contains_all" in r for r in by_model),
        "cited_precision": _mean(rows, "cited_precision"),
        "cites_all_gold": _mean(rows, "cites_all_gold"),
        "cites_nothing": sum(bool(r.get("cites_nothing")) for r in rows),
        "caught_total": sum(r["caught"] for r in rows),
        "caught_per_answer": round(sum(r["caught"] for r in answered) / len(answered), 2)
        if answered else None,
        "abstention_accuracy": _mean(rows, "abstained_correctly"),
        "abstention_n": sum("abstained_correctly" in r for r in rows),
        "fallbacks": len(fallbacks),
        "fallbacks_cited_nothing": sum("cited none" in r["llm_error"] for r in fallbacks),
        "ttft_p50_s": round(percentile(ttft, 0.5), 2),
        "ttft_p95_s": round(percentile(ttft, 0.95), 2),
        "total_p50_s": round(percentile(total, 0.5), 2),
        "total_p95_s": round(percentile(total, 0.95), 2),
    }


def _cell(value: Any, fmt: str = "{:.2f}") -> str:
    return "–" if value is None else fmt.format(value)


def markdown(result: dict[str, Any]) -> str:
    s, cfg = result["summary"], result["config"]
    lines = [
        f"**{result['label']}**: {result['questions']} questions ({result['kinds_line']}), "
        f"{result['date']}, {cfg['machine']['cpus']} CPUs, load average "
        f"{cfg['load_before']:.1f} before / {cfg['load_after']:.1f} after; "
        f"{cfg['llm_line']}. Produced by `bench/llm_eval.py {cfg['argv']}`.",
        "",
        "| mode | answers written by the model | must-contain: all shown / model-written "
        "| cited-title precision | cites all gold | citations caught | abstention accuracy "
        "| fallbacks to offline: all (cited nothing) | first text p50 / p95 | total p50 / p95 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in ("offline", "llm"):
        m = s[mode]
        offline = mode == "offline"
        model_cell = "–" if offline else f"{m['model_answers']} of {m['answered']}"
        must = f"{_cell(m['must_contain'])} (n={m['must_contain_n']})"
        if not offline:
            must += f" / {_cell(m['must_contain_model'])} (n={m['must_contain_model_n']})"
        fallbacks = "–" if offline else f"{m['fallbacks']} ({m['fallbacks_cited_nothing']})"
        lines.append(
            f"| {'offline (quoting)' if offline else result['llm_name']} | {model_cell} | {must} "
            f"| {_cell(m['cited_precision'])} | {_cell(m['cites_all_gold'])} "
            f"| {m['caught_total']} ({_cell(m['caught_per_answer'])}/answer) "
            f"| {_cell(m['abstention_accuracy'])} (n={m['abstention_n']}) | {fallbacks} "
            f"| {m['ttft_p50_s']:.1f} / {m['ttft_p95_s']:.1f} s "
            f"| {m['total_p50_s']:.1f} / {m['total_p95_s']:.1f} s |")
    return "\n".join(lines)


def write_doc(name: str, table: str, doc: Path = DOC) -> None:
    """Replace (or append) this run's section of the doc, between its markers."""
    start, end = f"<!-- llm_eval:{name}:start -->", f"<!-- llm_eval:{name}:end -->"
    block = f"{start}\n{table}\n{end}"
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Answer modes\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + f"\n\n{block}\n"
    doc.write_text(text, encoding="utf-8")


def render(path: Path, *, docs: bool) -> None:
    """The table of a saved run, its summary recomputed from its rows (so a change to the
    metrics or the table needs no new run)."""
    result = json.loads(path.read_text(encoding="utf-8"))
    result["summary"] = {mode: summarise(rows) for mode, rows in result["rows"].items()}
    result["summary"].setdefault("offline", summarise([]))
    write_result(path.stem, result, path.parent)
    table = markdown(result)
    print(table)
    if docs:
        write_doc(result["name"], table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local", type=Path, default=None,
                        help="a GGUF model served by the app's local llama.cpp backend")
    parser.add_argument("--questions", type=Path, default=DEV_QUESTIONS)
    parser.add_argument("--limit", type=int, default=None, help="questions, spread over the kinds")
    parser.add_argument("--kinds", type=str, default="", help="comma-separated kinds to keep")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE,
                        help="store of the bundled corpus (built if missing)")
    parser.add_argument("--threads", type=int, default=None, help="local_threads (default: setting)")
    parser.add_argument("--ctx", type=int, default=None, help="local_ctx_size (default: setting)")
    parser.add_argument("--max-tokens", type=int, default=None, help="llm_max_tokens")
    parser.add_argument("--timeout", type=float, default=None,
                        help="local_timeout (local) or llm_timeout (endpoint)")
    parser.add_argument("--name", type=str, default=None, help="results/doc section name")
    parser.add_argument("--label", type=str, default=None, help="model name shown in the doc")
    parser.add_argument("--no-offline", action="store_true", help="skip the offline run")
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/LLM_MODES.md")
    parser.add_argument("--render", type=Path, default=None,
                        help="re-render a saved bench/results/llm_eval-*.json (no questions asked)")
    args = parser.parse_args()
    if args.render:
        render(args.render, docs=not args.no_docs)
        return

    overrides: dict[str, Any] = {"answer_mode": "llm"}
    if args.local:
        overrides["local_model"] = args.local.expanduser().resolve()
        if args.threads:
            overrides["local_threads"] = args.threads
        if args.ctx:
            overrides["local_ctx_size"] = args.ctx
        if args.timeout:
            overrides["local_timeout"] = args.timeout
    else:
        base = _ENDPOINT.get("ASSISTANT_OPENAI_BASE_URL") or _ENDPOINT.get("OPENAI_BASE_URL")
        key = _ENDPOINT.get("ASSISTANT_OPENAI_API_KEY") or _ENDPOINT.get("OPENAI_API_KEY")
        if not (base or key):
            parser.error("give --local PATH.gguf, or configure OPENAI_BASE_URL / OPENAI_API_KEY")
        overrides.update(openai_base_url=base, openai_api_key=key)
        if _ENDPOINT.get("ASSISTANT_LLM_MODEL"):
            overrides["llm_model"] = _ENDPOINT["ASSISTANT_LLM_MODEL"]
        if args.timeout:
            overrides["llm_timeout"] = args.timeout
    if args.max_tokens:
        overrides["llm_max_tokens"] = args.max_tokens

    from assistant.engine import Engine
    from assistant.evaluation import load_questions

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] or None
    raw = [{"question": q.question, "gold_titles": q.gold_titles, "kind": q.kind,
            "must_contain": q.must_contain} for q in load_questions(args.questions)]
    questions = select(raw, kinds, args.limit)
    counts: dict[str, int] = defaultdict(int)
    for q in questions:
        counts[q["kind"]] += 1
    load_before = os.getloadavg()[0]

    store(args.store)  # no-op when in step; builds it on the first run
    llm_settings = make_settings(args.store, **overrides)
    log("starting the LLM engine" + (f" ({args.local.name})" if args.local else ""))
    began = time.perf_counter()
    llm_engine = Engine(llm_settings)
    started_s = time.perf_counter() - began
    assert llm_engine.llm is not None
    llm_name = args.label or (args.local.stem if args.local else llm_engine.llm.name)
    log(f"LLM engine ready in {started_s:.1f}s; {len(questions)} questions")

    results: dict[str, list[dict[str, Any]]] = {}
    if not args.no_offline:
        offline = Engine(make_settings(args.store, answer_mode="extractive"))
        results["offline"] = run_mode(offline, questions, "offline")
    results["llm"] = run_mode(llm_engine, questions, "llm")
    close = getattr(llm_engine.llm, "close", None)
    if close:
        close()

    name = args.name or re.sub(r"[^A-Za-z0-9_.-]+", "-", llm_name).lower()
    config = {
        "argv": shlex.join(_relative(a) for a in sys.argv[1:]), "machine": machine(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0], "engine_start_s": round(started_s, 2),
        # The model's file name, not its path: a path names this machine, not the model.
        "settings": {k: (Path(v).name if k == "local_model" else str(v))
                     for k, v in overrides.items() if k != "openai_api_key"},
        # What the local model's process got (local_llm.py sets PASSIVE unless the env says).
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")
        or ("PASSIVE" if args.local and llm_settings.local_omp_passive else None),
    }
    s = llm_settings
    config["llm_line"] = (
        f"local llama.cpp, {s.local_threads} thread(s), ctx {s.local_ctx_size}, max {s.llm_max_tokens} "
        f"tokens, timeout {s.local_timeout:g} s, OMP_WAIT_POLICY={config['omp_wait_policy']}, "
        f"engine start (model load included) {started_s:.1f} s" if args.local else
        f"endpoint {s.openai_base_url or 'api.openai.com'}, max {s.llm_max_tokens} tokens, "
        f"timeout {s.llm_timeout:g} s")
    empty = summarise([])
    result = {
        "name": name, "label": llm_name, "llm_name": llm_name, "date": time.strftime("%Y-%m-%d"),
        "questions": len(questions),
        "kinds_line": ", ".join(f"{n} {k}" for k, n in sorted(counts.items())),
        "config": config,
        "summary": {mode: summarise(rows) for mode, rows in results.items()} | (
            {"offline": empty} if args.no_offline else {}),
        "rows": results,
    }
    path = write_result(f"llm_eval-{name}", result)
    table = markdown(result)
    print(table)
    log(f"wrote {path}")
    if not args.no_docs:
        write_doc(name, table)
        log(f"updated {DOC}")


if __name__ == "__main__":
    main()
