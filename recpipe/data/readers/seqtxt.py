"""S3Rec-style sequence files (Zhou et al., CIKM 2020: https://github.com/aHuiWang/CIKM2020-S3Rec;
the same files feed ICLRec, E4SRec and HeLLM-style baselines).

Files, found in `dataset.path`:
- `<Name>.txt` (one or more): `user item item ...` per line, whitespace-separated integer ids,
  items in time order, ids usually 1-based.
- `<Name>_item2attributes.json` (optional): `{"item_id": [attr_id, ...]}`.

The files carry no time, only order, so `ts` is the item's position in its user's sequence
(0, 1, 2, ...): an ordinal pseudo-timestamp. It preserves order within a user, which is all
leave-one-out and sequential models need; it means nothing across users, so a global
temporal split on it is meaningless. `rating` is null (implicit feedback).

`orig_id` = int(id) - min id of that kind in the file, so the release's 1-based ids become
0-based and the split stage numbers users and items in release order.

A sequence file is read whole (it is compact: ~2 MB for 300k interactions) and exploded with
polars, with no per-interaction Python loop.

Several `.txt` files are several domains (`ingest.categories` filters them by Name). Their ids
are independent integer spaces (Beauty's item 1 is not Toys' item 1), so with more than one
domain every id is prefixed `<Name>:` and `orig_id` is offset by the id ranges of the domains
before it (in name order), keeping ids unique and each domain's release order.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recpipe.data.readers import ReadOptions, Tables, find_files, select_categories
from recpipe.data.rejects import IngestError, RejectLog

ATTRS_SUFFIX = "_item2attributes.json"
_INT = r"^\d+$"


def read(path: Path, opts: ReadOptions, rejects: RejectLog, workdir: Path) -> Tables:
    files = find_files(Path(path), ["*.txt"], "sequence file (<Name>.txt, S3Rec format)")
    by_name = {f.stem: f for f in files}
    by_name = select_categories(by_name, opts, "<Name>.txt")
    multi = len(by_name) > 1
    inters, items, users = [], [], []
    stats: dict[str, int] = {}
    offsets = {"user": 0, "item": 0}
    for name in sorted(by_name):
        inter = _read_sequences(by_name[name], name, rejects)
        attrs = _read_attributes(Path(path) / f"{name}{ATTRS_SUFFIX}", rejects)
        item_ids = pl.concat([inter["item"], attrs["item"]]).unique().to_frame("item")
        item_tab = _items(item_ids, attrs, name, offsets["item"], stats)
        user_tab = _numbered(inter["user"].unique().to_frame("user"), "user", offsets["user"])
        user_tab = user_tab.with_columns(extra=pl.lit("{}"))
        for key, tab in (("user", user_tab), ("item", item_tab)):
            offsets[key] = int(tab["orig_id"].max()) + 1 if tab.height else offsets[key]
        stats[f"{name}/users"] = user_tab.height
        stats[f"{name}/items"] = item_tab.height
        stats[f"{name}/interactions"] = inter.height
        if multi:
            inter = inter.with_columns(_prefix("user", name), _prefix("item", name))
            user_tab = user_tab.with_columns(_prefix("user", name))
            item_tab = item_tab.with_columns(_prefix("item", name))
        inters.append(inter)
        items.append(item_tab)
        users.append(user_tab)
    return Tables(
        interactions=pl.concat(inters),
        items=pl.concat(items),
        users=pl.concat(users),
        stats=stats,
    )


def _prefix(col: str, name: str) -> pl.Expr:
    return (pl.lit(f"{name}:") + pl.col(col)).alias(col)


def _numbered(ids: pl.DataFrame, col: str, offset: int) -> pl.DataFrame:
    """Add orig_id = int(id) - min(id) + offset, sorted by it (release order)."""
    num = pl.col(col).cast(pl.Int64)
    return ids.with_columns(orig_id=num - num.min() + offset).sort("orig_id")


def _read_sequences(f: Path, name: str, rejects: RejectLog) -> pl.DataFrame:
    """`user i1 i2 ...` lines -> one row per (user, item) with ts = position, vectorised."""
    raw = f.read_bytes().decode("utf-8", errors="replace").split("\n")
    if raw and raw[-1] == "":
        raw.pop()  # the final newline does not start another line
    rejects.count_lines(f, len(raw))
    lines = (
        pl.DataFrame({"text": raw}, schema={"text": pl.String})
        .with_row_index("line", offset=1)
        .with_columns(tokens=pl.col("text").str.extract_all(r"\S+"))
        .filter(pl.col("tokens").list.len() > 0)  # blank lines are not records
    )
    user_ok = pl.col("tokens").list.first().str.contains(_INT)
    items_ok = pl.col("tokens").list.slice(1).list.eval(pl.element().str.contains(_INT)).list.all()
    has_items = pl.col("tokens").list.len() > 1
    user = pl.col("tokens").list.first()
    checks = (
        (~user_ok, "user id is not an integer", "user"),
        (~items_ok, "item id is not an integer", "item"),
        (~has_items, "user line has no items", "item"),
        (~user.is_first_distinct(), "user already has a sequence on an earlier line", "user"),
    )
    ok = pl.lit(True)
    for bad, reason, field in checks:
        for n, text in lines.filter(ok & bad).select("line", "text").iter_rows():
            rejects.add(f, n, reason, field=field, text=text)
        ok = ok & ~bad
    good = lines.filter(ok)
    return (
        good.select(user=user, item=pl.col("tokens").list.slice(1))
        .with_columns(ts=pl.int_ranges(0, pl.col("item").list.len(), dtype=pl.Int64))
        .explode(["item", "ts"])
        .with_columns(rating=pl.lit(None, pl.Float32), domain=pl.lit(name))
    )


def _read_attributes(f: Path, rejects: RejectLog) -> pl.DataFrame:
    """`{"item": [attr, ...]}` -> (item, attributes list[i64]); empty when the file is absent."""
    schema = {"item": pl.String, "attributes": pl.List(pl.Int64)}
    if not f.is_file():
        return pl.DataFrame(schema=schema)
    import orjson

    try:
        obj = orjson.loads(f.read_bytes())
    except orjson.JSONDecodeError as e:
        raise IngestError(f"{f}: not valid JSON ({e}); expected {{\"item_id\": [attr_id, ...]}}")
    if not isinstance(obj, dict):
        raise IngestError(f"{f}: expected a JSON object {{\"item_id\": [attr_id, ...]}}")
    rejects.count_lines(f, len(obj))  # one "line" per item, so reject fractions make sense
    keys, values = [], []
    for key, attrs in obj.items():  # per item, not per interaction
        if not key.isdigit():
            rejects.add(f, 0, f"item id {key!r} is not an integer", field="item_id")
        elif not isinstance(attrs, list) or not all(
            isinstance(a, int) and not isinstance(a, bool) for a in attrs
        ):
            rejects.add(f, 0, f"item {key}: attributes {attrs!r} are not a list of integers",
                        field="attributes")
        else:
            keys.append(key)
            values.append(attrs)
    return pl.DataFrame({"item": keys, "attributes": values}, schema=schema)


def _items(ids: pl.DataFrame, attrs: pl.DataFrame, name: str, offset: int, stats) -> pl.DataFrame:
    tab = _numbered(ids, "item", offset).join(attrs, on="item", how="left")
    missing = int(tab["attributes"].null_count())
    if attrs.height:
        stats[f"{name}/items_without_attributes"] = missing
    extra = pl.when(pl.col("attributes").is_not_null()).then(
        pl.struct("attributes").struct.json_encode()
    )
    return tab.select(
        "item",
        title=pl.lit(None, pl.String),
        description=pl.lit(None, pl.String),
        categories=pl.lit([], pl.List(pl.String)),
        brand=pl.lit(None, pl.String),
        price=pl.lit(None, pl.Float64),
        domain=pl.lit(name),
        extra=extra.otherwise(pl.lit("{}")),
        orig_id="orig_id",
    )
