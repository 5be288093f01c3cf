"""Line-oriented raw files: chunked streaming, fast JSON parsing, parallel literal parsing.

Most raw review data is "one record per line" (JSON lines, or Python literals for Steam and
Amazon 2014 meta), often gzipped and often larger than memory. Everything here streams the
file in chunks of `chunk_lines` lines, so memory is bounded by the chunk size, not the file.

- `iter_chunks` (chunks.py) yields `(line_numbers, lines)` with blank lines dropped; line
  numbers are 1-based positions in the decompressed file, so a reject points at the real line.
- `parse_json_chunk` (ndjson.py) parses a chunk with polars' native NDJSON reader against an
  explicit schema (the fast path, ~10x `json.loads`); only when that fails does it fall back to
  per-line `orjson` to find and reject exactly the bad lines.
- `iter_blocks` (blocks.py) / `parse_json_block` do the same for large JSON-lines files
  without any per-line Python work: blocks of decompressed text straight to polars.
- `map_chunks` (pool.py) runs a pure-Python per-line parser (e.g. `ast.literal_eval`) over
  chunks in a process pool, preserving order.
- A truncated or corrupt file (EOFError, BadGzipFile, zlib errors, mid-stream) becomes an
  `IngestError` naming the file and how far it got (`unreadable`, errors.py), caught around
  the stream.
- `sink_frames` (parquet.py) writes a stream of frames as one Parquet file; `ParquetParts`
  buffers small frames into Parquet parts.

This file re-exports those names, so `from recpipe.data.lines import ...` stays the one import.
"""

from recpipe.data.lines.blocks import iter_blocks
from recpipe.data.lines.chunks import count_lines, iter_chunks, open_binary
from recpipe.data.lines.errors import unreadable
from recpipe.data.lines.ndjson import parse_json_block, parse_json_chunk
from recpipe.data.lines.parquet import ParquetParts, sink_frames
from recpipe.data.lines.pool import default_workers, map_chunks
from recpipe.data.lines.progress import progress

__all__ = [
    "ParquetParts",
    "count_lines",
    "default_workers",
    "iter_blocks",
    "iter_chunks",
    "map_chunks",
    "open_binary",
    "parse_json_block",
    "parse_json_chunk",
    "progress",
    "sink_frames",
    "unreadable",
]
