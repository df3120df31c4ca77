"""Past one machine, at small scale on loopback: a Chroma server (`chroma run`), an ingest into it
that is killed part-way and resumed, and two app processes (`python app.py`) sharing the server,
answering at the same time. The vectors, chunks and paper records live once, in the server; the
lexical index once, in a directory the ingest writes and both apps read (`ASSISTANT_LEXICAL_DIR`,
`ASSISTANT_LEXICAL_READ_ONLY` for the apps); each app keeps its sentence cache next to it.

Also checks whether an app notices papers that another process ingested into the shared server
while it was running (it should, through the store generation).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    ROOT,
    chroma_server,
    free_port,
    http_ok,
    log,
    mb,
    settings_env,
    stop,
    summary_ms,
    tree_rss,
)
from bench.ingest_bench import corpus_subset

ASSISTANT = str(Path(PYTHON).with_name("assistant"))
NEW_TITLE = "Quorvexal: a probe paper added while the apps are running"
NEW_ABSTRACT = ("We describe Quorvexal, a probe used by the benchmark to check that running app "
                "processes see papers ingested by another process into a shared Chroma server. "
                "Quorvexal has no other purpose.")


def _papers_in_server(url: str) -> int:
    import chromadb

    try:
        client = chromadb.HttpClient(host="127.0.0.1", port=int(url.rsplit(":", 1)[1]))
        return int(client.get_collection("papers_papers").count())
    except Exception:
        return 0


def _get(url: str, timeout: float = 120) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def run(work: Path, n_papers: int, questions: list[dict[str, Any]]) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    corpus, papers = corpus_subset(n_papers, work)
    server_dir = work / "chroma-server"
    shutil.rmtree(server_dir, ignore_errors=True)
    result: dict[str, Any] = {"papers": len(papers)}
    shared_lexical = work / "lexical"
    shutil.rmtree(shared_lexical, ignore_errors=True)
    with chroma_server(server_dir, work / "chroma-server.log") as (url, server_proc):
        ingest_env = settings_env(work / "ingester", chroma_url=url, ingest_batch_papers=8,
                                  lexical_dir=shared_lexical)
        shutil.rmtree(work / "ingester", ignore_errors=True)

        # 1. An ingest killed after its first batches, then resumed.
        started = time.perf_counter()
        proc = subprocess.Popen([ASSISTANT, "ingest", str(corpus), "--json"], env=ingest_env,
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        while proc.poll() is None and _papers_in_server(url) < 16:
            time.sleep(0.2)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_at = _papers_in_server(url)
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        out = subprocess.run([ASSISTANT, "ingest", str(corpus), "--json"], env=ingest_env, cwd=ROOT,
                             capture_output=True, text=True, check=True)
        resume_s = time.perf_counter() - started
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        result["ingest"] = {
            "killed_after_papers": killed_at,
            "first_run_s": round(first_s, 2),
            "resumed_s": round(resume_s, 2),
            "resumed_skipped": summary["papers_unchanged"],
            "resumed_added": summary["papers_added"],
            "papers_total": summary["papers_total"],
            "complete": summary["papers_total"] == len(papers),
        }
        log(f"scale-out: ingest killed at {killed_at} papers, resumed: {summary}")

        # 2. Two app processes sharing the server.
        apps = []
        for name in ("app-a", "app-b"):
            port = free_port()
            shutil.rmtree(work / name, ignore_errors=True)
            # Search is measured here: no background sentence warm-up competing for the CPU.
            env = settings_env(work / name, chroma_url=url, port=port, auto_ingest="false",
                               sentence_cache_max_papers=0, lexical_dir=shared_lexical,
                               lexical_read_only="true")
            log_file = (work / f"{name}.log").open("w")
            t = time.perf_counter()
            p = subprocess.Popen([PYTHON, str(ROOT / "app.py")], env=env, cwd=ROOT,
                                 stdout=log_file, stderr=subprocess.STDOUT)
            apps.append({"name": name, "proc": p, "port": port, "started": t, "log": log_file})
        try:
            for app in apps:
                base = f"http://127.0.0.1:{app['port']}"
                while not http_ok(f"{base}/", 2):
                    if app["proc"].poll() is not None:
                        raise RuntimeError(f"{app['name']} exited: "
                                           f"{(work / (app['name'] + '.log')).read_text()[-2000:]}")
                    time.sleep(0.1)
                app["ready_s"] = time.perf_counter() - app["started"]
            result["apps_ready_s"] = [round(a["ready_s"], 2) for a in apps]

            def ask_all(app: dict[str, Any], out: list[float]) -> None:
                for row in questions:
                    q = urllib.parse.quote(row["question"])
                    t = time.perf_counter()
                    _get(f"http://127.0.0.1:{app['port']}/v1/search?q={q}&k=10")
                    out.append(time.perf_counter() - t)

            for app in apps:  # first requests pay one-off costs
                ask_all(app, [])
            single: list[float] = []
            t = time.perf_counter()
            ask_all(apps[0], single)
            single_s = time.perf_counter() - t
            both: list[list[float]] = [[], []]
            threads = [threading.Thread(target=ask_all, args=(apps[i], both[i])) for i in range(2)]
            t = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            both_s = time.perf_counter() - t
            result["search"] = {
                "one_app_ms": summary_ms(single),
                "one_app_qps": round(len(single) / single_s, 2),
                "two_apps_ms": summary_ms(both[0] + both[1]),
                "two_apps_qps": round((len(both[0]) + len(both[1])) / both_s, 2),
            }
            result["memory_mb"] = {
                "app_a": mb(tree_rss(apps[0]["proc"].pid)),
                "app_b": mb(tree_rss(apps[1]["proc"].pid)),
                "chroma_server": mb(tree_rss(server_proc.pid)),
            }

            # 3. A paper ingested by another process while the apps run.
            extra = work / "probe.jsonl"
            extra.write_text(json.dumps({"title": NEW_TITLE, "abstract": NEW_ABSTRACT}) + "\n")
            subprocess.run([ASSISTANT, "ingest", str(extra), "--json"], env=ingest_env, cwd=ROOT,
                           capture_output=True, text=True, check=True)
            seen = []
            for app in apps:
                got = _get(f"http://127.0.0.1:{app['port']}/v1/search?q=Quorvexal+probe&k=3")
                seen.append(any(p["title"] == NEW_TITLE for p in got["papers"]))
            result["apps_see_new_paper"] = seen
        finally:
            for app in apps:
                stop(app["proc"])
                app["log"].close()
    log(f"scale-out: {result.get('search')}, apps see a new paper: {result.get('apps_see_new_paper')}")
    return result

