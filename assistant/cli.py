"""`assistant`: the command line. Errors are printed as one clear message (no traceback) and a
non-zero exit status; `--debug` shows the traceback.

Start-up stays well under a second: this module imports only typer and light modules at the top,
and each command imports what it uses (`status` and `--help` load no model, torch or Chroma)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from assistant.errors import AssistantError

# Plain help (rich_markup_mode=None): typer's rich help labels every flag `<bool>`.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="Ask questions about a collection of paper abstracts, with cited answers.")
T = TypeVar("T")
STATE: dict[str, Any] = {"debug": False}

StoreOpt = Annotated[Path | None, typer.Option("--store", help="Store directory (ASSISTANT_STORE_DIR).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _settings(store: Path | None = None, **overrides: Any) -> Any:
    from assistant.settings import load_settings

    return load_settings(store, **overrides)


def show(markdown: str) -> None:
    """An answer: Markdown rendered for a terminal, the text itself (which is Markdown) when piped."""
    if not sys.stdout.isatty():
        typer.echo(markdown)
        return
    from rich.console import Console
    from rich.markdown import Markdown

    # hyperlinks=False: the URL is printed beside its text, readable in every terminal.
    Console().print(Markdown(markdown, hyperlinks=False))


def require_store(settings: Any) -> None:
    """A local store must exist before anything opens it (Chroma would create an empty one)."""
    if not settings.chroma_url and not (settings.store_dir / "chroma.sqlite3").exists():
        raise AssistantError(f"no store at {settings.store_dir}", hint="build it with `assistant ingest`")


def run(fn: Callable[[], T]) -> T:
    """Translate failures at the edge: AssistantError -> message + exit 2."""
    try:
        return fn()
    except AssistantError as exc:
        if STATE["debug"]:
            raise
        typer.secho(f"error: {exc.message}", fg=typer.colors.RED, err=True)
        if exc.hint:
            typer.echo(f"hint: {exc.hint}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as exc:
        if STATE["debug"]:
            raise
        typer.secho(f"internal error: {type(exc).__name__}: {exc}", fg=typer.colors.RED, err=True)
        typer.echo("hint: run again with --debug for the traceback, and report it", err=True)
        raise typer.Exit(1) from None


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show progress logs.")] = False,
) -> None:
    STATE["debug"] = debug
    level = logging.DEBUG if debug else (logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "chromadb", "sentence_transformers", "bm25s", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


@app.command()
def ingest(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Corpus files: .txt, .jsonl, .csv, .bib, .ris, .json (CSL-JSON), .xml (PubMed), .atom "
             "(arXiv); default: the bundled corpus.")] = None,
    store: StoreOpt = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Delete the store and build it anew.")] = False,
    prune: Annotated[bool, typer.Option("--prune", help="Remove papers not in the inputs.")] = False,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="Read every file as this format: bibtex, ris, pubmed, arxiv, jsonl, "
                         "csl-json, csv or listing (default: by name and content).")] = None,
    collection: Annotated[str | None, typer.Option(
        "--collection", help="Also put the papers into this named collection.")] = None,
    drop_paper_vectors: Annotated[bool, typer.Option(
        "--drop-paper-vectors", help="First rewrite the paper records of a store written by an "
        "earlier version without their vectors: every app then holds ~1.7 KB less per paper. "
        "Once; minutes on a large store.")] = False,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Read every paper record to check the lexical index against the store, "
        "and rebuild the index if they differ (done anyway up to ASSISTANT_INGEST_VERIFY_MAX_PAPERS "
        "papers).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Add papers to the store; unchanged papers are skipped.

    Progress goes to stderr: a bar on a terminal, plain lines otherwise (a log, a pipe)."""
    from assistant.ingest import ingest as do_ingest

    def go() -> None:
        summary = do_ingest(_settings(store), paths or None, rebuild=rebuild, prune=prune,
                            progress=None if not as_json else False, fmt=fmt, collection=collection,
                            drop_paper_vectors=drop_paper_vectors, verify=verify)
        for line in summary.duplicates + summary.skipped + summary.warnings:
            typer.secho(f"warning: {line}", fg=typer.colors.YELLOW, err=True)
        if as_json:
            data = summary.as_json()
            typer.echo(json.dumps({k: data[k] for k in (
                "papers_added", "papers_updated", "papers_unchanged", "papers_removed",
                "papers_total", "chunks_total", "seconds")} | {
                "duplicates": summary.duplicates, "skipped": summary.skipped,
                "formats": summary.formats}, ensure_ascii=False))
        else:
            typer.echo(summary.line())

    run(go)


