"""Cleaning before the split: dedupe, domain filter, rating threshold, user sampling, k-core.

The order follows RLMRec's description of its data (drop low ratings -> sample users ->
k-core), with deduplication first because the official Amazon "5-core" files contain exact
duplicate lines. Each step records how many rows it removed, so `metrics/dataset.json`
explains where the data went; a step that leaves nothing stops with a message naming it.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recpipe.data.rejects import IngestError
from recpipe.params import SplitParams

CONTENT = ["user", "item", "rating", "ts", "review", "domain"]


def _empty_check(df: pl.DataFrame, step: str, hint: str) -> None:
    if df.height == 0:
        raise IngestError(f"split: no interaction is left after {step}; {hint}")


def clean(df: pl.DataFrame, p: SplitParams, seed: int) -> tuple[pl.DataFrame, dict, pl.DataFrame | None]:
    """Return (cleaned interactions, removal counts, sampled users or None)."""
    stats: dict[str, int] = {}
    n = df.height
    # row order is file order; it breaks ties between equal timestamps ("keep the latest")
    df = df.with_row_index("__order")

    df = df.unique(subset=CONTENT, keep="first", maintain_order=True)
    stats["removed/exact_duplicates"] = n - df.height

    if p.domains:
        known = sorted(df["domain"].unique().to_list())
        missing = [d for d in p.domains if d not in known]
        if missing:
            raise IngestError(f"split.domains: {missing} not in the data; domains are {known}")
        n = df.height
        df = df.filter(pl.col("domain").is_in(p.domains))
        stats["removed/domain"] = n - df.height

    if p.min_rating is not None:
        n = df.height
        df = df.filter(pl.col("rating").is_null() | (pl.col("rating") >= p.min_rating))
        stats["removed/rating"] = n - df.height
        _empty_check(df, f"split.min_rating={p.min_rating}", "lower it or set it to null")

    # one interaction per (user, item): the latest by time, then by file order
    n = df.height
    df = (
        df.sort(["ts", "__order"], nulls_last=False)
        .unique(subset=["user", "item"], keep="last", maintain_order=True)
        .sort("__order")
    )
    stats["removed/duplicate_pairs"] = n - df.height

    df, sampled, removed = sample_users(df, p.sample_users, seed)
    if sampled is not None:
        stats["removed/user_sampling"] = removed

    n = df.height
    df = kcore(df, p.user_core, p.item_core)
    stats["removed/kcore"] = n - df.height
    _empty_check(
        df, f"the {p.user_core}/{p.item_core}-core filter",
        "lower split.user_core / split.item_core (the data are too sparse for them)",
    )
    return df.drop("__order"), stats, sampled


def sample_users(df: pl.DataFrame, fraction: float, seed: int) -> tuple[pl.DataFrame, pl.DataFrame | None, int]:
    """Keep a seeded `fraction` of the users with all their rows: (rows, kept users or None,
    rows removed). Users are drawn from their sorted ids, so the draw does not depend on row order."""
    if fraction >= 1.0:
        return df, None, 0
    users = np.array(sorted(df["user"].unique().to_list()), dtype=object)
    k = max(1, int(round(fraction * len(users))))
    keep = np.sort(np.random.default_rng(seed).choice(len(users), size=k, replace=False))
    sampled = pl.DataFrame({"user": users[keep].tolist()}, schema={"user": pl.String})
    kept = df.join(sampled, on="user", how="semi")
    return kept, sampled, df.height - kept.height


def kcore(df: pl.DataFrame, user_k: int, item_k: int) -> pl.DataFrame:
    """Iteratively drop users with < user_k and items with < item_k interactions."""
    if user_k <= 1 and item_k <= 1:
        return df
    while True:
        n = df.height
        if item_k > 1:
            df = df.filter(pl.len().over("item") >= item_k)
        if user_k > 1:
            df = df.filter(pl.len().over("user") >= user_k)
        if df.height == n:
            return df
