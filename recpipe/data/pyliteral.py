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

import polars as pl

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


# --- streaming parsed rows to disk ----------------------------------------------------------


class ParquetParts:
    """Buffer small frames and write them as Parquet parts of about `rows_per_part` rows.

    Literal chunks are small (CHUNK_LINES) to keep the pool busy; writing one part per chunk
    would leave thousands of tiny files, so frames are concatenated up to the reader's
    `chunk_lines` first. `scan()` returns a lazy frame over the parts (an empty part with
    `schema` when nothing was written, so downstream code always gets the right columns).
    (Used by the literal readers and Amazon 2014; it would sit equally well in `lines.py`.)
    """

    def __init__(self, folder: Path, prefix: str, schema: dict, rows_per_part: int = 200_000):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prefix, self.schema, self.rows_per_part = prefix, schema, rows_per_part
        self.paths: list[Path] = []
        self._buf: list = []
        self._rows = 0

    def add(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        self._buf.append(frame.select([pl.col(c).cast(t) for c, t in self.schema.items()]))
        self._rows += frame.height
        if self._rows >= self.rows_per_part:
            self.flush()

    def flush(self) -> None:
        if not self._buf:
            return
        path = self.folder / f"{self.prefix}_{len(self.paths):05d}.parquet"
        pl.concat(self._buf, how="vertical").write_parquet(path)
        self.paths.append(path)
        self._buf, self._rows = [], 0

    def scan(self) -> pl.LazyFrame:
        self.flush()
        if not self.paths:
            path = self.folder / f"{self.prefix}_empty.parquet"
            pl.DataFrame(schema=self.schema).write_parquet(path)
            self.paths.append(path)
        return pl.scan_parquet(self.paths)
