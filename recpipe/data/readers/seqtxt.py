"""S3Rec-style sequence files (Zhou et al., CIKM 2020: https://github.com/aHuiWang/CIKM2020-S3Rec;
the same files feed ICLRec, E4SRec and HeLLM-style baselines).

Files, found in `dataset.path`:
- `<Name>.txt` (one or more): `user item item ...` per line, whitespace-separated integer ids,
  items in time order, ids usually 1-based.
- `<Name>_item2attributes.json` (optional): `{"item_id": [attr_id, ...]}`.

The files carry no time, only order, so `ts` is the item's position in its user's sequence
(0, 1, 2, ...): an ordinal pseudo-timestamp. It preserves order within a user, which is all
leave-one-out and sequential models need; it means nothing across users, so a global
temporal split on it is meaningless: the reader declares `ts_kind: position` (stats), and
`split.protocol=temporal` then splits per user by position. `rating` is null (implicit
feedback).

`orig_id` = int(id) - min id of that kind in the file, so the release's 1-based ids become
0-based and the split stage numbers users and items in release order.

A sequence file is read whole (it is compact: ~2 MB for 300k interactions) and exploded with
polars, with no per-interaction Python loop.

Several `.txt` files are several domains (`ingest.categories` filters them by Name). Their ids
are independent integer spaces (Beauty's item 1 is not Toys' item 1), so with more than one
domain every id is prefixed `<Name>:` and `orig_id` is offset by the id ranges of the domains
before it (in name order), keeping ids unique and each domain's release order.

A last line without a line break may have been cut mid-number, which still parses: it is kept
with a warning and counted (`<Name>/truncated_last_line`), or rejected with
`ingest.strict_last_line: true`.
"""

from __future__ import annotations

import sys
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
    stats: dict = {"ts_kind": "position"}  # ts is an ordinal position (module docstring)
    offsets = {"user": 0, "item": 0}
    for name in sorted(by_name):
        inter, cut = _read_sequences(by_name[name], name, rejects, opts.strict_last_line)
        stats[f"{name}/truncated_last_line"] = int(cut)
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


def _read_sequences(f: Path, name: str, rejects: RejectLog,
                    strict_last_line: bool = False) -> tuple[pl.DataFrame, bool]:
    """`user i1 i2 ...` lines -> one row per (user, item) with ts = position, vectorised.

    Also returns whether the last line lacks its line break (`_cut_last_line`).
    """
    raw = f.read_bytes().decode("utf-8", errors="replace").split("\n")
    if raw and raw[-1] == "":
        raw.pop()  # the final newline does not start another line
        cut = False
    else:  # no final line break (or an empty file)
        cut = _cut_last_line(f, raw, strict_last_line, rejects)
    rejects.count_lines(f, len(raw))
    if cut and strict_last_line:
        raw[-1] = ""  # rejected above; blank lines are skipped, so line numbers stay right
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
    ), cut


def _cut_last_line(f: Path, raw: list[str], strict: bool, rejects: RejectLog) -> bool:
    """Whether `raw`, split from a file that does not end with a line break, ends with a
    record line (then possibly cut short); warn, or reject that line when `strict`.

    Every line of a complete file ends with a line break, so a last line without one may be
    a copy cut short, and a number cut short is still a number ("2459 703" cut to "2459 70"
    reads item 70). It cannot be told apart from a file saved without a final newline, so by
    default the line is kept with a warning and counted (`<Name>/truncated_last_line`).
    """
    if not raw or not raw[-1].strip():  # empty file, or trailing blanks after the last break
        return False
    n, text = len(raw), raw[-1]
    field = "item" if len(text.split()) > 1 else "user"
    reason = ("last line has no line break: the file may be cut short mid-number "
              "(ingest.strict_last_line)")
    if strict:
        rejects.add(f, n, reason, field=field, text=text)
        action = "rejected it (ingest.strict_last_line: true)"
    else:
        action = "kept it; set ingest.strict_last_line: true to reject it"
    print(f"ingest: warning: {f}: line {n}, the last line, has no line break, so the file may "
          f"be cut short (a cut number is still a number: '2459 703' cut to '2459 70' reads "
          f"item 70); {action}", file=sys.stderr, flush=True)
    return True


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
