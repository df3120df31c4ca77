"""The command line as a user runs it (subprocesses): `ask --json`, errors as one message and exit
status 2, `ingest --json`, a piped two-turn `chat` with a follow-up; `status` and `--help` without
heavy imports, progress lines, Markdown rendered only on a terminal."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli
from test_answers import check_schema

INGEST_KEYS = {"papers_added", "papers_updated", "papers_unchanged", "papers_removed", "papers_total",
               "chunks_total", "seconds"}


def assert_clean_error(run, message: str) -> None:
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert message in run.stderr
    assert "Traceback" not in run.stderr + run.stdout


def test_ask_json(corpus_store, tmp_path):
    run = cli("ask", "What Dice score does Swin SMT reach on TotalSegmentator?", "--json",
              "--store", str(corpus_store.store_dir), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    check_schema(data)
    assert data["mode"] == "extractive" and not data["abstained"]
    assert "85.09%" in data["answer"]
    assert data["citations"][0]["title"].startswith("Swin SMT:")


def test_an_empty_question_is_a_clean_error(corpus_store, tmp_path):
    run = cli("ask", "   ", "--store", str(corpus_store.store_dir), cwd=tmp_path)
    assert_clean_error(run, "the question is empty")


def test_a_missing_store_is_a_clean_error(tmp_path):
    run = cli("ask", "What is SegMamba?", "--store", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert_clean_error(run, "no store at")
    assert "assistant ingest" in run.stderr  # the hint says what to do


def test_eval_with_a_missing_question_file_is_a_clean_error(corpus_store, tmp_path):
    run = cli("eval", "--qa", str(tmp_path / "none.jsonl"), "--store", str(corpus_store.store_dir),
              cwd=tmp_path)
    assert_clean_error(run, "no such question file")


@pytest.mark.slow  # seconds, not milliseconds: left out of `make test-fast`
def test_ingest_json_prints_the_summary(tmp_path: Path):
    hashed = {"env": {"ASSISTANT_EMBED_BACKEND": "hash"}, "doubles": True}  # a fast store is enough
    corpus = tmp_path / "papers.jsonl"
    corpus.write_text("".join(json.dumps({"title": f"Study {i}: topic {i}", "abstract":
                                          f"Abstract number {i} about segmentation."}) + "\n"
                              for i in range(3)))
    store = tmp_path / "store"
    first = cli("ingest", str(corpus), "--store", str(store), "--json", cwd=tmp_path, **hashed)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary.keys() >= INGEST_KEYS
    assert (summary["papers_added"], summary["papers_total"]) == (3, 3)
    assert summary["chunks_total"] >= 3
    again = json.loads(cli("ingest", str(corpus), "--store", str(store), "--json", cwd=tmp_path,
                           **hashed).stdout)
    assert (again["papers_added"], again["papers_unchanged"]) == (0, 3)


def test_chat_answers_two_turns_with_a_follow_up(corpus_store, tmp_path):
    turns = "Compare SegMamba and Swin SMT.\nand what dataset did the second one use?\n"
    run = cli("chat", "--store", str(corpus_store.store_dir), cwd=tmp_path, stdin=turns)
    assert run.returncode == 0, run.stderr
    # [first answer] Sources [first sources + second answer] Sources [second sources]
    first, middle, last = run.stdout.split("**Sources**")
    assert "| **Method** |" in first  # the comparison table
    assert "TotalSegmentator" in middle  # the follow-up quotes the dataset
    # The follow-up is answered from Swin SMT (the second paper), not SegMamba.
    assert "[1] Swin SMT: Global Sequential Modeling" in last
    assert "SegMamba" not in last
    assert "Traceback" not in run.stderr


# --- start-up, help, progress and rendering -----------------------------------------------------
HEAVY = ("torch", "chromadb", "sentence_transformers", "llama_index.core", "gradio")


def _in_process(args: list[str], cwd: Path) -> tuple[str, list[str]]:
    """Run the command line in a fresh interpreter; its output and the heavy modules it imported."""
    code = ("import json, sys\nfrom assistant.cli import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit:\n    pass\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    *lines, heavy = done.stdout.strip().splitlines()
    return "\n".join(lines), json.loads(heavy)


def test_status_reads_the_manifest_without_loading_models(make_store, tmp_path):
    settings = make_store([("AlphaNet: Liver Tumour Segmentation", "AlphaNet segments livers.")],
                          name="status")
    out, heavy = _in_process(["status", "--store", str(settings.store_dir)], tmp_path)
    assert heavy == []
    assert "papers: 1" in out and "embedding_model: hash-256" in out
    assert "answer_mode: extractive" in out
    assert "None" not in out  # no `llm_model: None` when no LLM is configured
    as_json, _ = _in_process(["status", "--store", str(settings.store_dir), "--json"], tmp_path)
    data = json.loads(as_json)
    assert (data["papers"], data["chunks"], data["dirty"], data["llm_model"]) == (1, 1, False, None)


def test_status_names_a_configured_llm_without_contacting_it(make_store, tmp_path):
    settings = make_store([("AlphaNet: Liver Tumour Segmentation", "AlphaNet segments livers.")],
                          name="status-llm")
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "ASSISTANT_LLM_MODEL": "some-model"}
    run = cli("status", "--store", str(settings.store_dir), cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert "answer_mode: llm" in run.stdout and "llm_model: some-model" in run.stdout


def test_status_without_a_store_is_a_clean_error(tmp_path):
    assert_clean_error(cli("status", "--store", str(tmp_path / "nowhere"), cwd=tmp_path), "no store at")


def test_help_is_plain_and_loads_nothing_heavy(tmp_path):
    out, heavy = _in_process(["--help"], tmp_path)
    assert heavy == []
    assert "ingest" in out and "status" in out and "<bool>" not in out
    ingest_help, _ = _in_process(["ingest", "--help"], tmp_path)
    assert "--rebuild" in ingest_help and "<bool>" not in ingest_help


def test_ingest_prints_progress_lines_when_stderr_is_not_a_terminal(hash_settings, tmp_path, capsys):
    from assistant.ingest import ingest

    corpus = tmp_path / "papers.jsonl"
    corpus.write_text("".join(json.dumps({"title": f"Study {i}: topic {i}", "abstract":
                                          f"Abstract number {i} about segmentation."}) + "\n"
                              for i in range(3)))
    ingest(hash_settings, [corpus])  # progress=None: a bar on a terminal, lines otherwise
    err = capsys.readouterr().err
    assert "3 paper(s) to embed" in err and "embedding: 3/3 chunks (100%)" in err
    ingest(hash_settings, [corpus], progress=False)
    assert capsys.readouterr().err == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_answers_are_rendered_on_a_terminal_and_left_as_markdown_when_piped(monkeypatch):
    from assistant.cli import show

    markdown = "AlphaNet reaches 91.5% Dice [1].\n\n**Sources**\n\n[1] *AlphaNet* — [link](https://x.org)"
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    show(markdown)
    rendered = terminal.getvalue()
    assert "Sources" in rendered and "**" not in rendered and "*AlphaNet*" not in rendered
    assert "https://x.org" in rendered  # the link's address stays readable
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stdout", piped)
    show(markdown)
    assert piped.getvalue() == markdown + "\n"
