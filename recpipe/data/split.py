"""Split protocols: assign every cleaned interaction to train, valid or test.

One split per run, shared by every method (evaluation.md section 4). Each protocol is a
function `(df, params, seed) -> (df with a "split" column, info dict)`, registered in
`PROTOCOLS`. All are seeded and deterministic: the same input and seed give the same split.

- `random`: per interaction, ratio `split.ratios` (RLMRec 3:1:1); every user and item keeps a
  training interaction (by repair or by redraw, `split.guarantee`).
- `user_ratio`: per user, `split.ratios` of the user's interactions (CLLM4Rec style); users
  with fewer than 3 interactions stay in train only.
- `loo`: per user by time: last -> test, second to last -> valid (SASRec/HeLLM); optional
  truncation to the last `split.loo_max_len` interactions first; < 3 interactions -> train.
- `temporal`: global time thresholds (HUM), as quantiles or dates. Where no timestamps
  exist (`ts_kind="position"`: the ingest report says `ts` is a position, seqtxt/cdsr),
  position order stands in for time: per user, the items at the last position -> test (two
  in a cross-domain release with one final item per domain), those at the position before
  -> valid; said in one printed line and recorded as `temporal_by: position`.
- `rlmrec`: keep the split a release arrived with (its `split` column).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from recpipe.data.rejects import IngestError
from recpipe.params import SplitParams


def _need_ts(df: pl.DataFrame, protocol: str) -> None:
    if df["ts"].null_count() > 0:
        raise IngestError(
            f"split.protocol={protocol} orders interactions by time, but "
            f"{df['ts'].null_count():,} interactions have no timestamp (e.g. the RLMRec release); "
            f"use split.protocol=random or user_ratio"
        )


def _assign(u: np.ndarray, ratios: list[float]) -> np.ndarray:
    """Map uniform draws to 0/1/2 (train/valid/test) by cumulative ratios."""
    return np.searchsorted(np.cumsum(ratios)[:2], u, side="right").astype(np.int8)


def _uncovered(df: pl.DataFrame, part: pl.Series, key: str) -> pl.Series:
    has_train = df.select(key).with_columns(t=part == 0).group_by(key).agg(pl.col("t").any())
    return has_train.filter(~pl.col("t"))[key]


def random_split(df: pl.DataFrame, p: SplitParams, seed: int):
    n = df.height
    if p.guarantee == "redraw":
        for attempt in range(p.max_redraws):
            part = pl.Series(_assign(np.random.default_rng(seed + attempt).random(n), p.ratios))
            if all(len(_uncovered(df, part, k)) == 0 for k in ("user", "item")):
                return _named(df, part), {"seed_used": seed + attempt, "redraws": attempt}
        raise IngestError(
            f"split.guarantee=redraw: no draw in {p.max_redraws} gave every user and item a "
            f"training interaction; raise split.user_core/item_core or use guarantee=repair"
        )
    rng = np.random.default_rng(seed)
    part_np = _assign(rng.random(n), p.ratios)
    moved = 0
    # moving an interaction into train never removes anyone's train, so one pass per key
    for key in ("user", "item"):
        part = pl.Series(part_np)
        missing = _uncovered(df, part, key)
        if len(missing) == 0:
            continue
        cand = (
            df.select(key).with_row_index("row")
            .with_columns(r=pl.Series(rng.random(n)))
            .filter(pl.col(key).is_in(missing.implode()))
        )
        rows = cand.sort("r").group_by(key, maintain_order=True).first()["row"].to_numpy()
        part_np[rows] = 0
        moved += len(rows)
    return _named(df, pl.Series(part_np)), {"seed_used": seed, "repaired": moved}


def user_ratio_split(df: pl.DataFrame, p: SplitParams, seed: int):
    r = pl.Series(np.random.default_rng(seed).random(df.height))
    _, rv, rt = p.ratios
    d = df.with_columns(__r=r).with_columns(
        __k=pl.col("__r").rank("ordinal").over("user") - 1, __n=pl.len().over("user")
    )
    n_test = pl.max_horizontal((pl.col("__n") * rt).round(0), pl.lit(1))
    n_valid = pl.max_horizontal((pl.col("__n") * rv).round(0), pl.lit(1))
    part = (
        pl.when(pl.col("__n") < 3).then(0)
        .when(pl.col("__k") < n_test).then(2)
        .when(pl.col("__k") < n_test + n_valid).then(1)
        .otherwise(0)
    )
    d = d.with_columns(__p=part)
    info = {"train_only_users": d.filter(pl.col("__n") < 3)["user"].n_unique()}
    return _named(df, d["__p"]), info


def loo_split(df: pl.DataFrame, p: SplitParams, seed: int):
    _need_ts(df, "loo")
    d = df.with_row_index("__o").sort(["user", "ts", "__o"])
    d = d.with_columns(__back=pl.int_range(pl.len()).reverse().over("user"), __n=pl.len().over("user"))
    dropped = 0
    if p.loo_max_len > 0:
        before = d.height
        d = d.filter(pl.col("__back") < p.loo_max_len).with_columns(
            __n=pl.len().over("user")
        )
        dropped = before - d.height
    part = (
        pl.when(pl.col("__n") < 3).then(0)
        .when(pl.col("__back") == 0).then(2)
        .when(pl.col("__back") == 1).then(1)
        .otherwise(0)
    )
    d = d.with_columns(__p=part).sort("__o")
    info = {"truncated": dropped, "train_only_users": d.filter(pl.col("__n") < 3)["user"].n_unique()}
    return _named(d.drop("__o", "__back", "__n", "__p"), d["__p"]), info


def _threshold(value: float | str, ts: pl.Series, key: str) -> int:
    if isinstance(value, float):
        return int(ts.quantile(value, interpolation="nearest"))
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError as e:
        raise IngestError(f"split.{key}: {value!r} is neither a quantile nor a date") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return int(when.timestamp())


def temporal_split(df: pl.DataFrame, p: SplitParams, seed: int):
    _need_ts(df, "temporal")
    t_valid = _threshold(p.temporal_valid, df["ts"], "temporal_valid")
    t_test = _threshold(p.temporal_test, df["ts"], "temporal_test")
    if t_test < t_valid:
        raise IngestError(f"split: temporal_test ({t_test}) is before temporal_valid ({t_valid})")
    part = df.select(
        pl.when(pl.col("ts") >= t_test).then(2).when(pl.col("ts") >= t_valid).then(1).otherwise(0)
    ).to_series()
    return _named(df, part), {"temporal_by": "time", "t_valid": t_valid, "t_test": t_test}


def temporal_by_position(df: pl.DataFrame, p: SplitParams, seed: int):
    """`temporal` on order-only positions: a global threshold on positions would compare
    users' sequence lengths, not times, so each user is split by order instead. Positions are
    ranked densely from the end, so every item at the last position is a test target (C2DSR
    releases end each user with one target per domain); < 3 positions -> train only."""
    print("split: temporal: ts holds positions (order only, no times), so each user's last "
          "position is test and the one before it validation (split/temporal_by=position)",
          flush=True)
    _need_ts(df, "temporal")
    back = pl.col("ts").rank("dense", descending=True).over("user") - 1
    d = df.with_columns(__back=back, __n=pl.col("ts").n_unique().over("user"))
    part = (pl.when(pl.col("__n") < 3).then(0).when(pl.col("__back") == 0).then(2)
            .when(pl.col("__back") == 1).then(1).otherwise(0))
    d = d.with_columns(__p=part)
    info = {"temporal_by": "position",
            "train_only_users": d.filter(pl.col("__n") < 3)["user"].n_unique()}
    return _named(d.drop("__back", "__n", "__p"), d["__p"]), info


def keep_release_split(df: pl.DataFrame, p: SplitParams, seed: int):
    if "split" not in df.columns or df["split"].null_count() == df.height:
        raise IngestError(
            "split.protocol=rlmrec keeps the split a release arrived with, but this dataset has "
            "none (only dataset.format=rlmrec or pre-split recbole files do); use random instead"
        )
    if df["split"].null_count():
        raise IngestError(f"split: {df['split'].null_count()} interactions carry no split label")
    return df, {}


NAMES = np.array(["train", "valid", "test"])


def _named(df: pl.DataFrame, part: pl.Series) -> pl.DataFrame:
    return df.with_columns(split=pl.Series(NAMES[part.to_numpy()]))


PROTOCOLS = {
    "random": random_split,
    "user_ratio": user_ratio_split,
    "loo": loo_split,
    "temporal": temporal_split,
    "rlmrec": keep_release_split,
}


def split(df: pl.DataFrame, p: SplitParams, seed: int,
          ts_kind: str = "time") -> tuple[pl.DataFrame, dict]:
    """`ts_kind`: what `ts` holds, from the ingest report: time (unix seconds) or position."""
    if p.protocol == "temporal" and ts_kind == "position":
        return temporal_by_position(df, p, seed)
    return PROTOCOLS[p.protocol](df, p, seed)
