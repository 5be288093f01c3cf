"""Amazon Reviews 2023 (Hou et al., arXiv 2403.03952): https://amazon-reviews-2023.github.io/

Files, found in `dataset.path` by their published names (`.gz` or plain):
- reviews: `<Category>.jsonl[.gz]`, strict JSON lines with `rating, title, text, images, asin,
  parent_asin, user_id, timestamp (ms), helpful_vote, verified_purchase`; any key may be
  missing. The item is `parent_asin` (else `asin`, counted as `missing_parent_asin`).
- meta (optional per category): `meta_<Category>.jsonl[.gz]`, one line per `parent_asin` with
  `main_category, title, average_rating, rating_number, features, description (list), price
  (number, string or null), images, videos, store, categories (list), details (object),
  bought_together`. Duplicate `parent_asin` lines keep the first and are counted.
- benchmark ratings: `<Category>.csv[.gz]` with the header `user_id,parent_asin,rating,timestamp`
  (ms; extra columns such as `history` are ignored), or the official split files
  `<Category>.{train,valid,test}.csv[.gz]`, which keep their split (`split.protocol=rlmrec`).
  No text; titles come from a `meta_<Category>` file beside them, if there is one.

Each category is a domain (named by the file); users are merged across domains by `user_id`.
When a category has both reviews (`.jsonl`) and ratings (`.csv`), the reviews are read and
the ratings ignored (the same ratings twice would double-count), with a warning and a
`csv_ignored/<Category>` count. `ts` is Unix seconds: the published milliseconds floored.

Lines without `user_id`, without both `parent_asin` and `asin`, or without a usable
`timestamp`, and lines whose values do not parse (malformed JSON, a rating that is not a
number, a CSV row with the wrong number of fields) are rejected with their file, line and
field. Reviews and ratings stream block by block (`ingest.chunk_mb`) through polars' parsers
straight into the finished interactions table (as the Amazon 2018 reader does); meta lines go
through orjson (`ingest.chunk_lines` per chunk) so unknown keys can be kept in `extra`.
"""

from __future__ import annotations

import io
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from recpipe.data.ingest import finished_table
from recpipe.data.lines import iter_blocks, iter_chunks, parse_json_block, progress, sink_frames
from recpipe.data.readers import ReadOptions, Tables, find_files, select_categories
from recpipe.data.readers.amazon2018 import _text, parse_price
from recpipe.data.rejects import IngestError, RejectLog
from recpipe.data.schema import INTERACTIONS, READER_ITEMS, SPLIT_NAMES

PATTERNS = ["*.jsonl", "*.jsonl.gz", "*.csv", "*.csv.gz"]
WHAT = (
    "Amazon Reviews 2023 file (<Category>.jsonl[.gz] reviews, meta_<Category>.jsonl[.gz], or "
    "benchmark ratings <Category>.csv[.gz])"
)
# Published category names start with a capital (All_Beauty, CDs_and_Vinyl, Unknown); that
# keeps `meta_*` and bookkeeping files (stats.csv, generator.jsonl) out of the categories.
_CAT = r"(?P<cat>[A-Z][\w-]*)"
_REVIEWS = re.compile(rf"^{_CAT}\.jsonl(?:\.gz)?$")
_META = re.compile(rf"^meta_{_CAT}\.jsonl(?:\.gz)?$")
_RATINGS = re.compile(rf"^{_CAT}(?:\.(?P<split>train|valid|test))?\.csv(?:\.gz)?$")

REVIEW_SCHEMA = {
    "user_id": pl.String,
    "parent_asin": pl.String,
    "asin": pl.String,
    "rating": pl.Float64,
    "timestamp": pl.Int64,  # milliseconds
    "title": pl.String,
    "text": pl.String,
    "helpful_vote": pl.Float64,  # an integer in the release; a float one is tolerated
    "verified_purchase": pl.Boolean,
    # `images` is not read: nothing downstream uses review photos, and skipping it saves parsing
}
CSV_COLUMNS = ("user_id", "parent_asin", "rating", "timestamp")
# meta keys mapped onto item columns (or replaced, images -> image_urls); the rest go to extra
_META_COLUMNS = {"parent_asin", "title", "description", "categories", "price", "images", "videos"}
_BRAND_KEYS = ("Brand", "Brand Name", "brand")
# a value below this cannot be a review time in milliseconds (it is March 1973): seconds?
_MS_FLOOR = 100_000_000_000


