"""Per-user metric values of a method, the units of the paired significance test.

A method with several seeds is tested on its per-unit values averaged over the seeds, so the
test compares methods, not one lucky seed.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recpipe.eval.report.runs import Run
from recpipe.eval.significance import KEYS


def unit_keys(df: pl.DataFrame) -> list[str]:
    """The columns that name a unit: (uid, domain, part), and with sample-level units (HUM's,
    several per user) also `sample`, the target's row in the split's sequences."""
    return [*KEYS, "sample"] if "sample" in df.columns else list(KEYS)


class _PerUser:
    """Per-user tables, read once; unit values of a method averaged over its seeds."""

    def __init__(self):
        self._cache: dict[Path, pl.DataFrame] = {}

    def _read(self, path: Path) -> pl.DataFrame:
        if path not in self._cache:
            self._cache[path] = pl.read_parquet(path)
        return self._cache[path]

    def units(self, seeds: list[Run], metric: str, part: str,
              domain: str | None) -> pl.DataFrame | None:
        """(uid, domain, part, metric) averaged over seeds; None when a table or column is missing.

        `domain=None` is the overall number: the "all" rows, or every row when a preset only has
        per-domain units (HUM). Raises ValueError when seeds were evaluated on different units.
        """
        frames = []
        for r in seeds:
            if r.per_user is None:
                return None
            df = self._read(r.per_user)
            if metric not in df.columns or "part" not in df.columns:
                return None
            df = df.filter(pl.col("part") == part)
            if domain is not None:
                df = df.filter(pl.col("domain") == domain)
            elif (df["domain"] == "all").any():
                df = df.filter(pl.col("domain") == "all")
            frames.append(df.select([*unit_keys(df), pl.col(metric).cast(pl.Float64)]))
        n = frames[0].height
        avg = pl.concat(frames).group_by(unit_keys(frames[0])).agg(pl.col(metric).mean(),
                                                         pl.len().alias("_n"))
        same = all(f.height == n for f in frames) and avg.height == n
        if not same or (avg["_n"] != len(frames)).any():
            raise ValueError(f"seeds of {seeds[0].model!r} were evaluated on different units")
        return avg.drop("_n")
