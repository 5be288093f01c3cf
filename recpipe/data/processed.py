"""The `split` stage's work: interim tables -> cleaned, split, integer-indexed tables.

Outputs in `processed/` (the contract later stages read, see README "Data layout"):
- `train/valid/test.parquet`: uid (i32), iid (i32), ts (i64), domain (str)
- `user_map.parquet` (uid, user), `item_map.parquet` (iid, item): 0-based ids
- `interactions.parquet`: uid, iid, rating, ts, review, domain, split (review text for the
  profile stage, which must read `split == "train"` rows only)
- `items.parquet` / `users.parquet`: canonical side tables with iid / uid, in id order
- `sampled_users.parquet` when `split.sample_users < 1`
- side files of a release (`user_emb.npy`, `item_profiles.parquet`, ...) re-indexed to uid/iid

Ids are assigned in release order where a release had one (`orig_id`), else by raw id, so
they are stable across runs and independent of file order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from recpipe.data.clean import clean, sample_users
from recpipe.data.schema import SPLIT_NAMES
from recpipe.data.split import split
from recpipe.io import write_npy, write_parquet
from recpipe.params import SplitParams


def _ids(keys: pl.Series, side: pl.DataFrame, key: str, id_col: str) -> pl.DataFrame:
    """0-based ids for `keys`: by the side table's orig_id when present, else by raw id."""
    frame = pl.DataFrame({key: keys.unique()})
    frame = frame.join(side.select(key, "orig_id").unique(key, keep="first"), on=key, how="left")
    frame = frame.sort(["orig_id", key], nulls_last=True)
    return frame.select(pl.int_range(pl.len(), dtype=pl.Int32).alias(id_col), key, "orig_id")


def build(interim: Path, out: Path, p: SplitParams, seed: int, ts_kind: str = "time") -> dict:
    interim, out = Path(interim), Path(out)
    raw = pl.read_parquet(interim / "interactions.parquet")
    items = pl.read_parquet(interim / "items.parquet")
    users = pl.read_parquet(interim / "users.parquet")

    if p.protocol == "rlmrec":
        # a release is already cleaned and split; re-cleaning would change its counts. Only
        # user sampling applies (a smaller run of the same split): each kept user keeps every
        # row, in its own split, and no k-core runs after it.
        df, sampled, removed = sample_users(raw, p.sample_users, seed)
        stats = {"removed/user_sampling": removed} if sampled is not None else {}
    else:
        df, stats, sampled = clean(raw, p, seed)
    df, info = split(df, p, seed, ts_kind)

    umap = _ids(df["user"], users, "user", "uid")
    imap = _ids(df["item"], items, "item", "iid")
    df = df.join(umap.drop("orig_id"), on="user").join(imap.drop("orig_id"), on="item")
    df = df.sort(["uid", "ts", "iid"], nulls_last=True)

    for name in SPLIT_NAMES:
        part = df.filter(pl.col("split") == name).select("uid", "iid", "ts", "domain")
        write_parquet(out / f"{name}.parquet", part)
    write_parquet(out / "user_map.parquet", umap.select("uid", "user"))
    write_parquet(out / "item_map.parquet", imap.select("iid", "item"))
    write_parquet(
        out / "interactions.parquet",
        df.select("uid", "iid", "rating", "ts", "review", "domain", "split"),
    )
    write_parquet(out / "items.parquet", imap.select("iid", "item").join(items, on="item", how="left"))
    write_parquet(out / "users.parquet", umap.select("uid", "user").join(users, on="user", how="left"))
    if sampled is not None:
        write_parquet(out / "sampled_users.parquet", sampled)
    _reindex_side(interim / "side", out, umap, imap)
    return _report(df, umap, imap, stats, info, p)


def _reindex_side(side: Path, out: Path, umap: pl.DataFrame, imap: pl.DataFrame) -> None:
    """Release side files are keyed by the release's ids; re-key them by uid / iid."""
    for prefix, ids in (("user", umap), ("item", imap)):
        orig = ids["orig_id"]
        emb = side / f"{prefix}_emb.npy"
        if emb.exists():
            m = np.load(emb, allow_pickle=False)
            if orig.null_count():
                raise ValueError(f"{emb}: cannot align rows, some {prefix}s have no release id")
            write_npy(out / f"{prefix}_emb.npy", m[orig.to_numpy()].astype(np.float32))
        prf = side / f"{prefix}_profiles.parquet"
        if prf.exists():
            idc = "uid" if prefix == "user" else "iid"
            t = pl.read_parquet(prf).drop("id", strict=False)
            t = ids.select(idc, "orig_id").join(t, on="orig_id", how="inner").drop("orig_id")
            write_parquet(out / f"{prefix}_profiles.parquet", t.sort(idc))


def _report(df, umap, imap, stats, info, p: SplitParams) -> dict:
    n_u, n_i = umap.height, imap.height
    counts = dict(df.group_by("split").len().iter_rows())
    rep = {"protocol": p.protocol, "users": n_u, "items": n_i, "interactions": df.height}
    rep.update({s: int(counts.get(s, 0)) for s in SPLIT_NAMES})
    rep["density"] = round(df.height / max(1, n_u * n_i), 8)
    per = df.group_by("domain", "split").len().sort("domain", "split")
    for d, s, n in per.iter_rows():
        rep[f"domain/{d}/{s}"] = int(n)
    for d, n in df.group_by("domain").agg(pl.col("iid").n_unique()).sort("domain").iter_rows():
        rep[f"domain/{d}/items"] = int(n)
    train_items = df.filter(pl.col("split") == "train")["iid"].unique()
    for s in ("valid", "test"):
        cold = df.filter((pl.col("split") == s) & ~pl.col("iid").is_in(train_items.implode()))
        rep[f"cold_items/{s}"] = int(cold["iid"].n_unique())
    rep.update(stats)
    rep.update({f"split/{k}": v for k, v in info.items()})
    return rep
