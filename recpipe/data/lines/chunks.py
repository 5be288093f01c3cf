"""Line-by-line streaming: a raw file (gzipped or not) as chunks of numbered, non-blank lines.

Line numbers are 1-based positions in the decompressed file, so a reject points at the real
line; memory is bounded by the chunk size, not the file.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Iterator

from recpipe.data.lines.errors import _stream_errors, _text_position, unreadable


def open_binary(path: str | Path):
    path = Path(path)
    if path.suffix == ".gz":
        # A large read buffer matters: gzip's default readline is slow on many short reads.
        return io.BufferedReader(gzip.open(path, "rb"), buffer_size=1 << 20)
    return open(path, "rb", buffering=1 << 20)


def iter_chunks(path: str | Path, chunk_lines: int = 200_000) -> Iterator[tuple[list[int], list[bytes]]]:
    """Yield (line numbers, non-blank lines) chunks of at most `chunk_lines` lines.

    A truncated or corrupt file raises `unreadable`'s IngestError, caught around the whole
    stream (not per line: this loop is a hot path).
    """
    nums: list[int] = []
    lines: list[bytes] = []
    n = 0
    with open_binary(path) as f:
        try:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                nums.append(n)
                lines.append(line)
                if len(lines) >= chunk_lines:
                    yield nums, lines
                    nums, lines = [], []
        except _stream_errors() as e:
            raise unreadable(path, e, n, _text_position(f)) from e
    if lines:
        yield nums, lines


def count_lines(path: str | Path) -> int:
    with open_binary(path) as f:
        return sum(1 for _ in f)