@dataclass
class Category:
    """The files of one category (one domain) found in the folder."""

    name: str
    reviews: Path | None = None
    ratings: Path | None = None
    splits: dict[str, Path] = field(default_factory=dict)
    meta: Path | None = None

    def sources(self) -> list[tuple[Path, str | None]]:
        """The interaction files to read, each with the split it carries (None: unsplit)."""
        if self.reviews is not None:
            return [(self.reviews, None)]
        if self.splits:
            return [(self.splits[s], s) for s in SPLIT_NAMES if s in self.splits]
        return [(self.ratings, None)] if self.ratings is not None else []


def _put(cat: Category, attr: str, f: Path, folder: Path, key: str | None = None) -> None:
    """Record `f` as the category's `attr` file; a second one (X.jsonl and X.jsonl.gz) is an
    error, as reading both would count every line twice."""
    held = getattr(cat, attr) if key is None else cat.splits.get(key)
    if held is not None:
        raise IngestError(
            f"two files for the same {cat.name} data in {folder}: {held.name} and {f.name}; "
            f"keep one (reading both would count every line twice)"
        )
    if key is None:
        setattr(cat, attr, f)
    else:
        cat.splits[key] = f


def discover(folder: Path, opts: ReadOptions, stats: Counter) -> dict[str, Category]:
    """Category -> its files, restricted to `ingest.categories`; meta-only categories dropped."""
    folder = Path(folder)
    found: dict[str, Category] = {}
    for f in find_files(folder, PATTERNS, WHAT):
        if m := _META.match(f.name):
            cat = found.setdefault(m["cat"], Category(m["cat"]))
            _put(cat, "meta", f, folder)
        elif m := _REVIEWS.match(f.name):
            cat = found.setdefault(m["cat"], Category(m["cat"]))
            _put(cat, "reviews", f, folder)
        elif m := _RATINGS.match(f.name):
            cat = found.setdefault(m["cat"], Category(m["cat"]))
            if m["split"]:
                _put(cat, "splits", f, folder, m["split"])
            else:
                _put(cat, "ratings", f, folder)
    with_data = {c: v for c, v in found.items() if v.sources()}
    for c in sorted(set(found) - set(with_data)):
        stats[f"meta_without_reviews/{c}"] = 1
    if not with_data:
        names = sorted(p.name for p in folder.iterdir())
        shown = ", ".join(names[:10]) + (f", ... ({len(names)} in all)" if len(names) > 10 else "")
        raise IngestError(
            f"no Amazon Reviews 2023 review or rating file in {folder}: expected "
            f"<Category>.jsonl or <Category>.jsonl.gz (reviews, e.g. All_Beauty.jsonl.gz) with "
            f"optional meta_<Category>.jsonl[.gz], or benchmark ratings <Category>.csv[.gz] / "
            f"<Category>.train.csv[.gz] (found: {shown or 'nothing'})"
        )
    chosen = select_categories(with_data, opts, "<Category>.jsonl[.gz] or <Category>.csv[.gz]")
    for name, cat in sorted(chosen.items()):
        if cat.ratings is not None and cat.splits:
            raise IngestError(
                f"{folder}: {cat.ratings.name} and the split files "
                f"{', '.join(p.name for p in cat.splits.values())} are both ratings of {name} "
                f"(often of different k-cores); keep one kind"
            )
        if cat.splits and "train" not in cat.splits:
            raise IngestError(
                f"{folder}: split files of {name} without {name}.train.csv[.gz] "
                f"(found {', '.join(sorted(p.name for p in cat.splits.values()))})"
            )
        if cat.reviews is not None and (cat.ratings is not None or cat.splits):
            ignored = [p.name for p in [cat.ratings, *cat.splits.values()] if p is not None]
            stats[f"csv_ignored/{name}"] = len(ignored)
            print(
                f"ingest: warning: {folder}: {name} has reviews ({cat.reviews.name}) and ratings "
                f"({', '.join(ignored)}); reading the reviews only (reading both would count "
                f"each rating twice)",
                file=sys.stderr,
                flush=True,
            )
    return chosen


