"""Amazon product data, 2014 release (McAuley et al., SIGIR 2015 / He & McAuley, WWW 2016).

Published at https://jmcauley.ucsd.edu/data/amazon/ as, per category:
- `reviews_<Cat>_5.json.gz` (5-core) or `reviews_<Cat>.json.gz` (all reviews): strict JSON
  lines with `reviewerID, asin, reviewerName, helpful ([a,b]), reviewText, overall, summary,
  unixReviewTime, reviewTime ("02 28, 2014")`. Copies found in the wild drop the `reviews_`
  prefix or keep only a head (`<Cat>_5.json`, `<Cat>_5.head50.json`); those are accepted too.
- `meta_<Cat>.json.gz`: one *Python literal* per line (not JSON), keys `asin, title, price,
  imUrl, related, salesRank, categories (list of lists), brand, description`. Optional.

Every category found becomes one domain (the category name). Reviews stream chunk by chunk
through polars' NDJSON parser into Parquet parts in `workdir`; meta streams through the
parallel literal parser (`recpipe.data.pyliteral`) into parts as well, so neither file is ever
held in memory whole. The returned frames are lazy scans of those parts.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import polars as pl

from recpipe.data.lines import ParquetParts, iter_chunks, parse_json_chunk
from recpipe.data.pyliteral import CHUNK_LINES, iter_literal_chunks
from recpipe.data.readers import ReadOptions, Tables, find_files
from recpipe.data.rejects import IngestError, RejectLog
from recpipe.data.schema import READER_INTERACTIONS, READER_ITEMS

REVIEW_GLOBS = [
    "reviews_*.json.gz", "reviews_*.json", "*_5.json.gz", "*_5.json", "*_5.*.json", "*_5.*.json.gz"
]
# `<Cat>_5[.anything].json[.gz]` with an optional `reviews_` prefix, else the full
# `reviews_<Cat>.json[.gz]`. Tried in this order so `reviews_X_5.json` is category X, not X_5.
_FIVE_CORE = re.compile(r"^(?:reviews_)?(?P<cat>.+?)_5(?:\.[\w-]+)?\.json(?:\.gz)?$")
_FULL = re.compile(r"^reviews_(?P<cat>.+?)\.json(?:\.gz)?$")

REVIEW_SCHEMA = {
    "reviewerID": pl.String,
    "asin": pl.String,
    "reviewerName": pl.String,
    "helpful": pl.List(pl.Int64),
    "reviewText": pl.String,
    "overall": pl.Float64,
    "summary": pl.String,
    "unixReviewTime": pl.Int64,
    "reviewTime": pl.String,
}
INTERACTION_SCHEMA = READER_INTERACTIONS
ITEM_SCHEMA = READER_ITEMS
# Meta keys that map onto item columns; every other key goes into `extra` verbatim.
_META_COLUMNS = {"asin", "title", "description", "categories", "brand", "price"}


def category_of(name: str) -> str | None:
    """The category a review file name stands for, or None if it is not a review file name."""
    if name.startswith("meta_"):
        return None
    m = _FIVE_CORE.match(name) or _FULL.match(name)
    return m.group("cat") if m else None


def discover(folder: Path, categories: list[str]) -> dict[str, tuple[Path, Path | None]]:
    """Map category -> (review file, meta file or None), restricted to `categories` if given."""
    found: dict[str, Path] = {}
    for f in find_files(folder, REVIEW_GLOBS, "Amazon 2014 review file"):
        cat = category_of(f.name)
        if cat is None:
            continue
        if cat in found:
            raise IngestError(
                f"two review files for category {cat!r} in {folder}: {found[cat].name} and "
                f"{f.name}; keep one"
            )
        found[cat] = f
    if categories:
        missing = [c for c in categories if c not in found]
        if missing:
            raise IngestError(
                f"ingest.categories asks for {missing}, but {folder} has no review file for them "
                f"(expected e.g. reviews_{missing[0]}_5.json.gz); categories found: {sorted(found)}"
            )
        found = {c: found[c] for c in categories}
    if not found:
        raise IngestError(
            f"no Amazon 2014 review file in {folder}: expected reviews_<Category>_5.json.gz"
        )
    out = {}
    for cat, review in sorted(found.items()):
        metas = [folder / f"meta_{cat}.json.gz", folder / f"meta_{cat}.json"]
        out[cat] = (review, next((m for m in metas if m.is_file()), None))
    return out


def read(path: Path, opts: ReadOptions, rejects: RejectLog, workdir: Path) -> Tables:
    stats: Counter = Counter()
    inter = ParquetParts(workdir, "a14_interactions", INTERACTION_SCHEMA, opts.chunk_lines)
    items = ParquetParts(workdir, "a14_items", ITEM_SCHEMA, opts.chunk_lines)
    for cat, (review_file, meta_file) in discover(Path(path), opts.categories).items():
        asins: set[str] = set()
        for frame in read_reviews(review_file, cat, opts, rejects, stats):
            asins.update(frame["item"].unique().to_list())
            inter.add(frame)
        with_meta: set[str] = set()
        if meta_file is None:
            stats["categories_without_meta"] += 1
        else:
            for frame in read_meta(meta_file, cat, opts, rejects, stats, with_meta):
                items.add(frame)
        # Reviewed items with no meta line still get a row, so every interaction has an item.
        bare = sorted(asins - with_meta)
        stats["items_without_meta"] += len(bare)
        items.add(bare_items(bare, cat))
    for key, n in stats.items():
        rejects.note(key, n)
    return Tables(
        interactions=inter.scan(),
        items=items.scan(),
        stats={k: int(v) for k, v in stats.items()},
    )


def bare_items(ids: list[str], domain: str) -> pl.DataFrame:
    """Item rows that carry only an id and a domain (items seen in reviews, absent from meta)."""
    frame = pl.DataFrame({"item": ids}, schema={"item": pl.String})
    return frame.select(
        pl.col(c) if c == "item" else pl.lit(domain if c == "domain" else None, t).alias(c)
        for c, t in ITEM_SCHEMA.items()
    )


# --- reviews ------------------------------------------------------------------------------


def read_reviews(file: Path, cat: str, opts: ReadOptions, rejects: RejectLog, stats: Counter):
    """Yield canonical interaction frames, one per chunk of `file`; bad lines are rejected."""
    n_lines = 0
    for nums, lines in iter_chunks(file, opts.chunk_lines):
        n_lines += len(lines)
        df = parse_json_chunk(nums, lines, REVIEW_SCHEMA, file.name, rejects)
        df = df.with_columns(
            pl.coalesce(
                "unixReviewTime",
                pl.col("reviewTime")
                .str.strptime(pl.Date, "%m %d, %Y", strict=False)
                .cast(pl.Datetime("ms"))
                .dt.epoch("s"),
            ).alias("ts")
        )
        stats["ts_from_reviewTime"] += df.filter(
            pl.col("unixReviewTime").is_null() & pl.col("ts").is_not_null()
        ).height
        df = _reject_incomplete(df, nums, lines, file, rejects)
        yield df.select(
            pl.col("reviewerID").alias("user"),
            pl.col("asin").alias("item"),
            pl.col("overall").cast(pl.Float32).alias("rating"),
            pl.col("ts"),
            pl.col("reviewText").alias("review"),
            pl.lit(cat, pl.String).alias("domain"),
            pl.struct("summary", "helpful", "reviewerName").struct.json_encode().alias("extra"),
        )
    rejects.count_lines(file, n_lines)


def _reject_incomplete(
    df: pl.DataFrame, nums: list[int], lines: list[bytes], file: Path, rejects: RejectLog
) -> pl.DataFrame:
    """Drop (and reject) rows lacking a user, an item or any usable time."""
    checks = [
        ("reviewerID", pl.col("reviewerID").is_null(), "missing required field"),
        ("asin", pl.col("asin").is_null(), "missing required field"),
        (
            "unixReviewTime",
            pl.col("ts").is_null(),
            "no unixReviewTime and no parsable reviewTime (expected like '02 28, 2014')",
        ),
    ]
    bad_any = pl.any_horizontal([c for _, c, _ in checks])
    bad = df.filter(bad_any)
    if bad.height == 0:
        return df
    text = dict(zip(nums, lines))
    for row in bad.iter_rows(named=True):
        # Name the first missing field; one reject per line keeps the fraction per line.
        for field, _, reason in checks:
            value = row["ts"] if field == "unixReviewTime" else row[field]
            if value is None:
                rejects.add(file, row["__line"], reason, field=field, text=text.get(row["__line"]))
                break
    return df.filter(~bad_any)


# --- meta ---------------------------------------------------------------------------------


def read_meta(
    file: Path, cat: str, opts: ReadOptions, rejects: RejectLog, stats: Counter, seen: set[str]
):
    """Yield canonical item frames from a meta file; `seen` collects the asins kept.

    Duplicate asins keep their first line (counted as `duplicate_meta_asins`).
    """
    chunk = min(opts.chunk_lines, CHUNK_LINES)
    for records in iter_literal_chunks(file, rejects, opts.workers, chunk):
        rows = []
        for line_no, rec in records:
            asin = rec.get("asin")
            if not isinstance(asin, str) or not asin:
                rejects.add(file, line_no, "missing required field", field="asin", text=repr(rec))
                continue
            if asin in seen:
                stats["duplicate_meta_asins"] += 1
                continue
            seen.add(asin)
            rows.append(meta_row(rec, cat, stats))
        if rows:
            yield pl.DataFrame(rows, schema=ITEM_SCHEMA, orient="row")


def meta_row(rec: dict, cat: str, stats: Counter) -> tuple:
    """One items row (in ITEM_SCHEMA order) from a parsed 2014 meta record."""
    price = rec.get("price")
    if isinstance(price, bool) or not isinstance(price, (int, float)):
        if price is not None:
            stats["meta_price_unparsable"] += 1
        price = None
    extra = {k: v for k, v in rec.items() if k not in _META_COLUMNS}
    return (
        rec["asin"],
        _text(rec.get("title")),
        _text(rec.get("description")),
        flatten_categories(rec.get("categories")),
        _text(rec.get("brand")),
        None if price is None else float(price),
        cat,
        json.dumps(extra, ensure_ascii=False, default=str),
    )


def flatten_categories(value) -> list[str] | None:
    """[[a, b], [a, c]] -> [a, b, c]: the category paths flattened, first occurrence kept."""
    if value is None:
        return None
    out: dict[str, None] = {}
    stack = [value]
    # Depth-first, left to right, so the order is the order the names appear in the line.
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(reversed(v))
        elif v is not None and str(v):
            out.setdefault(str(v), None)
    return list(out)


def _text(v) -> str | None:
    if v is None or isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, default=str)
