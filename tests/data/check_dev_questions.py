#!/usr/bin/env python3
"""Validate the development question set against the paper corpus.

Usage:
    python3 check_dev_questions.py CORPUS.txt dev_questions.jsonl [--strict]

Corpus format: two header lines, then alternating title line / abstract line.
The first title has the word "Subscribe" glued to its front; it is stripped.

Checks (each failure is a problem -> exit status 1):
  * every line is a JSON object with exactly the keys
    question (str), gold_titles (list[str]), kind (str), must_contain (list[str])
  * kind is one of: factual, paraphrase, list, comparative, unanswerable
  * every gold title exists exactly (after stripping "Subscribe") in the corpus,
    and no gold title is repeated within one item
  * unanswerable <=> empty gold_titles; unanswerable items have empty must_contain
  * factual / paraphrase items have exactly one gold title,
    comparative items have at least two
  * every must_contain string appears (case-insensitive, ignoring thousands
    separators, e.g. "1,052,730" == "1052730", and LaTeX-escaped "\\%" == "%")
    in the title or abstract of at least one gold paper
  * no duplicate questions

Warnings (do not change the exit status unless --strict is given):
  * fewer items of a kind than the dev-set spec asks for
  * list questions with fewer than two gold titles
  * factual questions with an empty must_contain
  * paraphrase questions that reuse content words of their gold paper's title

Stdlib only.
"""

import json
import re
import sys

KINDS = ("factual", "paraphrase", "list", "comparative", "unanswerable")
MIN_COUNTS = {"factual": 20, "paraphrase": 12, "list": 12, "comparative": 12, "unanswerable": 10}
MIN_TOTAL = 70
KEYS = {"question": str, "gold_titles": list, "kind": str, "must_contain": list}

# Words too generic to count as "reusing the title" in a paraphrase check.
STOP = set(
    [
        "a",
        "an",
        "and",
        "the",
        "of",
        "for",
        "in",
        "on",
        "with",
        "via",
        "to",
        "from",
        "by",
        "using",
        "use",
        "based",
        "towards",
        "toward",
        "into",
        "its",
        "is",
        "are",
        "be",
        "as",
        "at",
        "or",
        "not",
        "new",
        "novel",
        "model",
        "models",
        "can",
        "what",
        "which",
        "how",
        "why",
        "does",
        "do",
        "all",
        "over",
        "just",
    ]
)


def load_corpus(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    body = [ln for ln in lines[2:] if ln.strip() != ""]
    if len(body) % 2:
        raise SystemExit(
            f"corpus {path}: odd number of non-empty lines after the 2 header lines ({len(body)})"
        )
    papers = {}
    for i in range(0, len(body), 2):
        title = body[i].strip()
        if title.startswith("Subscribe"):
            title = title[len("Subscribe") :].strip()
        if title in papers:
            raise SystemExit(f"corpus: duplicate title {title!r}")
        papers[title] = body[i + 1]
    return papers


def norm(s):
    s = s.lower().replace("\\%", "%")
    # drop thousands separators: 1,052,730 -> 1052730
    return re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)


def words(s):
    return {w for w in re.findall(r"[a-z0-9]+", s.lower()) if len(w) > 2 and w not in STOP}


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    strict = "--strict" in argv
    if len(args) != 2:
        print(__doc__)
        return 2
    corpus_path, jsonl_path = args
    papers = load_corpus(corpus_path)
    normed = {t: norm(t + "\n" + a) for t, a in papers.items()}

    problems, warnings = [], []
    counts = {k: 0 for k in KINDS}
    seen_q = {}
    n = 0
    with open(jsonl_path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            n += 1
            where = f"line {lineno}"
            try:
                item = json.loads(raw)
            except json.JSONDecodeError as e:
                problems.append(f"{where}: invalid JSON ({e})")
                continue
            if not isinstance(item, dict):
                problems.append(f"{where}: not a JSON object")
                continue
            bad = False
            for k, typ in KEYS.items():
                if k not in item:
                    problems.append(f"{where}: missing key {k!r}")
                    bad = True
                elif not isinstance(item[k], typ):
                    problems.append(f"{where}: {k!r} must be {typ.__name__}")
                    bad = True
            extra = set(item) - set(KEYS)
            if extra:
                problems.append(f"{where}: unexpected keys {sorted(extra)}")
            if bad:
                continue
            q, gold, kind, must = (item["question"], item["gold_titles"], item["kind"], item["must_contain"])
            if not q.strip():
                problems.append(f"{where}: empty question")
            key = q.strip().lower()
            if key in seen_q:
                problems.append(f"{where}: duplicate of question on line {seen_q[key]}")
            seen_q.setdefault(key, lineno)
            if kind not in KINDS:
                problems.append(f"{where}: kind {kind!r} not in {KINDS}")
            else:
                counts[kind] += 1
            if not all(isinstance(x, str) for x in gold):
                problems.append(f"{where}: gold_titles must be strings")
                continue
            if not all(isinstance(x, str) and x.strip() for x in must):
                problems.append(f"{where}: must_contain must be non-empty strings")
                continue
            if len(set(gold)) != len(gold):
                problems.append(f"{where}: repeated gold title")
            for t in gold:
                if t not in papers:
                    problems.append(f"{where}: gold title not in corpus: {t!r}")
            if kind == "unanswerable":
                if gold:
                    problems.append(f"{where}: unanswerable item has gold titles")
                if must:
                    problems.append(f"{where}: unanswerable item has must_contain")
            elif not gold:
                problems.append(f"{where}: empty gold_titles but kind {kind!r} (use 'unanswerable')")
            if kind in ("factual", "paraphrase") and len(gold) != 1:
                problems.append(f"{where}: {kind} item needs exactly 1 gold title, has {len(gold)}")
            if kind == "comparative" and len(gold) < 2:
                problems.append(f"{where}: comparative item needs >= 2 gold titles")
            if kind == "factual" and not must:
                warnings.append(f"{where}: factual item without must_contain")
            if kind == "list" and len(gold) < 2:
                warnings.append(f"{where}: list item with {len(gold)} gold title(s)")
            valid_gold = [t for t in gold if t in papers]
            for m in must:
                nm = norm(m)
                if not any(nm in normed[t] for t in valid_gold):
                    problems.append(f"{where}: must_contain {m!r} not found in any gold paper")
            if kind == "paraphrase" and valid_gold:
                overlap = words(q) & words(valid_gold[0])
                if overlap:
                    warnings.append(f"{where}: paraphrase reuses title words {sorted(overlap)}")

    for k, lo in MIN_COUNTS.items():
        if counts[k] < lo:
            warnings.append(f"only {counts[k]} {k} questions (spec asks >= {lo})")
    if n < MIN_TOTAL:
        warnings.append(f"only {n} questions (spec asks >= {MIN_TOTAL})")

    print(f"corpus: {len(papers)} papers; questions: {n}")
    for k in KINDS:
        print(f"  {k:13s} {counts[k]}")
    for w in warnings:
        print("WARNING:", w)
    for p in problems:
        print("PROBLEM:", p)
    failed = bool(problems) or (strict and bool(warnings))
    print("FAILED" if failed else "OK", f"({len(problems)} problems, {len(warnings)} warnings)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
