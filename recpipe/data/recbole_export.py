"""Write the pipeline's split as RecBole atomic files, so RecBole's own models can be run on
exactly the same train/valid/test interactions (RecBole's `benchmark_filename` option).

Input (the split stage's output in `processed_dir`): `{train,valid,test}.parquet` (uid, iid, ts,
domain), `user_map.parquet` (uid, user), `item_map.parquet` (iid, item), optional
`items.parquet` (canonical items columns plus iid).

Output in `out_dir` (RecBole expects `<data_path>/<name>/<name>.*`, so pass that folder):
- `<name>.{train,valid,test}.inter`: `user_id:token  item_id:token  timestamp:float`, with the raw
  ids (so the files mean the same thing outside this pipeline). A `domain:token` column is added
  only for multi-domain data. A null ts is written as an empty field.
- `<name>.item` (when items exist): `item_id:token  title:token_seq  categories:token_seq`.
  token_seq is space-separated, so spaces inside one category become `_` ("Skin Care" ->
  "Skin_Care") to keep it one token.
Tabs and line breaks inside any text become spaces: they would split fields and rows.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recpipe.data.schema import SPLIT_NAMES
from recpipe.io import atomic_path


def _clean(col: str | pl.Expr) -> pl.Expr:
    expr = pl.col(col) if isinstance(col, str) else col
    return expr.str.replace_all(r"[\t\r\n]+", " ").str.strip_chars()


def export_recbole(processed_dir: Path, out_dir: Path, name: str) -> list[Path]:
    """Write `<name>.{train,valid,test}.inter` (and `<name>.item`) into `out_dir`; return them."""
    processed_dir, out_dir = Path(processed_dir), Path(out_dir)
    user_map = pl.read_parquet(processed_dir / "user_map.parquet", columns=["uid", "user"])
    item_map = pl.read_parquet(processed_dir / "item_map.parquet", columns=["iid", "item"])
    splits = {s: pl.read_parquet(processed_dir / f"{s}.parquet") for s in SPLIT_NAMES}
    domains = pl.concat([df.select("domain") for df in splits.values()]).unique()
    multi_domain = domains.height > 1

    written = []
    for split, df in splits.items():
        joined = df.join(user_map, on="uid", how="left").join(item_map, on="iid", how="left")
        unmapped = joined.filter(pl.col("user").is_null() | pl.col("item").is_null())
        if unmapped.height:
            row = unmapped.row(0, named=True)
            raise ValueError(
                f"{processed_dir / f'{split}.parquet'}: {unmapped.height} rows have a uid/iid "
                f"missing from user_map/item_map (first: uid={row['uid']}, iid={row['iid']})"
            )
        cols = [
            _clean("user").alias("user_id:token"),
            _clean("item").alias("item_id:token"),
            pl.col("ts").cast(pl.String).alias("timestamp:float"),
        ]
        if multi_domain:
            cols.append(_clean("domain").alias("domain:token"))
        written.append(_write_tsv(out_dir / f"{name}.{split}.inter", joined.select(cols)))

    items_path = processed_dir / "items.parquet"
    if items_path.is_file():
        items = pl.read_parquet(items_path, columns=["iid", "title", "categories"])
        items = item_map.join(items, on="iid", how="inner").sort("iid")
        if items.height:
            cats = (
                pl.col("categories")
                .list.eval(_clean(pl.element()).str.replace_all(" +", "_"))
                .list.eval(pl.element().filter(pl.element() != ""))
                .list.join(" ")
            )
            table = items.select(
                _clean("item").alias("item_id:token"),
                _clean("title").alias("title:token_seq"),
                cats.alias("categories:token_seq"),
            )
            written.append(_write_tsv(out_dir / f"{name}.item", table))
    return written


def _write_tsv(path: Path, df: pl.DataFrame) -> Path:
    # quote_style="never": RecBole reads with a plain tab split, quotes would stay in the ids
    with atomic_path(path) as tmp:
        df.write_csv(tmp, separator="\t", quote_style="never", null_value="")
    return path
