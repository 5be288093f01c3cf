"""Per-unit significance for the grid: a paired test over users, not only over seeds.

Three seeds give a paired t-test over seeds 2 degrees of freedom, which detects only large
gaps. Every finished cell also wrote the evaluator's per-user table (`per_user.parquet`, its
path in the full metrics). The collector reads each one from the experiment through DVC's cache:

    units = read_units(repo, rev, "models/hellm/per_user.parquet")  # test rows, all domains
    mean = seed_mean([units_s1, units_s2, units_s3], "recall@20")   # each unit over its seeds
    p, n = versus(mean_method, mean_baseline, "recall@20")          # paired t over common units

A unit is a row of that table, keyed by `uid` (and `pos` where the protocol scores each
interaction). A method that scores a user subsample (the LLM stages on a CPU) is compared on
the users both rows scored, and `n` says how many.
"""

from __future__ import annotations

import io
from pathlib import Path

KEYS = ("uid", "pos")  # the unit; `pos` only under per-interaction protocols


def read_units(repo: Path, rev: str | None, path: str):
    """The test rows over all domains of a cell's per-user table (polars DataFrame: key
    columns + one column per metric), read at experiment `rev`; None when it cannot be read."""
    if not rev or not path:
        return None
    import dvc.api
    import polars as pl

    try:
        with dvc.api.open(path, repo=str(repo), rev=rev, mode="rb") as f:
            df = pl.read_parquet(io.BytesIO(f.read()))
    except Exception:  # noqa: BLE001 - gc'ed from the cache or never written: no unit test
        return None
    if "part" in df.columns:
        df = df.filter(pl.col("part") == "test")
    if "domain" in df.columns:
        whole = df.filter(pl.col("domain") == "all")
        df = whole if whole.height else df  # per-domain rows only: each (unit, domain) counts
    return df.drop([c for c in ("part",) if c in df.columns])


def _keys(df) -> list[str]:
    return [k for k in (*KEYS, "domain") if k in df.columns]


def seed_mean(frames: list, metric: str):
    """One frame (keys + `metric`): each unit's metric averaged over the seeds that scored it;
    None without frames or without the metric. A stage that scores a user subsample draws it
    with the seed, so three seeds of 100 users out of 2,000 share almost none: the units any
    seed scored are kept (a full-coverage baseline covers them all), not only the common ones."""
    import polars as pl

    frames = [f for f in frames if f is not None and metric in f.columns]
    if not frames:
        return None
    keys = _keys(frames[0])
    long = pl.concat([f.select([*keys, pl.col(metric).cast(pl.Float64)]) for f in frames])
    return long.group_by(keys, maintain_order=True).agg(pl.col(metric).mean())


def versus(a, b, metric: str) -> tuple[float | None, int]:
    """(two-sided paired t-test p of a against b over the units both have, their number);
    p is None below 2 common units."""
    from recpipe.eval.significance import paired

    if a is None or b is None:
        return None, 0
    keys = [k for k in _keys(a) if k in b.columns]
    both = a.join(b, on=keys, how="inner", suffix="_b")
    if both.height < 2:
        return None, both.height
    r = paired(both[f"{metric}_b"].to_numpy(), both[metric].to_numpy(), n_boot=0)
    return r.t_p, both.height