def _engine(store: Path | None, mode: str | None = None) -> Any:
    from assistant.engine import Engine

    settings = _settings(store, answer_mode=mode)
    require_store(settings)
    return Engine(settings)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    k: Annotated[int | None, typer.Option("--k", help="Papers to retrieve.")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="auto, extractive or llm.")] = None,
    year: Annotated[str | None, typer.Option(
        "--year", help="Only papers of these years: 2023, 2023-2025, 2023- or -2020.")] = None,
    author: Annotated[list[str] | None, typer.Option(
        "--author", help="Only papers by this author (repeatable: any of them).")] = None,
    venue: Annotated[list[str] | None, typer.Option(
        "--venue", help="Only papers from this venue, e.g. MICCAI (repeatable).")] = None,
    paper: Annotated[list[str] | None, typer.Option(
        "--paper", help="Only this paper: id, DOI, arXiv id or exact title (repeatable).")] = None,
    collection: Annotated[str | None, typer.Option(
        "--collection", help="Only papers of this named collection.")] = None,
    out_format: Annotated[str | None, typer.Option(
        "--format", help="Print the answer as markdown, or its cited papers as bibtex, ris or "
                         "csl-json, or its table as csv.")] = None,
    column: Annotated[list[str] | None, typer.Option(
        "--column", help="An extra evidence-table column for --format csv, e.g. \"sample size\" "
                         "(repeatable).")] = None,
) -> None:
    """Answer one question with cited sources. Filter phrases in the question ("since 2023",
    "papers by Wang", "published at MICCAI") are applied unless a filter option is given."""

    def go() -> None:
        settings = _settings(store, answer_mode=mode)
        require_store(settings)  # before the engine's imports: a missing store is told at once
        from assistant.engine import clean_question
        from assistant.export import EXPORT_FORMATS, answer_json, export_answer, source_papers
        from assistant.filters import Filters

        clean_question(question, settings.max_question_chars)  # before the models load
        if out_format and out_format.lower() not in EXPORT_FORMATS:
            raise AssistantError(f"unknown --format {out_format!r}; choose one of "
                                 f"{', '.join(EXPORT_FORMATS)}")
        if out_format and as_json:
            raise AssistantError("--json and --format are alternatives; give one")
        explicit = any((year, author, venue, paper, collection))
        filters = Filters.from_options(year=year, authors=author or (), venues=venue or (),
                                       papers=paper or (), collection=collection) if explicit else None
        engine = _engine(store, mode)
        answer = engine.ask(question, k=k, filters=filters)
        if answer.filters:
            typer.secho(f"filters: {answer.filters.describe()}", err=True)
        if as_json:
            typer.echo(json.dumps(answer_json(answer, source_papers(engine.store, answer)),
                                  ensure_ascii=False))
        elif out_format:
            typer.echo(export_answer(engine, answer, out_format, column or ()), nl=False)
        else:
            show(answer.answer)

    run(go)


@app.command()
def chat(store: StoreOpt = None,
         mode: Annotated[str | None, typer.Option("--mode", help="auto, extractive or llm.")] = None
         ) -> None:
    """A conversation; /new starts over, /quit or Ctrl-D leaves."""
    from assistant.conversation import Turn

    engine = run(lambda: _engine(store, mode))
    interactive = sys.stdin.isatty()
    if interactive:
        typer.echo(f"Answer mode: {engine.mode_label}. Ask about the {engine.store.count_papers()} "
                   "papers; /new starts over, /quit leaves.")
    history: list[Turn] = []
    while True:
        try:
            line = input("you> " if interactive else "")
        except (EOFError, KeyboardInterrupt):
            break
        if line.strip() in ("/quit", "/exit"):
            break
        if line.strip() == "/new":
            history = []
            continue
        if not line.strip():
            continue
        try:
            answer = engine.ask(line, history[-engine.settings.max_turns + 2:])
        except AssistantError as exc:
            typer.secho(f"error: {exc.message}", fg=typer.colors.RED, err=True)
            continue
        typer.echo()
        show(answer.answer)
        typer.echo()
        history += [Turn("user", line), Turn("assistant", answer.answer)]