def read(path: Path, opts: ReadOptions, rejects: RejectLog, workdir: Path) -> Tables:
    path = Path(path)
    workdir.mkdir(parents=True, exist_ok=True)
    stats: Counter = Counter()
    cats = discover(path, opts, stats)
    stats["categories"] = len(cats)
    stats["missing_parent_asin"] = 0
    block = max(1, int(opts.chunk_mb * 2**20))

    def frames() -> Iterator[pl.DataFrame]:
        for name, cat in sorted(cats.items()):
            for f, split in cat.sources():
                if f.name.endswith((".jsonl", ".jsonl.gz")):
                    yield from _read_reviews(f, name, block, rejects, stats)
                else:
                    yield from _read_ratings(f, name, split, block, rejects, stats)

    # written once, already canonical, into the file the ingest stage moves into place
    interactions = sink_frames(frames(), INTERACTIONS, finished_table(workdir, "interactions"))
    metas = []
    for name, cat in sorted(cats.items()):
        if cat.meta is None:
            stats[f"meta_missing/{name}"] = 1
            continue
        metas.append(_read_meta(cat.meta, name, opts.chunk_lines, rejects, workdir, stats))
    items = _items(interactions, metas, stats)
    return Tables(interactions=interactions, items=items, users=None,
                  stats={k: int(v) for k, v in stats.items()})


# --- interactions ---------------------------------------------------------------------------


def _present(col: str) -> pl.Expr:
    """The column with empty (or blank) strings as null: an id "" is no id."""
    c = pl.col(col)
    return pl.when(c.str.strip_chars().str.len_bytes() > 0).then(c)


def _reject(df: pl.DataFrame, checks, file: str, first: int, data: bytes, rejects) -> pl.DataFrame:
    """Reject (and drop) rows failing a check, each row once, naming the first failed check.

    `checks`: (bad row expression, field, reason, raw value column or None); the block `data`
    starting at line `first` supplies the offending line's text.
    """
    bad_any = pl.any_horizontal([bad for bad, *_ in checks])
    if not df.select(bad_any.any()).item():
        return df
    lines = data.split(b"\n")  # once per block with a bad row
    ok = pl.lit(True)
    found = []
    for bad, fld, reason, raw in checks:
        hit = df.filter(ok & bad)
        values = hit[raw].to_list() if raw else [None] * hit.height
        for n, value in zip(hit["__line"].to_list(), values):
            found.append((n, fld, reason if value is None else f"{reason}: {value!r}"))
        ok = ok & ~bad.fill_null(False)
    for n, fld, why in sorted(found, key=lambda r: r[0]):  # in file order, as the log reads
        rejects.add(file, n, why, field=fld, text=lines[n - first])
    return df.filter(ok)


def _count_seconds_like(df: pl.DataFrame, file: str, stats: Counter) -> None:
    """Warn when a file's times look like seconds rather than the published milliseconds."""
    n = df.select((pl.col("ms") < _MS_FLOOR).sum()).item()
    if n:
        key = f"timestamp_not_ms/{file}"
        if not stats[key]:
            print(f"ingest: warning: {file}: timestamp {df['ms'].min()} is before 1973 read as "
                  f"milliseconds; Amazon 2023 times are milliseconds (are these seconds?)",
                  file=sys.stderr, flush=True)
        stats[key] += n


_REVIEW_CHECKS = [
    (pl.col("user").is_null(), "user_id", "missing required field", None),
    (pl.col("item").is_null(), "parent_asin", "missing required field (no parent_asin, no asin)",
     None),
    (pl.col("ms").is_null(), "timestamp", "missing timestamp", None),
]


def _read_reviews(f: Path, cat: str, block: int, rejects: RejectLog,
                  stats) -> Iterator[pl.DataFrame]:
    """The canonical interaction rows of one review file, one frame per block of ~`block` bytes."""
    n_lines = 0
    bar = progress(f.name)
    parent = _present("parent_asin")
    for first, n, data in iter_blocks(f, block):
        n_lines = first + n - 1
        bar.update(n)
        df = parse_json_block(first, n, data, REVIEW_SCHEMA, f.name, rejects)
        df = df.with_columns(
            user=_present("user_id"),
            item=pl.coalesce(parent, _present("asin")),
            ms=pl.col("timestamp"),
        )
        stats["missing_parent_asin"] += df.select(
            (parent.is_null() & pl.col("item").is_not_null()).sum()).item()
        df = _reject(df, _REVIEW_CHECKS, f.name, first, data, rejects)
        _count_seconds_like(df, f.name, stats)
        yield df.select(
            user=pl.col("user"),
            item=pl.col("item"),
            rating=pl.col("rating").cast(pl.Float32),
            ts=pl.col("ms") // 1000,
            review=pl.col("text"),
            domain=pl.lit(cat),
            extra=pl.struct(
                pl.col("title"),
                pl.col("helpful_vote").cast(pl.Int64, strict=False),
                pl.col("verified_purchase"),
                pl.col("asin"),
            ).struct.json_encode(),
        )
    bar.close()
    rejects.count_lines(f, n_lines)


