"""The canonical tables every reader produces and every later stage consumes.

See ARCHITECTURE.md ("Canonical tables"). Readers build polars frames with these columns (in
this order, with these dtypes); `conform` casts and orders a frame and fails loudly when a
required column is missing, so a reader bug surfaces at ingest time and not three stages later.

Two optional columns exist beyond the design card:
- `interactions.split` (str: train/valid/test): set only by formats that arrive already split
  (the RLMRec release); the `rlmrec` split protocol keeps it.
- `users.orig_id` / `items.orig_id` (i64): the integer id a pre-indexed release used (RLMRec,
  S3Rec sequences). The split stage numbers entities in this order, so release-aligned side
  files (e.g. RLMRec's embedding matrices) keep lining up with our integer ids.
- `interactions.extra` (str, JSON): per-review leftovers (summary, votes, verified, ...).
"""

from __future__ import annotations

import polars as pl

INTERACTIONS = {
    "user": pl.String,
    "item": pl.String,
    "rating": pl.Float32,
    "ts": pl.Int64,
    "review": pl.String,
    "domain": pl.String,
    "extra": pl.String,
    "split": pl.String,
}
ITEMS = {
    "item": pl.String,
    "title": pl.String,
    "description": pl.String,
    "categories": pl.List(pl.String),
    "brand": pl.String,
    "price": pl.Float64,
    "domain": pl.String,
    "extra": pl.String,
    "orig_id": pl.Int64,
}
USERS = {"user": pl.String, "extra": pl.String, "orig_id": pl.Int64}

# What most readers build before `conform`: the canonical columns less the optional extras
# that only pre-indexed or pre-split releases carry.
READER_INTERACTIONS = {k: v for k, v in INTERACTIONS.items() if k != "split"}
READER_ITEMS = {k: v for k, v in ITEMS.items() if k != "orig_id"}

# Columns a reader must fill (never null); every other column may be absent (-> null).
REQUIRED = {
    "interactions": ("user", "item", "domain"),
    "items": ("item",),
    "users": ("user",),
}
SCHEMAS = {"interactions": INTERACTIONS, "items": ITEMS, "users": USERS}

SPLIT_COLUMNS = {"uid": pl.Int32, "iid": pl.Int32, "ts": pl.Int64, "domain": pl.String}
SPLIT_NAMES = ("train", "valid", "test")


def conform(df: pl.DataFrame | pl.LazyFrame, table: str):
    """Cast `df` to the canonical schema of `table`, adding missing optional columns as nulls."""
    schema = SCHEMAS[table]
    names = df.collect_schema().names() if isinstance(df, pl.LazyFrame) else df.columns
    missing = [c for c in REQUIRED[table] if c not in names]
    if missing:
        raise ValueError(f"{table} table lacks required column(s) {missing}; has {names}")
    exprs = [
        (pl.col(c).cast(t) if c in names else pl.lit(None, dtype=t).alias(c))
        for c, t in schema.items()
    ]
    return df.select(exprs)


def empty(table: str) -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMAS[table])
