"""The scraped listing (the bundled corpus): alternating title and abstract lines, under an
optional "Get trending papers..." header."""

from __future__ import annotations

import re
from pathlib import Path

from assistant.errors import CorpusError
from assistant.formats.common import Entry, lines

LISTING_HEADER = re.compile(r"^get trending papers", re.IGNORECASE)
# The scraped page glues its "Subscribe" button text to the first title.
SUBSCRIBE_PREFIX = re.compile(r"^Subscribe(?=[A-Z0-9])")


def parse(path: Path, text: str) -> list[Entry]:
    rows = lines(text)
    start = 0
    while start < len(rows) and (not rows[start].strip() or LISTING_HEADER.match(rows[start])):
        start += 1
    end = len(rows)
    while end > start and not rows[end - 1].strip():
        end -= 1
    body = rows[start:end]
    if len(body) % 2:
        raise CorpusError(
            f"{path}:{start + len(body)}: odd number of title/abstract lines ({len(body)}): "
            "a title without its abstract, or a stray line"
        )
    entries = []
    for i in range(0, len(body), 2):
        title_line = start + i + 1
        title = body[i].strip()
        if i == 0:  # only the first title follows the button; "SubscribeNet" elsewhere is a name
            title = SUBSCRIBE_PREFIX.sub("", title)
        if not body[i].strip():
            raise CorpusError(f"{path}:{title_line}: empty title line")
        if not body[i + 1].strip():
            # Unlike a record format's missing field, a blank line here says the pairing of
            # titles and abstracts is not to be trusted: the file is rejected.
            raise CorpusError(f"{path}:{title_line + 1}: abstract missing (empty line)")
        entries.append(Entry(title=title, abstract=body[i + 1], line=title_line))
    return entries
