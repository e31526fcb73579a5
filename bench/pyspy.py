"""py-spy for the benches: finding the binary and the functions with most self time in a raw
profile."""

from __future__ import annotations

import collections
import re
import shutil
import sys
from pathlib import Path


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy not found: pip install py-spy")
    return found


def top_functions(raw: Path, count: int = 15) -> tuple[int, list[tuple[str, int]]]:
    """(samples, the `count` functions with most self samples) of a py-spy raw profile."""
    functions: collections.Counter[str] = collections.Counter()
    for row in raw.read_text().splitlines():
        stack, _, count_text = row.rpartition(" ")
        leaf = stack.split(";")[-1]
        functions[re.sub(r" \(.*?/(site-packages/|wt-[^/]+/)?", " (", leaf)] += int(count_text)
    return sum(functions.values()), functions.most_common(count)

