"""Line-oriented raw files: chunked streaming, fast JSON parsing, parallel literal parsing.

Most raw review data is "one record per line" (JSON lines, or Python literals for Steam and
Amazon 2014 meta), often gzipped and often larger than memory. Everything here streams the
file in chunks of `chunk_lines` lines, so memory is bounded by the chunk size, not the file.

- `iter_chunks` yields `(line_numbers, lines)` with blank lines dropped; line numbers are
  1-based positions in the decompressed file, so a reject points at the real line.
- `parse_json_chunk` parses a chunk with polars' native NDJSON reader against an explicit
  schema (the fast path, ~10x `json.loads`); only when that fails does it fall back to
  per-line `orjson` to find and reject exactly the bad lines.
- `iter_blocks` / `parse_json_block` do the same for large JSON-lines files without any
  per-line Python work: blocks of decompressed text straight to polars.
- `map_chunks` runs a pure-Python per-line parser (e.g. `ast.literal_eval`) over chunks in a
  process pool, preserving order.
- A truncated or corrupt file (EOFError, BadGzipFile, zlib errors, mid-stream) becomes an
  `IngestError` naming the file and how far it got (`unreadable`), caught around the stream.
- `sink_frames` writes a stream of frames as one Parquet file; `ParquetParts` buffers small
  frames into Parquet parts.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

import polars as pl


def open_binary(path: str | Path):
    path = Path(path)
    if path.suffix == ".gz":
        # A large read buffer matters: gzip's default readline is slow on many short reads.
        return io.BufferedReader(gzip.open(path, "rb"), buffer_size=1 << 20)
    return open(path, "rb", buffering=1 << 20)


def _stream_errors() -> tuple[type[BaseException], ...]:
    """What a damaged file raises mid-stream: EOFError (a gzip stream cut short), OSError
    (BadGzipFile: a bad header or CRC; a failing disk), zlib/ISA-L errors (corrupt deflate)."""
    import zlib

    errors: list[type[BaseException]] = [EOFError, OSError, zlib.error]
    with contextlib.suppress(ImportError):
        from isal.isal_zlib import error as isal_error

        errors.append(isal_error)
    return tuple(errors)


def unreadable(path: str | Path, err: BaseException, lines: int, text_bytes: int | None):
    """The IngestError for a file that broke off mid-stream: which file, why, how far it got.

    Raised instead of the bare EOFError / BadGzipFile, whose messages name no file; the
    ingest stage reports it (exit 2) and, writing atomically, leaves no partial table.
    """
    from recpipe.data.rejects import IngestError

    path = Path(path)
    size = path.stat().st_size if path.is_file() else 0
    if isinstance(err, EOFError):
        what = "is truncated (the compressed stream ends before its end marker)"
    elif path.suffix == ".gz":
        what = "is corrupt (not valid gzip data)"
    else:
        what = "could not be read to the end"
    where = "" if text_bytes is None else f" after {text_bytes:,} bytes of text"
    return IngestError(
        f"{path}: the file {what}: {type(err).__name__}: {err}. It broke off{where}; {lines:,} "
        f"lines had been parsed. Copy or download the {size:,}-byte file again (an interrupted "
        f"transfer is the usual cause)"
    )


def _text_position(f) -> int | None:
    """Bytes of text decompressed from `f` when it broke (read-ahead included, so at or just
    past the last complete line), or None when the broken stream cannot say."""
    try:
        return f.tell()
    except (OSError, ValueError):
        return None


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


@contextlib.contextmanager
def _decompressed(path: Path) -> Iterator:
    """A binary stream of the file's text whose `readinto` writes into the caller's buffer.

    `.gz` goes through ISA-L's gzip reader (package `isal`) when installed: about twice zlib's
    speed, which matters on two cores where decompression competes with the parser. Its raw
    reader is used rather than `igzip.open`, whose `readinto` (the stdlib's generic one) reads
    into a new bytes object and copies. Both it and the stdlib fallback read multi-member
    files (concatenated archives) as one stream.
    """
    with open(path, "rb", buffering=0) as raw:
        if path.suffix != ".gz":
            yield raw
            return
        try:
            from isal.isal_zlib import _GzipReader
        except ImportError:  # pragma: no cover - isal is in requirements.txt
            with gzip.GzipFile(fileobj=raw) as f:
                yield f
            return
        yield _GzipReader(raw, 1 << 20)


def _next_block(bio: io.BytesIO, f, tail: bytes, size: int) -> tuple[bytes, bytes]:
    """Fill `bio` with `tail` and about `size` more bytes of `f`; return (block, new tail).

    The block is every complete line read (a last line lacking its line break gets one) and is
    `bio`'s own buffer: `BytesIO.getvalue()` hands the buffer out without a copy when nothing
    else holds it, and once the block is dropped the next fill writes into the same pages.
    (Were it held still, BytesIO copies before writing, so reuse is never visible.) The block
    is b"" at the end of the file.
    """
    bio.seek(0)
    bio.write(tail)
    fill = want = len(tail)
    while True:
        want += size
        while fill < want:
            end = bio.seek(0, io.SEEK_END)
            if end <= fill:  # grow by doubling, so a small file never gets a full-size buffer
                bio.seek(min(want, max(2 * end, 1 << 20)) - 1)
                bio.write(b"\0")
                end = bio.tell()
            with bio.getbuffer() as view:
                k = f.readinto(view[fill : min(end, want)])
            if not k:
                break
            fill += k
        bio.truncate(fill)  # within the buffer: only moves the end, no reallocation
        data = bio.getvalue()
        if fill < want:  # end of file
            return (data if data.endswith(b"\n") or not data else data + b"\n"), b""
        cut = data.rfind(b"\n") + 1
        if cut:
            tail = data[cut:]
            del data  # so the buffer is ours alone again: getvalue() shrinks it in place
            bio.truncate(cut)
            return bio.getvalue(), tail
        del data  # a line longer than the block: read on into a bigger buffer


def iter_blocks(path: str | Path, block_bytes: int = 32 << 20) -> Iterator[tuple[int, int, bytes]]:
    """Yield (first line number, number of lines, block), blocks ending on a line break.

    No per-line Python work: the NDJSON fast path hands whole blocks to polars and derives
    line numbers from the block's first line, falling back to lines only for a bad block.
    Decompression runs one block ahead in a thread (ISA-L and zlib release the GIL), so it
    overlaps with parsing on a second core.

    Text is decompressed straight into four reused buffers (`_next_block`): no block is
    copied, and no block lands in freshly allocated memory. Fresh pages are what made the
    previous version slow: the kernel faults in and zeroes every page of each new 32 MiB
    buffer (1 M Amazon lines: 230k page faults, 0.8 s of system time, a sixth of the read).
    Four buffers: one being parsed, one queued, one being filled, and one spare so a block
    the consumer has not yet let go of is never written over (that would cost a copy).
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=1)
    done = object()
    stop = threading.Event()
    ring = [io.BytesIO() for _ in range(4)]

    def fill(f) -> None:
        tail, first, k = b"", 1, 0
        try:
            while not stop.is_set():
                block, tail = _next_block(ring[k % len(ring)], f, tail, max(1, block_bytes))
                k += 1
                if not block:
                    break
                n = block.count(b"\n")
                q.put((first, n, block))
                first += n
                del block
        except _stream_errors() as e:  # truncated / corrupt: name the file and how far it got
            raise unreadable(path, e, first - 1, _text_position(f)) from e

    def produce():
        try:
            with _decompressed(Path(path)) as f:
                fill(f)
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            q.put(e)

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
            del item
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.01)


