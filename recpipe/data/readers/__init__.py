"""Raw-format readers: one module per published format, all producing the canonical tables.

A reader module exposes `read(path, opts, rejects, workdir) -> Tables`:
- `path`: the dataset folder (`dataset.path`); the reader finds files by their published names.
- `opts`: `ReadOptions` (the `ingest` params section).
- `rejects`: a `RejectLog`; bad lines go there, never silently away.
- `workdir`: scratch folder for streamed Parquet parts (deleted by the ingest stage).

Registration is explicit: add the module to `READERS`. Modules load lazily, so listing the
formats does not import every reader's dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from recpipe.data.rejects import IngestError
from recpipe.registry import resolve

READERS: dict[str, str] = {
    "amazon2018": "recpipe.data.readers.amazon2018:read",
    "amazon2014": "recpipe.data.readers.amazon2014:read",
    "amazon2023": "recpipe.data.readers.amazon2023:read",
    "yelp": "recpipe.data.readers.yelp:read",
    "steam": "recpipe.data.readers.steam:read",
    "rlmrec": "recpipe.data.readers.rlmrec:read",
    "seqtxt": "recpipe.data.readers.seqtxt:read",
    "recbole": "recpipe.data.readers.recbole:read",
    "cdsr": "recpipe.data.readers.cdsr:read",
}


@dataclass
class ReadOptions:
    """What a reader may be told beyond the folder (mirrors the `ingest` params section)."""

    categories: list[str] = field(default_factory=list)  # empty: every category in the folder
    workers: int = 0  # processes for Python-literal parsing; 0 = all cores
    chunk_lines: int = 200_000  # lines per chunk for line-by-line parsers (bounds memory)
    steam_source: str = "auto"  # which Steam interaction file to use
    chunk_mb: float = 32.0  # MiB of decompressed text per block for the NDJSON fast path
    strict_last_line: bool = False  # seqtxt: reject a last line lacking its line break


@dataclass
class Tables:
    """A reader's result. Frames may be lazy (scans of streamed parts) or eager."""

    interactions: pl.LazyFrame | pl.DataFrame
    items: pl.LazyFrame | pl.DataFrame
    users: pl.LazyFrame | pl.DataFrame | None = None  # None: derived from interactions
    side: dict[str, Path] = field(default_factory=dict)  # extra files written into workdir
    stats: dict = field(default_factory=dict)  # flat counts for the ingest report


def get_reader(name: str):
    return resolve(READERS, name, "dataset.format", IngestError)


def find_files(folder: Path, patterns: list[str], what: str) -> list[Path]:
    """Files in `folder` matching any glob in `patterns`; a clear error when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise IngestError(f"dataset.path={str(folder)!r} is not a folder; {what} expected there")
    found = sorted({p for pat in patterns for p in folder.glob(pat) if p.is_file()})
    if not found:
        raise IngestError(
            f"no {what} in {folder}: expected a file named like {' or '.join(patterns)}"
        )
    return found


def select_categories(found: dict, opts: ReadOptions, expected: str) -> dict:
    """Keep the entries of `found` (category -> files) that `ingest.categories` names.

    Empty `ingest.categories` keeps everything; a name with no files is an error that says
    which file name was `expected` and what the folder does hold.
    """
    if not opts.categories:
        return dict(found)
    unknown = [c for c in opts.categories if c not in found]
    if unknown:
        raise IngestError(
            f"ingest.categories={unknown}: no {expected} for them (found: {', '.join(sorted(found))})"
        )
    return {c: found[c] for c in opts.categories}
