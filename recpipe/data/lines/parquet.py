"""Streamed frames to Parquet: one file written once (`sink_frames`), or buffered parts
(`ParquetParts`) for readers whose frames come in small pieces."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import polars as pl


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