@app.command("eval")
def evaluate(
    qa: Annotated[Path, typer.Option("--qa", help="JSONL questions with gold titles.")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    mode: Annotated[str | None, typer.Option("--mode", help="auto, extractive or llm.")] = None,
    check: Annotated[Path | None, typer.Option(
        "--check", help="Floors file (JSON): exit 1 when a metric drops below its floor minus the "
        "file's tolerance.")] = None,
) -> None:
    """Retrieval, citation and abstention metrics on questions.

    Recall@5/10, MRR, citation precision, abstention accuracy and latency, overall and per kind."""
    from assistant.evaluation import check_report, format_report, load_floors, load_questions
    from assistant.evaluation import evaluate as do_eval

    def go() -> None:
        questions = load_questions(qa)
        floors = load_floors(check) if check else None
        engine = _engine(store, mode)
        report = do_eval(engine, questions)
        typer.echo(json.dumps(report, ensure_ascii=False) if as_json else format_report(report))
        if floors is not None:
            drops = check_report(report, floors)
            for line in drops:
                typer.secho(f"regression: {line}", fg=typer.colors.RED, err=True)
            if drops:
                raise typer.Exit(1)
            typer.echo(f"quality check passed against {check}", err=True)

    run(go)


@app.command()
def status(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """What the store holds and the answer mode in use.

    Reads the store's manifest; loads no model and starts no LLM."""

    def go() -> None:
        from assistant.llm import configured_model

        settings = _settings(store)
        model = configured_model(settings)
        info = {"store": settings.chroma_url or str(settings.store_dir), **_store_summary(settings),
                "answer_mode": "llm" if model else "extractive",
                "mode_label": f"LLM: {model}" if model else "offline: quoting the papers",
                "llm_model": model,
                "local_model": str(settings.local_model) if model and settings.local_model else None}
        if settings.answer_mode == "llm" and model is None:
            info["mode_label"] = "none: answer_mode is llm but no LLM is configured"
        if as_json:
            typer.echo(json.dumps(info))
        else:
            typer.echo("\n".join(f"{k}: {v}" for k, v in info.items() if v is not None))
        if info["dirty"]:
            typer.secho("warning: an ingest was interrupted (or is running); `assistant ingest` "
                        "completes it", fg=typer.colors.YELLOW, err=True)

    run(go)


def _store_summary(settings: Any) -> dict[str, Any]:
    """Counts and manifest of the store: a local store's copy in manifest.json (manifest.py); a
    Chroma server, or a local store written before that copy existed, is asked itself."""
    from assistant import manifest

    require_store(settings)
    data = None if settings.chroma_url else manifest.load(settings.store_dir)
    if data is None:
        from assistant.store import PaperStore

        paper_store = PaperStore(settings)
        data = {**paper_store.manifest, "papers": paper_store.count_papers(),
                "chunks": paper_store.count_chunks()}
    return {"papers": data.get("papers"), "chunks": data.get("chunks"),
            "embedding_model": data.get("embed_model"), "generation": data.get("generation"),
            "dirty": bool(data.get("dirty"))}


@app.command()
def serve(
    store: StoreOpt = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 7860).")] = None,
) -> None:
    """Start the web UI and the OpenAI-compatible HTTP API."""
    from assistant.web.server import serve as do_serve

    run(lambda: do_serve(_settings(store, host=host, port=port)))


@app.command()
def mcp(store: StoreOpt = None) -> None:
    """Serve the assistant over MCP on stdin/stdout, for desktop clients (over HTTP: /mcp of
    `assistant serve`)."""
    from assistant.web.mcp import serve_stdio

    run(lambda: serve_stdio(_settings(store)))


feedback_app = typer.Typer(no_args_is_help=True, help="Feedback given on answers (UI and API).")
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("export")
def feedback_export(
    store: StoreOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="JSONL file to write (default: stdout).")] = None,
) -> None:
    """Write thumbs-down and flagged answers as evaluation questions (the JSONL `assistant eval
    --qa` reads)."""
    from assistant.feedback import FeedbackStore

    def go() -> None:
        feedbacks = FeedbackStore(_settings(store))
        if out is None:
            summary = feedbacks.export(sys.stdout)
        else:
            try:
                with out.open("w", encoding="utf-8") as handle:
                    summary = feedbacks.export(handle)
            except OSError as exc:
                raise AssistantError(f"{out}: cannot write it ({exc.strerror})") from None
        for line in summary.skipped:
            typer.secho(f"warning: {line}", fg=typer.colors.YELLOW, err=True)
        typer.echo(summary.line(), err=True)

    run(go)


def main(argv: list[str] | None = None) -> None:
    app(args=argv)


if __name__ == "__main__":
    main()