def _csv_header(line: bytes, f: Path) -> list[str]:
    import csv

    text = line.decode("utf-8-sig", "replace").strip()
    header = [h.strip() for h in next(csv.reader([text]), [])]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise IngestError(
            f"{f}: the first line {text[:200]!r} is not the benchmark header: expected the "
            f"columns {','.join(CSV_COLUMNS)} (extra columns such as history are ignored); "
            f"missing {missing}"
        )
    if len(set(header)) != len(header):
        raise IngestError(f"{f}: the header {text[:200]!r} repeats a column name")
    return header


def _parse_csv_block(first: int, n: int, data: bytes, header: list[str], file: str,
                     rejects) -> pl.DataFrame:
    """Rows of `CSV_COLUMNS` (as text, "" as null) plus `__line`; blank lines dropped.

    polars reads the block in one go; a row with too many fields, or a quoted field spanning
    lines, sends the block to a per-line `csv` parse that rejects exactly the bad lines.
    """
    lines: list[bytes] | None = None
    try:
        df = pl.read_csv(io.BytesIO(data), has_header=False, new_columns=header,
                         infer_schema=False, truncate_ragged_lines=False)
        if df.height != n:
            raise ValueError("a row is not a line")
        df = df.select(CSV_COLUMNS).with_columns(
            pl.int_range(first, first + n, dtype=pl.Int64).alias("__line"))
    except Exception:  # noqa: BLE001 - any polars parse error sends us to the line path
        import csv

        lines = data.split(b"\n")
        rows, nums = [], []
        for k, raw in enumerate(lines[:n]):
            text = raw.decode("utf-8", "replace").rstrip("\r")
            if not text.strip():
                continue
            try:
                fields = next(csv.reader([text]))
            except csv.Error as e:
                rejects.add(file, first + k, f"malformed CSV: {e}", text=raw)
                continue
            if len(fields) != len(header):
                rejects.add(file, first + k, f"expected {len(header)} comma-separated fields "
                            f"({','.join(header)}), got {len(fields)}", text=raw)
                continue
            rows.append([fields[header.index(c)] for c in CSV_COLUMNS])
            nums.append(first + k)
        df = pl.DataFrame(rows, schema=dict.fromkeys(CSV_COLUMNS, pl.String), orient="row")
        df = df.with_columns(pl.Series("__line", nums, dtype=pl.Int64))
    df = df.with_columns(_present(c) for c in CSV_COLUMNS)
    blank = pl.all_horizontal(pl.col(c).is_null() for c in CSV_COLUMNS)
    if df.select(blank.any()).item():  # blank lines (polars' fast path reads them as null rows)
        lines = lines or data.split(b"\n")
        is_blank = [not lines[k - first].strip() for k in df["__line"].to_list()]
        df = df.filter(~pl.Series(is_blank))
    return df


def _read_ratings(f: Path, cat: str, split: str | None, block: int, rejects: RejectLog,
                  stats) -> Iterator[pl.DataFrame]:
    """The canonical rows of one benchmark CSV (`user_id,parent_asin,rating,timestamp`)."""
    header: list[str] | None = None
    n_lines = 0
    bar = progress(f.name)
    ms_int = pl.col("timestamp").cast(pl.Int64, strict=False)
    ms_float = pl.col("timestamp").cast(pl.Float64, strict=False)
    for first, n, data in iter_blocks(f, block):
        n_lines = first + n - 1
        bar.update(n)
        if header is None:
            cut = data.find(b"\n") + 1
            header = _csv_header(data[:cut], f)
            first, n, data = first + 1, n - 1, data[cut:]
            if not n:
                continue
        df = _parse_csv_block(first, n, data, header, f.name, rejects)
        df = df.with_columns(
            score=pl.col("rating").cast(pl.Float64, strict=False),
            # an integer; "1.5e12"-style floats are accepted when whole
            ms=pl.coalesce(ms_int, pl.when(ms_float.is_finite() & (ms_float == ms_float.floor()))
                           .then(ms_float).cast(pl.Int64, strict=False)),
        )
        raw_rating = pl.col("rating").is_not_null()
        df = _reject(df, [
            (pl.col("user_id").is_null(), "user_id", "missing required field", None),
            (pl.col("parent_asin").is_null(), "parent_asin", "missing required field", None),
            (pl.col("timestamp").is_null(), "timestamp", "missing timestamp", None),
            (pl.col("ms").is_null(), "timestamp", "unparsable timestamp", "timestamp"),
            (raw_rating & ~pl.col("score").is_finite().fill_null(False), "rating",
             "unparsable rating", "rating"),
        ], f.name, first, data, rejects)
        _count_seconds_like(df, f.name, stats)
        yield df.select(
            user=pl.col("user_id"),
            item=pl.col("parent_asin"),
            rating=pl.col("score").cast(pl.Float32),
            ts=pl.col("ms") // 1000,
            domain=pl.lit(cat),
            split=pl.lit(split, dtype=pl.String),
        )
    bar.close()
    if header is None:
        raise IngestError(f"{f}: the file is empty; expected the header {','.join(CSV_COLUMNS)}")
    rejects.count_lines(f, max(0, n_lines - 1))  # the header is not a rating


