"""Raw files of one format -> canonical Parquet tables, a rejects file and an ingest report.

The reader streams its input into Parquet parts in a scratch folder; this module conforms the
result to the canonical schema and sinks it to the output folder without collecting the large
interactions table, so ingest memory does not grow with the file size.

A reader may instead write a table itself, already canonical, to `finished_table(workdir,
table)` and return a scan of that file: it is then moved into place, not encoded a second
time (the Amazon 2018 reader does this for interactions: ~8% less CPU). The move happens
before items and users are written, so those must not be lazy scans of that file.

The report's `ts_kind` says what `ts` holds: `time` (unix seconds, the default) or `position`
(an ordinal position in the user's sequence, order only), declared by readers of releases
without times (`Tables.stats["ts_kind"]`: seqtxt, cdsr). The split stage reads it from the
report: `split.protocol=temporal` on positions splits per user by order.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import fields
from pathlib import Path

import polars as pl

from recpipe.data.readers import ReadOptions, get_reader
from recpipe.data.rejects import IngestError, RejectLog
from recpipe.data.schema import SCHEMAS, conform
from recpipe.io import atomic_path
from recpipe.params import DatasetParams, IngestParams

TS_KINDS = ("time", "position")  # what `ts` holds: unix seconds, or an order-only position


def finished_table(workdir: Path, table: str) -> Path:
    """Where a reader may leave `table` written in its final form (see the module docstring)."""
    return Path(workdir) / f"finished-{table}.parquet"


def _sink(frame, table: str, path: Path, workdir: Path) -> None:
    done = finished_table(workdir, table)
    if done.exists():
        got = dict(pl.read_parquet_schema(done))
        if got != SCHEMAS[table]:  # a reader bug: say so here, not three stages later
            raise ValueError(f"{done.name} is not a canonical {table} table: {got}")
        with atomic_path(path) as tmp:
            os.replace(done, tmp)
        return
    lf = conform(frame.lazy(), table)
    with atomic_path(path) as tmp:
        # zstd level 1: nearly the size of the default level at a fraction of its time
        lf.sink_parquet(tmp, compression="zstd", compression_level=1)


def read_options(params: IngestParams) -> ReadOptions:
    """The reader's options, each taken by name from the `ingest` section of the same name
    (a ReadOptions field without an ingest key is a bug the tests catch)."""
    return ReadOptions(**{f.name: getattr(params, f.name) for f in fields(ReadOptions)})


def ingest(dataset: DatasetParams, params: IngestParams, out_dir: Path) -> dict:
    """Read `dataset` into `out_dir/{interactions,items,users}.parquet`; return the report."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    src = Path(dataset.path)
    if not src.exists():
        raise IngestError(
            f"dataset.path={dataset.path!r} does not exist; point it at a folder of "
            f"{dataset.format} files (see README: Datasets)"
        )
    read = get_reader(dataset.format)
    workdir = out_dir / ".parts"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    rejects = RejectLog()
    opts = read_options(params)
    try:
        tables = read(src, opts, rejects, workdir)
        # written before the threshold check, so a failed run still shows what was wrong
        rejects.write(out_dir / "rejects.jsonl")
        rejects.check(params.max_reject_fraction)

        _sink(tables.interactions, "interactions", out_dir / "interactions.parquet", workdir)
        inter = pl.scan_parquet(out_dir / "interactions.parquet")
        users = tables.users
        if users is None:
            users = inter.select("user").unique().sort("user").with_columns(extra=pl.lit("{}"))
        _sink(tables.items, "items", out_dir / "items.parquet", workdir)
        _sink(users, "users", out_dir / "users.parquet", workdir)
        side_dir = out_dir / "side"
        shutil.rmtree(side_dir, ignore_errors=True)
        for key, p in tables.side.items():
            side_dir.mkdir(exist_ok=True)
            shutil.move(str(p), side_dir / f"{key}{''.join(Path(p).suffixes)}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    counts = inter.select(
        interactions=pl.len(), users=pl.col("user").n_unique(), items=pl.col("item").n_unique()
    ).collect(engine="streaming").row(0, named=True)
    if counts["interactions"] == 0:
        raise IngestError(f"{src}: no usable interaction was read (see {out_dir / 'rejects.jsonl'})")
    per_domain = inter.group_by("domain").len().collect(engine="streaming").sort("domain")
    report = {"format": dataset.format, **counts}
    report.update({f"domain/{d}": n for d, n in per_domain.iter_rows()})
    report.update(rejects.summary())
    stats = dict(tables.stats)
    report["ts_kind"] = stats.pop("ts_kind", "time")
    if report["ts_kind"] not in TS_KINDS:  # a reader bug
        raise ValueError(f"reader stats: ts_kind={report['ts_kind']!r}, not one of {TS_KINDS}")
    report.update({k: int(v) for k, v in stats.items()})
    report["seconds"] = round(time.perf_counter() - t0, 2)
    return report
