"""Split the blind question set once, at random, into a tune half and a locked half (stratified by
kind and, for comparisons, subkind). Run once when the set was assembled; kept for the record.

    python tests/data/blind/split.py all.jsonl
"""

from __future__ import annotations

import json
import random
import sys
from collections import defaultdict
from pathlib import Path

SEED = 20261202


def main(path: str) -> None:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["kind"], row.get("subkind", ""))].append(row)
    rng = random.Random(SEED)
    tune, locked = [], []
    for key in sorted(groups):
        items = groups[key]
        rng.shuffle(items)
        half = (len(items) + 1) // 2
        tune += items[:half]
        locked += items[half:]
    out = Path(__file__).parent
    for name, items in (("tune", tune), ("locked", locked)):
        rng.shuffle(items)
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for row in items:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(name, len(items))


if __name__ == "__main__":
    main(sys.argv[1])