def parse_json_block(
    first: int, n: int, block: bytes, schema: dict, file: str, rejects
) -> pl.DataFrame:
    """`parse_json_chunk` for a block of `n` lines starting at line `first`."""
    try:
        df = pl.read_ndjson(io.BytesIO(block), schema=schema)
        if df.height == n:  # no blank or bad line: rows are lines first, first+1, ...
            return df.with_columns(pl.int_range(first, first + n, dtype=pl.Int64).alias("__line"))
    except Exception:  # noqa: BLE001 - any polars parse error sends us to the line path
        pass
    pairs = [(first + k, ln) for k, ln in enumerate(block.split(b"\n")[:n]) if ln.strip()]
    nums = [k for k, _ in pairs]
    lines = [ln for _, ln in pairs]
    return parse_json_chunk(nums, lines, schema, file, rejects)


def sink_frames(frames: Iterable[pl.DataFrame], schema: dict, path: str | Path) -> pl.LazyFrame:
    """Write a stream of frames to one Parquet file, in order; return a scan of that file.

    For a table streamed block by block that should end up as one file: polars' streaming
    Parquet sink pulls the frames through an IO-plugin source, so the table is encoded once
    (no scratch parts written and read back) by the same writer as every other table, while
    the next frames are still being produced; memory stays at a few frames. Each frame is cast
    to `schema` (missing columns become nulls). zstd level 1: nearly the size of the default
    level at a fraction of its time. The file appears under `path` only once complete.

    An exception raised while producing the frames is re-raised as itself (polars would wrap
    it in a ComputeError). `register_io_source` is marked unstable by polars; requirements.txt
    pins the version this was written against.
    """
    from polars.io.plugins import register_io_source

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    cast = [pl.col(c).cast(t) for c, t in schema.items()]
    failed: list[BaseException] = []

    def source(with_columns, predicate, n_rows, batch_size):
        # a plain sink pushes nothing down; honour a projection or filter all the same
        try:
            for frame in frames:
                names = set(frame.columns)
                missing = [pl.lit(None, dtype=t).alias(c) for c, t in schema.items() if c not in names]
                frame = frame.with_columns(missing).select(cast)
                if predicate is not None:
                    frame = frame.filter(predicate)
                yield frame if with_columns is None else frame.select(with_columns)
        except GeneratorExit:
            raise
        except BaseException as e:
            failed.append(e)
            raise

    try:
        register_io_source(source, schema=schema).sink_parquet(
            tmp, compression="zstd", compression_level=1, maintain_order=True
        )
    except BaseException:
        tmp.unlink(missing_ok=True)
        if failed:
            raise failed[0] from None
        raise
    os.replace(tmp, path)
    return pl.scan_parquet(path)


