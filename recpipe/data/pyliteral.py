"""Python-literal lines (Steam, Amazon 2014 meta), parsed chunk-wise in a process pool.

Those files hold one Python literal per line (`{u'id': u'761140', u'early_access': False}`),
which `json` rejects; `ast.literal_eval` reads them (Python 3 still accepts the Python-2 `u''`
prefix) and, unlike `eval`, cannot run code. It is slow (5-9k lines/s per core on Steam game
lines, almost all of it spent in the Python parser), so chunks go to `lines.map_chunks`, which
spreads them over a spawn pool and yields the results in file order.

The chunk function is module-level so the pool can pickle it. It never raises on bad input: a
line that does not parse, or parses to something other than a dict, comes back as an error
`(line_no, reason, text)` and the caller hands it to the `RejectLog`.
"""

from __future__ import annotations

import ast
import gc
from pathlib import Path
from typing import Iterator

from recpipe.data.lines import map_chunks

# Lines per pool task. Small enough that a 30k-line file still splits over several workers
# and that a worker's result (pickled dicts) stays a few MB; large enough that the per-task
# overhead (pickling the chunk, one round trip) is noise next to ~1 s of parsing.
CHUNK_LINES = 5_000

Record = tuple[int, dict]  # (1-based line number, parsed record)
Error = tuple[int, str, str]  # (1-based line number, reason, offending text)


def parse_literal_chunk(nums: list[int], lines: list[bytes]) -> tuple[list[Record], list[Error]]:
    """Parse one chunk of Python-literal lines; returns (records, errors), both in line order."""
    # literal_eval allocates many short-lived AST nodes and no reference cycles, while the
    # records pile up; the cyclic GC would keep re-scanning them for nothing (~10% of the time).
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        return _parse(nums, lines)
    finally:
        if gc_was_on:
            gc.enable()


def _parse(nums: list[int], lines: list[bytes]) -> tuple[list[Record], list[Error]]:
    records: list[Record] = []
    errors: list[Error] = []
    for n, raw in zip(nums, lines):
        text = raw.decode("utf-8", "replace")
        try:
            obj = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
            errors.append((n, f"malformed Python literal: {type(e).__name__}: {e}", text))
            continue
        if not isinstance(obj, dict):
            errors.append((n, f"expected a dict literal, got {type(obj).__name__}", text))
            continue
        records.append((n, obj))
    return records, errors


def iter_literal_chunks(
    path: str | Path,
    rejects,
    workers: int = 0,
    chunk_lines: int = CHUNK_LINES,
) -> Iterator[list[Record]]:
    """Yield the parsed records of `path` chunk by chunk, in file order.

    Errors go straight to `rejects` (as rejects of this file) and the number of non-blank
    lines is reported with `rejects.count_lines`, so callers only see good records. Memory is
    bounded by a few chunks, not by the file. `workers=0` uses every available core.
    """
    n_lines = 0
    try:
        for records, errors in map_chunks(parse_literal_chunk, path, workers, chunk_lines):
            n_lines += len(records) + len(errors)
            for line_no, reason, text in errors:
                rejects.add(path, line_no, reason, text=text)
            yield records
    finally:
        # Counted even when the consumer stops early, so reject fractions stay honest.
        rejects.count_lines(path, n_lines)


def read_literals(
    path: str | Path, rejects, workers: int = 0, chunk_lines: int = CHUNK_LINES
) -> list[Record]:
    """All records of a (small) literal file in one list; use `iter_literal_chunks` for big ones."""
    out: list[Record] = []
    for records in iter_literal_chunks(path, rejects, workers, chunk_lines):
        out.extend(records)
    return out
