"""A seeded generator of broken and hostile corpus files (issue 6, "Bad input").

Each `Case` is one or more files plus what must happen: `accept` (ingests cleanly), `reject` (a
CorpusError naming the file, and the line when `line` is set) or `either` (truncations and random
bytes whose outcome depends on where the cut falls; both outcomes are checked the same way).

    cases = build_cases(seed=6)   # deterministic: the same seed gives the same bytes
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from assistant.errors import CorpusError

from .common import abstract, papers, sentence, title

Expect = Literal["accept", "reject", "either"]
HEADER = "Get trending papers in your email inbox once a day!\nGet trending papers in your email inbox!\n"


@dataclass
class Case:
    id: str
    category: str
    files: list[tuple[str, bytes]]
    expect: Expect
    line: int | None = None  # the line a rejection must name
    bad_file: str | None = None  # which file a rejection must name (default: the first)
    fragment: str | None = None  # a word the rejection message must contain
    limits: dict[str, int] = field(default_factory=dict)  # settings overrides (size limits)
    note: str = ""


# --- serialisers -------------------------------------------------------------------------------
def listing(items: list[tuple[str, str]], *, header: bool = True, eol: str = "\n") -> str:
    body = "".join(f"{t}{eol}{a}{eol}" for t, a in items)
    return (HEADER.replace("\n", eol) if header else "") + body


def jsonl(records: list[object]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def csv_text(records: list[dict[str, object]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(record)
    return out.getvalue()


def utf8(text: str) -> bytes:
    return text.encode("utf-8")


def as_records(items: list[tuple[str, str]]) -> list[dict[str, object]]:
    return [{"title": t, "abstract": a} for t, a in items]


def good_file(rng: random.Random, fmt: str, n: int, tag: str) -> tuple[str, bytes]:
    items = papers(rng, n, tag)
    if fmt == "txt":
        return f"{tag}.txt", utf8(listing(items))
    if fmt == "jsonl":
        return f"{tag}.jsonl", utf8(jsonl(as_records(items)))
    return f"{tag}.csv", utf8(csv_text(as_records(items), ["title", "abstract"]))


# --- categories --------------------------------------------------------------------------------
def truncated(rng: random.Random) -> list[Case]:
    """Valid files cut at a random byte: mid-character, mid-record, mid-quote, mid-JSON."""
    cases = []
    for i in range(60):
        fmt = ("txt", "jsonl", "csv")[i % 3]
        name, data = good_file(rng, fmt, rng.randint(2, 6), f"trunc{i}")
        # Some multibyte characters so that cuts can land inside one.
        data = data.replace(b" for ", " für ".encode(), 2)
        cut = rng.randint(1, len(data) - 1)
        cases.append(
            Case(
                f"truncated-{fmt}-{i}",
                "truncated files",
                [(name, data[:cut])],
                "either",
                note=f"cut at byte {cut} of {len(data)}",
            )
        )
    return cases


def odd_lines(rng: random.Random) -> list[Case]:
    cases = []
    for i in range(40):
        items = papers(rng, rng.randint(2, 6), f"odd{i}")
        lines = listing(items, header=i % 2 == 0).splitlines()
        kind = i % 4
        if kind == 0:  # the last abstract is missing
            lines = lines[:-1]
        elif kind == 1:  # a stray line in the middle
            lines.insert(rng.randint(2, len(lines) - 1), sentence(rng))
        elif kind == 2:  # a title dropped in the middle
            first = 2 if i % 2 == 0 else 0
            del lines[first + 2 * rng.randrange(len(items))]
        else:  # an abstract line blanked (the pairing is kept, the record is not)
            first = 2 if i % 2 == 0 else 0
            k = rng.randrange(len(items) - 1)  # not the last: trailing blank lines are dropped
            lines[first + 2 * k + 1] = "   "
            cases.append(
                Case(
                    f"odd-lines-blank-abstract-{i}",
                    "odd line counts",
                    [(f"odd{i}.txt", utf8("\n".join(lines) + "\n"))],
                    "reject",
                    line=first + 2 * k + 2,
                    fragment="abstract",
                )
            )
            continue
        cases.append(
            Case(
                f"odd-lines-{kind}-{i}",
                "odd line counts",
                [(f"odd{i}.txt", utf8("\n".join(lines) + "\n"))],
                "reject",
                fragment="odd number",
            )
        )
    return cases


def binary(rng: random.Random) -> list[Case]:
    magic = [
        b"\x89PNG\r\n\x1a\n",
        b"PK\x03\x04",
        b"\x1f\x8b\x08",
        b"%PDF-1.7\n",
        b"\x7fELF",
        b"GIF89a",
        b"\xff\xd8\xff\xe0",
        b"SQLite format 3\x00",
    ]
    cases = []
    for i in range(50):
        ext = (".txt", ".jsonl", ".csv", "")[i % 4]
        if i % 5 == 0:  # a good file with junk spliced in
            name, data = good_file(rng, ("txt", "jsonl", "csv")[i % 3], 3, f"bin{i}")
            at = rng.randint(0, len(data))
            data = data[:at] + bytes(rng.randrange(256) for _ in range(64)) + b"\xff\x00" + data[at:]
            cases.append(Case(f"binary-spliced-{i}", "binary junk", [(name, data)], "reject"))
            continue
        head = magic[i % len(magic)] if i % 2 else b""
        junk = head + bytes(rng.randrange(256) for _ in range(rng.randint(16, 4096))) + b"\xfe\x00"
        cases.append(Case(f"binary-{i}", "binary junk", [(f"junk{i}{ext}", junk)], "reject"))
    return cases


def encodings(rng: random.Random) -> list[Case]:
    cases = []
    accented = [
        ("Détection précoce du mélanome: Ærø study", "Les résultats montrent 93.1% de précision."),
        ("Überwachung der Herzfrequenz mit KI", "Die Genauigkeit beträgt 91.2% bei Patienten."),
        ("Análisis de imágenes: niño y corazón", "El modelo alcanzó una sensibilidad del 88%."),
    ]
    for i in range(50):
        kind = i % 10
        base = accented + papers(rng, 2, f"enc{i}")
        text = listing(base)
        name = f"enc{i}.txt"
        if kind == 0:
            cases.append(
                Case(
                    f"enc-latin1-{i}",
                    "mixed encodings",
                    [(name, text.encode("latin-1", "replace"))],
                    "reject",
                    line=3,
                    fragment="UTF-8",
                )
            )
        elif kind == 1:
            cases.append(
                Case(
                    f"enc-cp1252-{i}",
                    "mixed encodings",
                    [(name, (text + "“Smart quotes” — 5 ‰\nAbstract\n").encode("cp1252", "replace"))],
                    "reject",
                    line=3,
                    fragment="UTF-8",
                )
            )
        elif kind == 2:
            cases.append(
                Case(
                    f"enc-utf16le-bom-{i}",
                    "mixed encodings",
                    [(name, text.encode("utf-16"))],
                    "reject",
                    fragment="UTF-8",
                )
            )
        elif kind == 3:
            cases.append(
                Case(f"enc-utf16be-{i}", "mixed encodings", [(name, text.encode("utf-16-be"))], "reject")
            )
        elif kind == 4:  # UTF-8 with a latin-1 line appended (two editors, one file)
            good = utf8(listing(papers(rng, 3, f"enc{i}")))
            lines = good.count(b"\n")
            bad = "Étude sur l'échographie\nRésumé\n".encode("latin-1")
            cases.append(
                Case(
                    f"enc-mixed-lines-{i}",
                    "mixed encodings",
                    [(name, good + bad)],
                    "reject",
                    line=lines + 1,
                    fragment="UTF-8",
                )
            )
        elif kind == 5:  # UTF-8 with a byte-order mark: accepted
            cases.append(
                Case(f"enc-utf8-bom-{i}", "mixed encodings", [(name, b"\xef\xbb\xbf" + utf8(text))], "accept")
            )
        elif kind == 6:  # plain UTF-8 accents, CJK, emoji: accepted
            extra = [
                ("医学图像分割的深度学习方法", "本文提出了一种新的分割网络，准确率达到 92.5%。"),
                ("Emoji 🩺 triage assistant", "Clinicians 👩‍⚕️ rated it 4.5/5 in 120 cases."),
            ]
            cases.append(
                Case(f"enc-utf8-rich-{i}", "mixed encodings", [(name, utf8(listing(base + extra)))], "accept")
            )
        elif kind == 7:  # Shift-JIS
            cases.append(
                Case(
                    f"enc-shiftjis-{i}",
                    "mixed encodings",
                    [(name, listing([("医療画像の解析", "精度は九十パーセントです。")]).encode("shift_jis"))],
                    "reject",
                    fragment="UTF-8",
                )
            )
        elif kind == 8:  # JSON escapes of lone surrogates: legal JSON, not encodable text
            record = {"title": f"Lone \\ud83d surrogate {i}", "abstract": "Broken \\udfff emoji pair."}
            raw = json.dumps(record).replace("\\\\", "\\")
            cases.append(
                Case(
                    f"enc-json-surrogate-{i}",
                    "mixed encodings",
                    [(f"enc{i}.jsonl", utf8(raw + "\n"))],
                    "accept",
                )
            )
        else:  # CESU-8 / encoded surrogates and overlong sequences: not UTF-8
            seq = (b"\xed\xa0\xbd", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf8\x88\x80\x80\x80")[i % 4]
            data = utf8(listing(papers(rng, 2, f"enc{i}"))).replace(b"\n", b" " + seq + b"\n", 3)
            cases.append(
                Case(f"enc-invalid-seq-{i}", "mixed encodings", [(name, data)], "reject", fragment="UTF-8")
            )
    return cases


def enormous(rng: random.Random) -> list[Case]:
    cases = []
    for i in range(36):
        kind = i % 6
        if kind == 0:  # abstract over the limit
            limit = 2_000
            items = [*papers(rng, 2, f"big{i}"), (title(rng, f"big{i}-x"), "word " * (limit // 5 + 50))]
            cases.append(
                Case(
                    f"enormous-abstract-{i}",
                    "enormous abstracts",
                    [(f"big{i}.txt", utf8(listing(items)))],
                    "reject",
                    line=7,
                    fragment="abstract",
                    limits={"max_abstract_chars": limit},
                )
            )
        elif kind == 1:  # at the limit exactly: accepted
            limit = 2_000
            text = ("Dense retrieval for radiology reports. " * 60)[: limit - 1] + "."
            cases.append(
                Case(
                    f"enormous-abstract-at-limit-{i}",
                    "enormous abstracts",
                    [(f"big{i}.jsonl", utf8(jsonl([{"title": f"At the limit {i}", "abstract": text}])))],
                    "accept",
                    limits={"max_abstract_chars": limit},
                )
            )
        elif kind == 2:  # a multi-megabyte single line at the default limits
            huge = "Ultrasound " * 400_000
            cases.append(
                Case(
                    f"enormous-line-{i}",
                    "enormous abstracts",
                    [(f"big{i}.txt", utf8(listing([(f"Huge {i}", huge)])))],
                    "reject",
                    line=3,
                    fragment="abstract",
                )
            )
        elif kind == 3:  # an enormous title (a title/abstract mix-up)
            cases.append(
                Case(
                    f"enormous-title-{i}",
                    "enormous abstracts",
                    [
                        (
                            f"big{i}.csv",
                            utf8(
                                csv_text(
                                    [{"title": abstract(rng, (60, 80)), "abstract": "short"}],
                                    ["title", "abstract"],
                                )
                            ),
                        )
                    ],
                    "reject",
                    line=2,
                    fragment="title",
                )
            )
        elif kind == 4:  # a file over the byte limit
            cases.append(
                Case(
                    f"enormous-file-{i}",
                    "enormous abstracts",
                    [(f"big{i}.txt", utf8(listing(papers(rng, 40, f"big{i}"))))],
                    "reject",
                    fragment="limit",
                    limits={"max_corpus_bytes": 4096},
                )
            )
        else:  # many small papers in one file: accepted
            cases.append(
                Case(
                    f"enormous-many-{i}",
                    "enormous abstracts",
                    [
                        (
                            f"big{i}.jsonl",
                            utf8(jsonl(as_records([(f"Many {i} {k}", sentence(rng)) for k in range(300)]))),
                        )
                    ],
                    "accept",
                )
            )
    return cases


def empty_titles(rng: random.Random) -> list[Case]:
    blanks = ["", " ", "\t", "\u200b", "\u200b\u200f\u202e", "\ufeff", "???", "— – -", "\u00ad", "   .   "]
    cases = []
    for i in range(40):
        blank = blanks[i % len(blanks)]
        items = papers(rng, 3, f"empty{i}")
        fmt = ("txt", "jsonl", "csv", "jsonl-null")[i % 4]
        if fmt == "txt":
            if blank.strip() == "":  # a blank title line shifts pairing: reported as such
                data = listing([*items[:1], (blank, "An abstract without a title."), *items[1:]])
                cases.append(
                    Case(
                        f"empty-title-txt-{i}", "empty titles", [(f"e{i}.txt", utf8(data))], "reject", line=5
                    )
                )
                continue
            data = listing([*items[:1], (blank, "An abstract without a title."), *items[1:]])
            cases.append(
                Case(
                    f"empty-title-txt-{i}",
                    "empty titles",
                    [(f"e{i}.txt", utf8(data))],
                    "reject",
                    line=5,
                    fragment="title",
                )
            )
        elif fmt == "jsonl":
            records = [*as_records(items[:2]), {"title": blank, "abstract": "No title here."}]
            cases.append(
                Case(
                    f"empty-title-jsonl-{i}",
                    "empty titles",
                    [(f"e{i}.jsonl", utf8(jsonl(records)))],
                    "reject",
                    line=3,
                    fragment="title",
                )
            )
        elif fmt == "csv":
            records = [*as_records(items[:1]), {"title": blank, "abstract": "No title here."}]
            data = csv_text(records, ["title", "abstract"])
            cases.append(
                Case(
                    f"empty-title-csv-{i}",
                    "empty titles",
                    [(f"e{i}.csv", utf8(data))],
                    "reject",
                    line=3,
                    fragment="title",
                )
            )
        else:
            record: dict[str, object] = {"abstract": "Missing or null title."}
            if i % 8 == 3:
                record["title"] = None
            records = [record, *as_records(items)]
            cases.append(
                Case(
                    f"empty-title-missing-{i}",
                    "empty titles",
                    [(f"e{i}.jsonl", utf8(jsonl(records)))],
                    "reject",
                    line=1,
                    fragment="title",
                )
            )
    return cases


def duplicates(rng: random.Random) -> list[Case]:
    """Duplicate titles are not errors: the first is kept and the rest reported. Titles equal to a
    paper already in the store update it."""
    cases = []
    for i in range(40):
        items = papers(rng, 4, f"dup{i}")
        kind = i % 5
        if kind == 0:
            items.append((items[1][0], abstract(rng)))
        elif kind == 1:  # case, accents, punctuation and spacing variants
            t = items[0][0]
            items.append((t.upper().replace(":", " -"), abstract(rng)))
            items.append(("  " + t.lower() + "!!", abstract(rng)))
        elif kind == 2:  # the same title with invisible characters inside
            t = items[2][0]
            items.append((t[:3] + "\u200b" + t[3:] + "\u200d", abstract(rng)))
        elif kind == 3:  # a title already in the store's base corpus (an update)
            items.append((BASE_TITLES[i % len(BASE_TITLES)], abstract(rng)))
        else:  # duplicates across two files and two formats
            other = [(items[0][0], abstract(rng)), *papers(rng, 2, f"dup{i}b")]
            cases.append(
                Case(
                    f"duplicate-across-files-{i}",
                    "duplicate titles",
                    [(f"d{i}.txt", utf8(listing(items))), (f"d{i}.jsonl", utf8(jsonl(as_records(other))))],
                    "accept",
                )
            )
            continue
        fmt = ("txt", "jsonl", "csv")[i % 3]
        data = (
            listing(items)
            if fmt == "txt"
            else jsonl(as_records(items))
            if fmt == "jsonl"
            else csv_text(as_records(items), ["title", "abstract"])
        )
        cases.append(
            Case(f"duplicate-{kind}-{i}", "duplicate titles", [(f"d{i}.{fmt}", utf8(data))], "accept")
        )
    return cases


def wrong_types(rng: random.Random) -> list[Case]:
    ok = {"title": "A valid title", "abstract": "A valid abstract about sepsis triage."}
    jsonl_bad: list[tuple[str, str, str]] = [
        ('{"title": 42, "abstract": "x"}', "title", "int"),
        ('{"title": 4.2, "abstract": "x"}', "title", "float"),
        ('{"title": true, "abstract": "x"}', "title", "bool"),
        ('{"title": ["a", "b"], "abstract": "x"}', "title", "list"),
        ('{"title": {"en": "a"}, "abstract": "x"}', "title", "dict"),
        ('{"title": "t", "abstract": ["a", "b"]}', "abstract", "list"),
        ('{"title": "t", "abstract": 0}', "abstract", "int"),
        ('{"title": "t", "abstract": {"text": "x"}}', "abstract", "dict"),
        ('{"title": "t", "abstract": "x", "url": 12}', "url", "http"),
        ('{"title": "t", "abstract": "x", "url": ["http://a.org"]}', "url", "list"),
        ('{"title": "t", "abstract": "x", "url": "javascript:alert(1)"}', "url", "http"),
        (
            '{"title": "t", "abstract": "x", "url": "https://a.org/x) ![i](https://evil.example/p.png"}',
            "url",
            "URL",
        ),
        ('{"title": "t", "abstract": "x", "year": 2024.5}', "year", "float"),
        ('{"title": "t", "abstract": "x", "year": {"y": 1}}', "year", "dict"),
        ('{"title": "t", "abstract": "x", "authors": {"a": 1}}', "authors", "authors"),
        ('{"title": "t", "abstract": "x", "authors": [1, 2]}', "authors", "authors"),
        ('{"title": "t", "abstract": "x", "id": [1]}', "id", "list"),
        ('["title", "abstract"]', "JSON object", "list"),
        ('"just a string"', "JSON object", "str"),
        ("3.14", "JSON object", "float"),
        ("null", "JSON object", "NoneType"),
        ('{"title": NaN, "abstract": "x"}', "title", "float"),
        ('{"title": "t", "abstract": "x", "year": Infinity}', "year", "float"),
        ('{"title": "t", "abstract": "x"', "JSON", "JSON"),
        ("{'title': 't', 'abstract': 'x'}", "JSON", "JSON"),
        ('{"title": "t", "abstract": "x"} trailing', "JSON", "JSON"),
        ("[" * 50_000 + "]" * 50_000, "JSON", "nested"),
        ('{"title": "t", "abstract": "x", "year": ' + "9" * 5000 + "}", "JSON", "JSON"),
        ('{"title": "t" "abstract": "x"}', "JSON", "JSON"),
        ('{"title": "t", "abstract": "x",}', "JSON", "JSON"),
    ]
    csv_bad: list[tuple[str, int, str]] = [
        ("Heading,Abstract\nA,b\n", 1, "lacks"),  # field names are case-insensitive (issue 15)
        ("name,summary\nA,b\n", 1, "lacks"),
        ("title\nA\n", 1, "lacks"),
        ('title,abstract\nA,"unclosed quote\nB,c\nD,e\n', 2, "quote"),
        ('title,abstract\nA,"x"y\n', 2, "CSV"),
        ("title,abstract\nA,b,c,d\n", 2, "cells"),
        ("title,abstract\n,b\n", 2, "title"),
        ("title,abstract\nA,\n", 2, "abstract"),
        ("title,abstract,url\nA,b,ftp://x.org/file\n", 2, "url"),
        ("title,abstract,url\nA,b,not a url\n", 2, "url"),
    ]
    cases = []
    for i in range(60):
        if i < 40:
            line, what, word = jsonl_bad[i % len(jsonl_bad)]
            prefix = [ok | {"title": f"Good {i} {k}"} for k in range(rng.randint(0, 3))]
            data = jsonl(prefix) + line + "\n" + jsonl([ok | {"title": f"After {i}"}])
            cases.append(
                Case(
                    f"wrong-type-jsonl-{i}",
                    "JSONL/CSV wrong types",
                    [(f"w{i}.jsonl", utf8(data))],
                    "reject",
                    line=len(prefix) + 1,
                    note=f"{what}: {word}",
                )
            )
        else:
            text, line, word = csv_bad[(i - 40) % len(csv_bad)]
            cases.append(
                Case(
                    f"wrong-type-csv-{i}",
                    "JSONL/CSV wrong types",
                    [(f"w{i}.csv", utf8(text))],
                    "reject",
                    line=line,
                    fragment=word,
                )
            )
    return cases


def html_script(rng: random.Random) -> list[Case]:
    """Markup is stored as text and made inert where it is shown (tested in the injection suite)."""
    payloads = [
        "<script>alert('x')</script>",
        '<img src=x onerror="alert(1)">',
        "<iframe src='https://evil.example'>",
        "<b>bold</b> and <i>italic</i>",
        "![pixel](https://evil.example/p.png)",
        "[click me](https://evil.example/phish)",
        "<a href='javascript:alert(1)'>link</a>",
        "<style>body{display:none}</style>",
        "<!-- a comment -->",
        "&lt;script&gt;escaped&lt;/script&gt;",
        '"><svg onload=alert(1)>',
        "<details open ontoggle=alert(1)>",
    ]
    cases = []
    for i in range(40):
        p = payloads[i % len(payloads)]
        t = title(rng, f"html{i}")
        where = i % 3
        items = [
            (f"{t} {p}" if where == 0 else t, abstract(rng) + (f" {p}" if where else "")),
            *papers(rng, 2, f"html{i}b"),
        ]
        fmt = ("txt", "jsonl", "csv")[(i // 3) % 3]
        data = (
            listing(items)
            if fmt == "txt"
            else jsonl(as_records(items))
            if fmt == "jsonl"
            else csv_text(as_records(items), ["title", "abstract"])
        )
        cases.append(Case(f"html-{i}", "HTML and script tags", [(f"h{i}.{fmt}", utf8(data))], "accept"))
    return cases


def invisible(rng: random.Random) -> list[Case]:
    chars = [
        "\u200b",
        "\u200c",
        "\u200d",
        "\u200e",
        "\u200f",
        "\u202a",
        "\u202b",
        "\u202c",
        "\u202d",
        "\u202e",
        "\u2066",
        "\u2067",
        "\u2068",
        "\u2069",
        "\ufeff",
        "\u00ad",
        "\u2060",
    ]
    cases = []
    for i in range(50):
        kind = i % 5
        t = title(rng, f"inv{i}")
        if kind == 0:  # invisible characters sprinkled in titles and abstracts
            noisy = "".join(c + (rng.choice(chars) if rng.random() < 0.3 else "") for c in t)
            items = [(noisy, abstract(rng).replace(" ", " " + rng.choice(chars), 3))]
            expect: Expect = "accept"
        elif kind == 1:  # right-to-left override that makes a title read backwards
            items = [(f"\u202e{t[::-1]}\u202c", abstract(rng))]
            expect = "accept"
        elif kind == 2:  # genuine right-to-left scripts
            items = [
                ("تشخيص سرطان الثدي بالتعلم العميق", "حقق النموذج دقة 94% على صور الأشعة."),
                ("זיהוי דלקת ריאות בצילומי חזה", "המודל הגיע לרגישות של 91%."),
            ]
            expect = "accept"
        elif kind == 3:  # a title made only of invisible characters: rejected
            items = [(title(rng, f"inv{i}a"), abstract(rng)), ("".join(rng.sample(chars, 5)), abstract(rng))]
            cases.append(
                Case(
                    f"invisible-only-{i}",
                    "zero-width and RTL characters",
                    [(f"i{i}.jsonl", utf8(jsonl(as_records(items))))],
                    "reject",
                    line=2,
                    fragment="title",
                )
            )
            continue
        else:  # Unicode line/paragraph separators, combining marks, control characters inside text
            items = [
                (t + "\u0301\u0302\u0303", "First\u2028second\u2029third\x0bfourth\x0c fifth\x85 end."),
                (title(rng, f"inv{i}b"), "Tab\tand\x07bell\x1bescape characters."),
            ]
            expect = "accept"
        fmt = ("txt", "jsonl", "csv")[i % 3]
        data = (
            listing(items)
            if fmt == "txt"
            else jsonl(as_records(items))
            if fmt == "jsonl"
            else csv_text(as_records(items), ["title", "abstract"])
        )
        cases.append(
            Case(
                f"invisible-{kind}-{i}",
                "zero-width and RTL characters",
                [(f"i{i}.{fmt}", utf8(data))],
                expect,
            )
        )
    return cases


def structure(rng: random.Random) -> list[Case]:
    """Empty and header-only files, unknown formats, line-ending mixes."""
    cases = []
    for i in range(40):
        kind = i % 10
        if kind == 0:
            ext = ("txt", "jsonl", "csv")[i % 3]  # an empty CSV is reported as lacking its header
            cases.append(
                Case(
                    f"empty-file-{i}",
                    "empty and odd structure",
                    [(f"s{i}.{ext}", b"")],
                    "reject",
                    fragment="no papers" if ext != "csv" else "header",
                )
            )
        elif kind == 1:
            cases.append(
                Case(
                    f"header-only-{i}",
                    "empty and odd structure",
                    [(f"s{i}.txt", utf8(HEADER))],
                    "reject",
                    fragment="no papers",
                )
            )
        elif kind == 2:
            cases.append(
                Case(
                    f"blank-lines-{i}",
                    "empty and odd structure",
                    [(f"s{i}.jsonl", b"\n\n   \n\t\n")],
                    "reject",
                    fragment="no papers",
                )
            )
        elif kind == 3:
            cases.append(
                Case(
                    f"csv-header-only-{i}",
                    "empty and odd structure",
                    [(f"s{i}.csv", b"title,abstract\n")],
                    "reject",
                    fragment="no papers",
                )
            )
        elif kind == 4:
            ext = (".pdf", ".json", ".tsv", ".docx")[i % 4]
            cases.append(
                Case(
                    f"unknown-format-{i}",
                    "empty and odd structure",
                    [(f"s{i}{ext}", utf8(listing(papers(rng, 2, f"s{i}"))))],
                    "reject",
                    fragment="format",
                )
            )
        elif kind == 5:  # CRLF / CR / mixed line endings
            eol = ("\r\n", "\r", "\n")[i % 3]
            text = listing(papers(rng, 3, f"s{i}"), eol=eol)
            if i % 3 == 2:
                text = text.replace("\n", "\r\n", 2)
            cases.append(
                Case(f"line-endings-{i}", "empty and odd structure", [(f"s{i}.txt", utf8(text))], "accept")
            )
        elif kind == 6:  # trailing blank lines and whitespace everywhere
            text = "\n\n" + "\n".join(f"  {t}  \n\t{a}\t" for t, a in papers(rng, 3, f"s{i}")) + "\n\n\n"
            cases.append(
                Case(f"whitespace-{i}", "empty and odd structure", [(f"s{i}.txt", utf8(text))], "accept")
            )
        elif kind == 7:  # a directory given as a corpus file
            cases.append(
                Case(
                    f"directory-{i}",
                    "empty and odd structure",
                    [(f"s{i}.txt/", b"")],
                    "reject",
                    fragment="directory",
                )
            )
        elif kind == 8:  # a path that does not exist
            cases.append(
                Case(
                    f"missing-file-{i}",
                    "empty and odd structure",
                    [(f"s{i}.txt!missing", b"")],
                    "reject",
                    fragment="no such file",
                )
            )
        else:  # JSONL with blank lines and a BOM
            data = b"\xef\xbb\xbf\n" + utf8(jsonl(as_records(papers(rng, 3, f"s{i}")))).replace(
                b"\n", b"\n\n"
            )
            cases.append(
                Case(f"jsonl-blank-lines-{i}", "empty and odd structure", [(f"s{i}.jsonl", data)], "accept")
            )
    return cases


def multi_file(rng: random.Random) -> list[Case]:
    """A good file and a bad one in the same ingest: all of it is rejected, none of it written."""
    bad_makers: list[Callable[[int], tuple[str, bytes, int | None]]] = [
        lambda i: (f"m{i}bad.txt", utf8(listing(papers(rng, 2, f"m{i}x")))[:-1] + b"\n\xff\n", None),
        lambda i: (f"m{i}bad.jsonl", utf8(jsonl([{"title": "t", "abstract": 5}])), 1),
        lambda i: (f"m{i}bad.csv", b"title,abstract\n,orphan abstract\n", 2),
        lambda i: (f"m{i}bad.txt", utf8(listing(papers(rng, 2, f"m{i}y")) + "stray line\n"), None),
    ]
    cases = []
    for i in range(30):
        good = good_file(rng, ("txt", "jsonl", "csv")[i % 3], 3, f"m{i}good")
        name, data, line = bad_makers[i % len(bad_makers)](i)
        files = [good, (name, data)] if i % 2 == 0 else [(name, data), good]
        cases.append(
            Case(f"multi-file-{i}", "good and bad file together", files, "reject", line=line, bad_file=name)
        )
    return cases


CATEGORIES = [
    truncated,
    odd_lines,
    binary,
    encodings,
    enormous,
    empty_titles,
    duplicates,
    wrong_types,
    html_script,
    invisible,
    structure,
    multi_file,
]

# The known-good corpus the store holds before every case (duplicate cases update some of it).
BASE_TITLES = [
    f"Base paper {k}: {w} in clinical practice"
    for k, w in enumerate(["Segmentation", "Triage", "Retrieval", "Calibration", "Survival", "Registration"])
]


def base_corpus(seed: int = 6) -> str:
    rng = random.Random(seed)
    return listing([(t, abstract(rng, (3, 12))) for t in BASE_TITLES])


def build_cases(seed: int = 6) -> list[Case]:
    cases: list[Case] = []
    for k, make in enumerate(CATEGORIES):
        cases.extend(make(random.Random(seed * 1000 + k)))
    return cases


# --- running a case ------------------------------------------------------------------------------
def materialise(case: Case, root: Path) -> list[Path]:
    folder = root / case.id
    folder.mkdir(parents=True)
    paths = []
    for name, data in case.files:
        if name.endswith("/"):
            (folder / name.rstrip("/")).mkdir()
            paths.append(folder / name.rstrip("/"))
        elif "!missing" in name:
            paths.append(folder / name.split("!")[0])
        else:
            (folder / name).write_bytes(data)
            paths.append(folder / name)
    return paths


def limits(case: Case) -> dict[str, int]:
    values = {"max_title_chars": 1_000, "max_abstract_chars": 20_000, "max_bytes": 512 * 1024 * 1024}
    for key, value in case.limits.items():
        values["max_bytes" if key == "max_corpus_bytes" else key] = value
    return values


def rejection_problems(case: Case, paths: list[Path], exc: Exception) -> list[str]:
    """What is wrong with how a case was rejected (empty when the rejection is clear)."""
    if not isinstance(exc, CorpusError):
        return [f"raised {type(exc).__name__}, not CorpusError: {exc}"]
    message = exc.message
    bad = paths[0]
    if case.bad_file:
        bad = next(p for p in paths if p.name == case.bad_file)
    problems = []
    if str(bad) not in message:
        problems.append(f"message does not name {bad.name}: {message!r}")
    if case.line is not None and f"{bad}:{case.line}:" not in message:
        problems.append(f"message does not name line {case.line}: {message!r}")
    if case.fragment and case.fragment.lower() not in message.lower():
        problems.append(f"message does not mention {case.fragment!r}: {message!r}")
    if len(message) > 600 or "Traceback" in message:
        problems.append(f"message is not short and clear: {message[:200]!r}")
    return problems


def check_loading(cases: list[Case], root: Path) -> dict[str, Any]:
    """Load every case (validation only: no store is touched) and judge its outcome; per-category
    counts and the failures, for the test and for bench/soak.py."""
    from assistant.corpus import load_papers

    per_category: dict[str, Counter[str]] = defaultdict(Counter)
    failures = []
    started = time.perf_counter()
    for case in cases:
        paths = materialise(case, root)
        try:
            report = load_papers(paths, **limits(case))
            for paper in report.papers:
                paper.content_hash  # noqa: B018  # must be computable: the text is encodable
        except Exception as exc:
            problems = rejection_problems(case, paths, exc)
            if case.expect == "accept":
                problems.append(f"a valid file was rejected: {exc}")
            outcome = "rejected" if not problems else "bad rejection"
            if re.search(r":\d+:", getattr(exc, "message", "")):
                per_category[case.category]["rejections naming a line"] += 1
        else:
            problems = []
            if case.expect == "reject":
                problems.append(f"accepted {len(report.papers)} paper(s) from a file that must be rejected")
            if not report.papers:
                problems.append("accepted, but no papers")
            problems += [f"empty field in {p.id}" for p in report.papers if not p.title or not p.abstract]
            outcome = "accepted" if not problems else "bad acceptance"
            per_category[case.category]["duplicates reported"] += len(report.duplicates)
        per_category[case.category][outcome] += 1
        per_category[case.category]["cases"] += 1
        if problems:
            failures.append(f"{case.id}: {'; '.join(problems)}")
    return {
        "cases": len(cases),
        "seconds": round(time.perf_counter() - started, 2),
        "categories": {k: dict(v) for k, v in per_category.items()},
        "failures": failures,
    }
