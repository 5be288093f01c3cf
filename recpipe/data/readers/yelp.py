"""Yelp Open Dataset: https://www.yelp.com/dataset (no paper; Yelp Dataset Terms of Use).

Files, found in `dataset.path` by their published names (plain or `.gz`), one strict JSON
object per line:
- `yelp_academic_dataset_review.json` (required): `review_id, user_id, business_id, stars,
  date ("YYYY-MM-DD HH:MM:SS", or date-only in some re-exports), text, useful, funny, cool`.
- `yelp_academic_dataset_business.json` (optional): `business_id, name, categories ("A, B" or
  null), city, state, stars, review_count, attributes {...}, hours {...}, ...`.
- `yelp_academic_dataset_user.json` (optional): `user_id, name, yelping_since, friends
  (a "a, b" string in 2018+, a list in older releases), elite, compliment_*, ...`.

Reviews go through polars' NDJSON parser block by block (`ingest.chunk_mb`) into Parquet
parts (the full review file is ~5 GB, so it is never held in memory). Business and user lines are nested and change
shape between releases (objects, strings-or-lists), so they are parsed with orjson per line and
everything but the id (and the item's name/categories) is kept verbatim in `extra`.

Yelp releases are not always closed sets (samples, or mixed releases): reviews whose business
or user is missing from the side files are kept and counted (`reviews_unknown_business`,
`reviews_unknown_user`). Every reviewed business gets an items row (title null when its meta is
missing, counted as `items_without_meta`). With a user file, every reviewing user gets a users
row (extra "{}" when missing from the file, counted as `users_without_meta`), so the table is
complete without relying on later derivation; without one, `users` is None (derived later).
Items and users from the side files that no review mentions are kept too; the split stage only
numbers entities that have interactions.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recpipe.data.lines import default_workers, iter_blocks, map_chunks, parse_json_block
from recpipe.data.readers import ReadOptions, Tables, find_files
from recpipe.data.rejects import RejectLog

DOMAIN = "yelp"
REVIEW = "yelp_academic_dataset_review.json"
BUSINESS = "yelp_academic_dataset_business.json"
USER = "yelp_academic_dataset_user.json"

REVIEW_SCHEMA = {
    "review_id": pl.String,
    "user_id": pl.String,
    "business_id": pl.String,
    "stars": pl.Float64,
    "date": pl.String,  # also accepts the epoch-millisecond integers of pandas re-exports
    "text": pl.String,
    # votes are counts, but read as floats so a "1.0" from a re-export is not a reject
    "useful": pl.Float64,
    "funny": pl.Float64,
    "cool": pl.Float64,
}
# Side files below this size are parsed in-process: starting a spawn pool costs more.
_POOL_MIN_BYTES = 32 << 20
# Per-line parsing chunks stay small: the process pool reads ahead of its workers.
_SIDE_CHUNK = 50_000


def read(path: Path, opts: ReadOptions, rejects: RejectLog, workdir: Path) -> Tables:
    folder = Path(path)
    review_file = find_files(folder, [REVIEW, REVIEW + ".gz"], f"Yelp review file ({REVIEW})")[0]
    out = Path(workdir) / "yelp"
    out.mkdir(parents=True, exist_ok=True)

    block = int(opts.chunk_mb * 2**20)
    reviews = pl.scan_parquet(_read_reviews(review_file, block, rejects, out))
    business_file = _optional(folder, BUSINESS)
    user_file = _optional(folder, USER)
    stats: dict[str, int] = {}

    items = _items(reviews, business_file, opts, rejects, out, stats)
    users = None  # no user file: derived from interactions by the ingest stage
    if user_file is not None:
        users = _users(reviews, user_file, opts, rejects, out, stats)
    for key, n in stats.items():
        rejects.note(key, n)
    return Tables(interactions=reviews, items=items, users=users, stats=stats)


def _items(reviews: pl.LazyFrame, business_file, opts, rejects, out: Path, stats) -> pl.LazyFrame:
    """The business file (if any) plus a stub row for every unknown reviewed business."""
    parts: list[Path] = []
    unknown = reviews.select("item").unique()
    if business_file is not None:
        parts = _read_side(business_file, _parse_business_chunk, "item", opts, rejects, out)
        known = pl.scan_parquet(parts).select("item")
        stats["reviews_unknown_business"] = _count(reviews.join(known, on="item", how="anti"))
        unknown = unknown.join(known, on="item", how="anti")
    stubs = unknown.collect().sort("item").select(
        "item",
        title=pl.lit(None, pl.String),
        description=pl.lit(""),
        categories=pl.lit([], pl.List(pl.String)),
        brand=pl.lit(None, pl.String),
        price=pl.lit(None, pl.Float64),
        domain=pl.lit(DOMAIN),
        extra=pl.lit("{}"),
    )
    stats["items_without_meta"] = stubs.height
    stub_part = out / "items-stubs.parquet"
    stubs.write_parquet(stub_part)
    return pl.scan_parquet([*parts, stub_part])


def _users(reviews: pl.LazyFrame, user_file: Path, opts, rejects, out: Path, stats) -> pl.LazyFrame:
    """The user file plus a stub row (extra "{}") for every unknown reviewing user."""
    parts = _read_side(user_file, _parse_user_chunk, "user", opts, rejects, out)
    missing = reviews.join(pl.scan_parquet(parts).select("user"), on="user", how="anti")
    stats["reviews_unknown_user"] = _count(missing)
    stubs = missing.select("user").unique().collect().sort("user")
    stubs = stubs.with_columns(extra=pl.lit("{}"))
    stats["users_without_meta"] = stubs.height
    stub_part = out / "users-stubs.parquet"
    stubs.write_parquet(stub_part)
    return pl.scan_parquet([*parts, stub_part])


def _optional(folder: Path, name: str) -> Path | None:
    return next((p for p in (folder / name, folder / f"{name}.gz") if p.is_file()), None)


def _count(lf: pl.LazyFrame) -> int:
    return int(lf.select(pl.len()).collect().item())


# --- reviews (fast path: polars NDJSON against an explicit schema) ------------------------


def _timestamp() -> pl.Expr:
    """Unix seconds (UTC) from Yelp's `date`: datetime, date-only, or epoch ms/s digits."""
    d = pl.col("date").str.strip_chars()
    full = d.str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False).dt.epoch("s")
    day = d.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")).dt.epoch("s")
    digits = d.str.contains(r"^\d+$")
    num = pl.when(digits).then(d.cast(pl.Int64, strict=False))
    epoch = pl.when(num > 100_000_000_000).then(num // 1000).otherwise(num)
    return pl.coalesce(full, day, epoch).alias("ts")


def _read_reviews(f: Path, block: int, rejects: RejectLog, out: Path) -> list[Path]:
    """Stream the review file in blocks of ~`block` bytes, one Parquet part per block."""
    parts: list[Path] = []
    n_lines = 0
    for k, (first, n, data) in enumerate(iter_blocks(f, block)):
        n_lines = first + n - 1
        df = parse_json_block(first, n, data, REVIEW_SCHEMA, f.name, rejects)
        df = df.with_columns(_timestamp())
        text = None
        ok = pl.lit(True)
        checks = (
            ("user_id", pl.col("user_id").fill_null("").str.strip_chars() == "", "missing user_id"),
            (
                "business_id",
                pl.col("business_id").fill_null("").str.strip_chars() == "",
                "missing business_id",
            ),
            ("date", pl.col("date").is_not_null() & pl.col("ts").is_null(), "unparsable date"),
        )
        for field, bad_expr, reason in checks:
            bad = df.filter(ok & bad_expr)["__line"].to_list()
            if bad:  # only rejected lines are split out of the block, for their text
                text = text or data.split(b"\n")
                for line_no in bad:
                    rejects.add(f.name, line_no, reason, field=field, text=text[line_no - first])
            ok = ok & ~bad_expr
        df = df.filter(ok)
        undated = int(df["ts"].null_count())
        if undated:
            rejects.note("reviews_without_date", undated)
        votes = [pl.col(c).cast(pl.Int64, strict=False) for c in ("useful", "funny", "cool")]
        part = out / f"reviews-{k:05d}.parquet"
        df.select(
            user=pl.col("user_id"),
            item=pl.col("business_id"),
            rating=pl.col("stars").cast(pl.Float32),
            ts=pl.col("ts"),
            review=pl.col("text"),
            domain=pl.lit(DOMAIN),
            extra=pl.struct(pl.col("review_id"), *votes).struct.json_encode(),
        ).write_parquet(part)
        parts.append(part)
    rejects.count_lines(f, n_lines)
    if not parts:  # an empty review file still yields a (empty) typed table
        part = out / "reviews-empty.parquet"
        pl.DataFrame(
            schema={"user": pl.String, "item": pl.String, "rating": pl.Float32, "ts": pl.Int64,
                    "review": pl.String, "domain": pl.String, "extra": pl.String}
        ).write_parquet(part)
        parts.append(part)
    return parts


# --- business and user side files (per-line orjson; shapes vary between releases) ---------


def _read_side(f: Path, parser, key: str, opts: ReadOptions, rejects, out: Path) -> list[Path]:
    """Parse a side file into Parquet parts, dropping duplicate ids (first line wins)."""
    workers = default_workers(opts.workers) if f.stat().st_size >= _POOL_MIN_BYTES else 1
    chunk = min(opts.chunk_lines, _SIDE_CHUNK)
    stem = f.name.split(".")[0]
    parts: list[Path] = []
    seen = pl.Series(key, [], dtype=pl.String)
    n_lines = 0
    for k, (last, df, bad) in enumerate(map_chunks(parser, f, workers, chunk)):
        n_lines = max(n_lines, last)
        for n, reason, field, line in bad:
            rejects.add(f.name, n, reason, field=field, text=line)
        dup = ~df[key].is_first_distinct() | df[key].is_in(seen.implode())
        if dup.any():
            rejects.note(f"duplicate_ids/{f.name}", int(dup.sum()))
            df = df.filter(~dup)
        seen = pl.concat([seen, df[key]])
        part = out / f"{stem}-{k:05d}.parquet"
        df.write_parquet(part)
        parts.append(part)
    rejects.count_lines(f, n_lines)
    if not parts:
        part = out / f"{stem}-empty.parquet"
        parser([], [])[1].write_parquet(part)
        parts.append(part)
    return parts


def _load(n: int, line: bytes, key: str, bad: list):
    """Decode one line to a dict holding a non-empty string `key`, or record why not."""
    import orjson

    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        bad.append((n, f"malformed JSON: {e}", None, line))
        return None
    if not isinstance(obj, dict):
        bad.append((n, f"expected a JSON object, got {type(obj).__name__}", None, line))
        return None
    value = obj.pop(key, None)
    if not isinstance(value, str) or not value.strip():
        bad.append((n, f"missing {key}", key, line))
        return None
    return value, obj


def _dumps(obj: dict) -> str:
    import orjson

    return orjson.dumps(obj).decode()  # UTF-8 kept as is (like ensure_ascii=False)


def _parse_business_chunk(nums: list[int], lines: list[bytes]):
    """One chunk of the business file -> (last line number, items frame, bad lines)."""
    rows: dict[str, list] = {"item": [], "title": [], "categories": [], "extra": []}
    bad: list = []
    for n, line in zip(nums, lines):
        got = _load(n, line, "business_id", bad)
        if got is None:
            continue
        bid, obj = got
        name = obj.pop("name", None)
        cats = obj.pop("categories", None)
        if isinstance(cats, str):  # "Doctors, Health & Medical"
            cats = [c.strip() for c in cats.split(",") if c.strip()]
        elif isinstance(cats, list):
            cats = [str(c).strip() for c in cats if c is not None and str(c).strip()]
        elif cats is None:
            cats = []
        else:
            bad.append((n, f"unparsable categories {cats!r}", "categories", line))
            continue
        rows["item"].append(bid)
        rows["title"].append(None if name is None else str(name))
        rows["categories"].append(cats)
        rows["extra"].append(_dumps(obj))
    df = pl.DataFrame(
        rows,
        schema={"item": pl.String, "title": pl.String, "categories": pl.List(pl.String),
                "extra": pl.String},
    ).select(
        "item",
        "title",
        description=pl.lit(""),
        categories="categories",
        brand=pl.lit(None, pl.String),
        # Yelp has no price, only the 1-4 `attributes.RestaurantsPriceRange2` level (in extra)
        price=pl.lit(None, pl.Float64),
        domain=pl.lit(DOMAIN),
        extra="extra",
    )
    return (nums[-1] if nums else 0), df, bad


def _parse_user_chunk(nums: list[int], lines: list[bytes]):
    """One chunk of the user file -> (last line number, users frame, bad lines)."""
    users: list[str] = []
    extra: list[str] = []
    bad: list = []
    for n, line in zip(nums, lines):
        got = _load(n, line, "user_id", bad)
        if got is None:
            continue
        users.append(got[0])
        extra.append(_dumps(got[1]))
    schema = {"user": pl.String, "extra": pl.String}
    df = pl.DataFrame({"user": users, "extra": extra}, schema=schema)
    return (nums[-1] if nums else 0), df, bad