# --- items ----------------------------------------------------------------------------------


def _image_urls(images) -> list[str]:
    """The 2023 meta `images` list ({thumb, large, hi_res, variant}) as the best URL of each."""
    if not isinstance(images, list):
        return []
    urls = []
    for img in images:
        if isinstance(img, dict):
            url = img.get("hi_res") or img.get("large") or img.get("thumb")
            if isinstance(url, str) and url:
                urls.append(url)
    return urls


def meta_row(obj: dict, cat: str) -> dict:
    """One meta line (a parsed JSON object with a `parent_asin`) as an item row."""
    import orjson

    details = obj.get("details") if isinstance(obj.get("details"), dict) else {}
    brand = next((details[k] for k in _BRAND_KEYS if isinstance(details.get(k), str)
                  and details[k].strip()), None)
    store = obj.get("store")
    if brand is None and isinstance(store, str) and store.strip():
        brand = store
    extra = {k: v for k, v in obj.items()
             if k not in _META_COLUMNS and v is not None and v != [] and v != {}}
    if brand is not None and extra.get("store") == brand:
        del extra["store"]  # it is the brand column
    urls = _image_urls(obj.get("images"))
    if urls:
        extra["image_urls"] = urls
    price = parse_price(obj.get("price"))
    raw_price = obj.get("price")
    if price is None and raw_price not in (None, "", "None", "—"):
        extra["price_raw"] = raw_price
    cats = obj.get("categories")
    return {
        "item": obj["parent_asin"],
        "title": _text(obj.get("title")),
        "description": _text(obj.get("description")),
        "categories": [str(c) for c in cats] if isinstance(cats, list) else [],
        "brand": _text(brand),
        "price": price,
        "domain": cat,
        "extra": orjson.dumps(extra).decode(),
    }


def _read_meta(meta: Path, cat: str, chunk: int, rejects, workdir: Path, stats) -> Path:
    import orjson

    rows, n_lines = [], 0
    for nums, lines in iter_chunks(meta, chunk):
        n_lines = nums[-1]
        for n, line in zip(nums, lines):
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                rejects.add(meta.name, n, f"malformed JSON: {e}", text=line)
                continue
            if not isinstance(obj, dict):
                rejects.add(meta.name, n, f"expected a JSON object, got {type(obj).__name__}",
                            text=line)
                continue
            asin = obj.get("parent_asin")
            if not isinstance(asin, str) or not asin.strip():
                rejects.add(meta.name, n, "missing required field", field="parent_asin", text=line)
                continue
            rows.append(meta_row(obj, cat))
    rejects.count_lines(meta, n_lines)
    df = pl.DataFrame(rows, schema=READER_ITEMS)
    kept = df.unique("item", keep="first", maintain_order=True)
    stats[f"meta_duplicate_parent_asins/{cat}"] = df.height - kept.height
    part = workdir / f"meta-{cat}.parquet"
    kept.write_parquet(part)
    return part


def _items(interactions: pl.LazyFrame, metas: list[Path], stats) -> pl.DataFrame:
    """One row per item with interactions: its meta when a category has it, else a bare row.

    Eager (the ingest stage moves the interactions file before writing items). An item
    reviewed in several domains takes the first domain by name, so the table is the same on
    every run; a `parent_asin` in two categories' meta keeps the first category's line.
    """
    reviewed = (
        interactions.group_by("item").agg(pl.col("domain").min()).collect(engine="streaming")
    )
    if metas:
        meta = pl.concat([pl.read_parquet(m) for m in metas])
    else:
        meta = pl.DataFrame(schema=READER_ITEMS)
    n_meta = meta.height
    meta = meta.unique("item", keep="first", maintain_order=True)
    stats["meta_duplicate_across_categories"] = n_meta - meta.height
    items = reviewed.join(meta.drop("domain"), on="item", how="left")
    has_meta = reviewed.join(meta.select("item"), on="item", how="semi").height
    stats["items_without_meta"] = reviewed.height - has_meta
    stats["meta_items_without_reviews"] = meta.height - has_meta
    return items.select(READER_ITEMS.keys()).sort("item")