class ParquetParts:
    """Buffer small frames and write them as Parquet parts of about `rows_per_part` rows.

    Literal chunks are small (`pyliteral.CHUNK_LINES`) to keep the pool busy; writing one part
    per chunk would leave thousands of tiny files, so frames are concatenated up to the
    reader's `chunk_lines` first. `scan()` returns a lazy frame over the parts (an empty part
    with `schema` when nothing was written, so downstream code always gets the right columns).
    Used by the Steam and Amazon 2014 readers.
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


def progress(desc: str, unit: str = " lines"):
    """A tqdm bar for streamed work of unknown length (rate and count, on stderr)."""
    from tqdm import tqdm

    return tqdm(desc=desc, unit=unit, unit_scale=True, mininterval=1.0, leave=False)


def count_lines(path: str | Path) -> int:
    with open_binary(path) as f:
        return sum(1 for _ in f)


# --- JSON lines ---------------------------------------------------------------------------

_PY_TYPES = {
    pl.String: (str,),
    pl.Float64: (int, float),
    pl.Float32: (int, float),
    pl.Int64: (int,),
    pl.Int32: (int,),
    pl.Boolean: (bool,),
}


def _value_ok(v, dtype) -> bool:
    if v is None:
        return True
    if isinstance(dtype, pl.List):
        return isinstance(v, list) and all(_value_ok(x, dtype.inner) for x in v)
    if dtype == pl.String:
        # polars' fast path stores any value of a String field as text (objects and arrays as
        # their JSON), so the slow path must accept the same
        return True
    ok = _PY_TYPES.get(dtype)
    if ok is None:
        return True
    if isinstance(v, bool) and dtype != pl.Boolean:
        return False
    return isinstance(v, ok)


def parse_json_chunk(
    nums: list[int], lines: list[bytes], schema: dict, file: str, rejects
) -> pl.DataFrame:
    """Parse JSON lines into a frame with `schema` plus `__line`; bad lines go to `rejects`."""
    try:
        df = pl.read_ndjson(io.BytesIO(b"".join(_terminated(lines))), schema=schema)
        if df.height == len(lines):
            return df.with_columns(pl.Series("__line", nums, dtype=pl.Int64))
    except Exception:  # noqa: BLE001 - any polars parse error sends us to the slow path
        pass
    import orjson

    good_nums, good = [], []
    for n, line in zip(nums, lines):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            rejects.add(file, n, f"malformed JSON: {e}", text=line)
            continue
        if not isinstance(obj, dict):
            rejects.add(file, n, f"expected a JSON object, got {type(obj).__name__}", text=line)
            continue
        bad = next((k for k, t in schema.items() if not _value_ok(obj.get(k), t)), None)
        if bad is not None:
            rejects.add(file, n, f"unparsable value {obj.get(bad)!r}", field=bad, text=line)
            continue
        good_nums.append(n)
        good.append(line)
    if not good:
        return pl.DataFrame(schema={**schema, "__line": pl.Int64})
    df = pl.read_ndjson(io.BytesIO(b"".join(_terminated(good))), schema=schema)
    return df.with_columns(pl.Series("__line", good_nums, dtype=pl.Int64))


def _terminated(lines: Iterable[bytes]) -> Iterator[bytes]:
    for line in lines:
        yield line if line.endswith(b"\n") else line + b"\n"


# --- Python literals (and any other per-line parser) in a process pool --------------------


def default_workers(workers: int = 0) -> int:
    return workers if workers > 0 else max(1, len(os.sched_getaffinity(0)))


def map_chunks(
    fn: Callable[[list[int], list[bytes]], object],
    path: str | Path,
    workers: int = 0,
    chunk_lines: int = 50_000,
) -> Iterator[object]:
    """Apply `fn(nums, lines)` to every chunk of `path`, in order, in `workers` processes.

    `fn` must be a module-level function (picklable). With one worker no pool is started.
    """
    workers = default_workers(workers)
    chunks = iter_chunks(path, chunk_lines)
    if workers == 1:
        for nums, lines in chunks:
            yield fn(nums, lines)
        return
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: polars (and later torch) hold thread pools that fork can deadlock.
    # ProcessPoolExecutor, not Pool: a worker that dies (OOM kill) raises BrokenProcessPool
    # here instead of hanging forever on a lost task.
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        # a bounded window of chunks in flight, so neither input nor results pile up
        window: deque = deque()
        for nums, lines in chunks:
            window.append(pool.submit(fn, nums, lines))
            if len(window) >= 2 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
