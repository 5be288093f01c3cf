"""Atomic writes for every artifact the pipeline produces.

A stage that dies half-way must never leave a truncated Parquet or JSON file behind that a
later stage (or `dvc repro`) would trust. Every writer below writes to a temporary name in the
destination folder and then `os.replace`s it, which is atomic on POSIX file systems.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success move it into place, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give artifacts the usual permissions under the user's umask
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=indent, sort_keys=False, default=_json_default) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_parquet(path: str | os.PathLike, df) -> None:
    """Write a polars DataFrame to Parquet atomically (zstd, statistics on)."""
    with atomic_path(path) as tmp:
        df.write_parquet(tmp, compression="zstd", statistics=True)


def write_npy(path: str | os.PathLike, array) -> None:
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)


def write_hparams(path: str | os.PathLike, **sections: Any) -> dict:
    """Write what a model stage trained with to `path` (JSON, atomically) and return it.

    One key per section, e.g. `write_hparams(out / "hparams.json", model="bprmf",
    params=cfg.bprmf, train=tr_cfg, seeds=[2023], device="cuda")`: pass the values as
    resolved after presets and overrides; dataclasses become mappings, the rest must be JSON.
    """
    import dataclasses

    doc = {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) and not isinstance(v, type) else v
           for k, v in sections.items()}
    write_json(path, doc)
    return doc


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def _json_default(o: Any) -> Any:
    # numpy scalars sneak into metrics dicts; store them as plain numbers.
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
