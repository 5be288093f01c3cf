"""Amazon Review Data 2018 (Ni, Li, McAuley, EMNLP 2019): https://nijianmo.github.io/amazon/

Files, found in `dataset.path` by their published names:
- reviews: `<Cat>_5.json.gz` (5-core) or `<Cat>.json.gz` (all reviews); strict JSON lines with
  `reviewerID, asin, overall, unixReviewTime, reviewTime, reviewText, summary, reviewerName,
  verified, vote ("1,234"), style, image`; any key may be missing.
- meta (optional per category): `meta_<Cat>.json.gz`; keys `asin, title, brand, price ("$9.99"),
  category, description (list), ...` plus images as `image` (2020 release) or
  `imageURL`/`imageURLHighRes` (2021 release). Meta files contain duplicate asin lines.

Each category becomes a domain, so several categories in one folder is multi-domain data.
Reviews stream block by block (`ingest.chunk_mb`, bounded memory) through polars' NDJSON
parser straight into the final interactions table, written once (`lines.sink_frames`) and
moved into place by the ingest stage; meta lines go through orjson so unknown keys can be
kept verbatim in `extra`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from recpipe.data.ingest import finished_table
from recpipe.data.lines import iter_blocks, iter_chunks, parse_json_block, progress, sink_frames
from recpipe.data.readers import ReadOptions, Tables, find_files
from recpipe.data.rejects import RejectLog
from recpipe.data.schema import INTERACTIONS, READER_ITEMS

REVIEW_SCHEMA = {
    "reviewerID": pl.String,
    "asin": pl.String,
    "overall": pl.Float64,
    "unixReviewTime": pl.Int64,
    # `reviewTime` ("MM DD, YYYY") is left out: `_fill_review_time` reads it only for the rare
    # lines without `unixReviewTime` (parsing it on every line cost ~5% of the parse)
    "reviewText": pl.String,
    "summary": pl.String,
    "reviewerName": pl.String,
    "verified": pl.Boolean,
    "vote": pl.String,
    "style": pl.String,  # an object in the file; polars keeps it as its JSON text
}
META_FIELDS = {"asin", "title", "brand", "price", "category", "description", "domain"}
_PRICE = re.compile(r"^\s*\$?\s*([0-9][0-9,]*(?:\.[0-9]+)?)")


def category_of(path: Path) -> str:
    """`Gift_Cards_5.json.gz` -> `Gift_Cards`; `meta_Gift_Cards.json.gz` -> `Gift_Cards`."""
    name = path.name.split(".")[0]
    name = name.removeprefix("meta_").removeprefix("reviews_")
    return re.sub(r"_5$", "", name)


def review_files(folder: Path, opts: ReadOptions) -> list[Path]:
    files = find_files(folder, ["*.json.gz", "*.json"], "Amazon 2018 review file (<Cat>_5.json.gz)")
    # Amazon category names start with a capital (Books, AMAZON_FASHION); this skips meta files
    # and bookkeeping such as the sample generator's generator.json
    files = [f for f in files if not f.name.startswith("meta_") and category_of(f)[:1].isupper()]
    if opts.categories:
        files = [f for f in files if category_of(f) in opts.categories]
    if not files:
        from recpipe.data.rejects import IngestError

        raise IngestError(
            f"no review file in {folder} for ingest.categories={opts.categories}; "
            f"expected <Cat>_5.json.gz for each category"
        )
    return files


def read(path: Path, opts: ReadOptions, rejects: RejectLog, workdir: Path) -> Tables:
    path = Path(path)
    workdir.mkdir(parents=True, exist_ok=True)
    stats: dict[str, int] = {}
    block = int(opts.chunk_mb * 2**20)
    files = review_files(path, opts)
    # written once, already canonical, into the file the ingest stage moves into place
    blocks = (df for f in files for df in _read_reviews(f, category_of(f), block, rejects))
    interactions = sink_frames(blocks, INTERACTIONS, finished_table(workdir, "interactions"))

    metas = []
    for f in files:
        cat = category_of(f)
        meta = next((m for m in sorted(path.glob(f"meta_{cat}.json*")) if m.is_file()), None)
        if meta is None:
            stats[f"meta_missing/{cat}"] = 1
            continue
        metas.append(_read_meta(meta, cat, opts.chunk_lines, rejects, workdir, stats))
    items = _items_for_reviews(interactions, metas, stats)
    return Tables(interactions=interactions, items=items, users=None, stats=stats)


def _read_reviews(f: Path, cat: str, block: int, rejects: RejectLog) -> Iterator[pl.DataFrame]:
    """The canonical interaction rows of one review file, one frame per block of ~`block` bytes."""
    n_lines = 0
    bar = progress(f.name)
    vote = pl.col("vote").str.replace_all(",", "").str.strip_chars().cast(pl.Int64, strict=False)
    for first, n, data in iter_blocks(f, block):
        n_lines = first + n - 1
        bar.update(n)
        df = parse_json_block(first, n, data, REVIEW_SCHEMA, f.name, rejects)
        df = df.rename({"unixReviewTime": "ts"})
        if df["ts"].null_count():  # older dumps: fall back to the "MM DD, YYYY" string
            df = _fill_review_time(df, data, first)
        df = _drop_incomplete(df, f.name, first, data, rejects)
        yield df.select(
            user=pl.col("reviewerID"),
            item=pl.col("asin"),
            rating=pl.col("overall").cast(pl.Float32),
            ts=pl.col("ts"),
            review=pl.col("reviewText"),
            domain=pl.lit(cat),
            extra=pl.struct(
                pl.col("summary"),
                vote.alias("vote"),
                pl.col("verified"),
                pl.col("reviewerName"),
                pl.col("style"),
            ).struct.json_encode(),
        )
    bar.close()
    rejects.count_lines(f, n_lines)


def _fill_review_time(df: pl.DataFrame, data: bytes, first: int) -> pl.DataFrame:
    """Fill a missing `ts` from `reviewTime`, read from just the lines lacking `unixReviewTime`.

    Those lines already parsed with the main schema, so reading one more String field from
    them should not fail (any JSON value reads as text); if it does, orjson reads it per line
    (a non-string `reviewTime` can never match "%m %d, %Y", so it makes no difference there).
    """
    rows = df.select(pl.arg_where(pl.col("ts").is_null())).to_series()
    lines = data.split(b"\n")
    picked = [lines[n - first] for n in df["__line"].gather(rows)]
    try:
        text = b"".join(line + b"\n" for line in picked)
        raw = pl.read_ndjson(io.BytesIO(text), schema={"reviewTime": pl.String}).to_series()
        if raw.len() != len(picked):
            raise ValueError("line count changed")
    except Exception:  # noqa: BLE001 - see the docstring
        import orjson

        values = [orjson.loads(line).get("reviewTime") for line in picked]
        raw = pl.Series([v if isinstance(v, str) else None for v in values], dtype=pl.String)
    review_time = pl.Series("reviewTime", [None] * df.height, dtype=pl.String).scatter(rows, raw)
    when = review_time.str.strptime(pl.Date, "%m %d, %Y", strict=False)
    return df.with_columns(ts=pl.coalesce("ts", when.cast(pl.Datetime("ms")).dt.epoch("s")))


def _drop_incomplete(df: pl.DataFrame, file: str, first: int, data: bytes, rejects) -> pl.DataFrame:
    """Reject rows lacking a user, an item or a time, naming the field."""
    required = (("reviewerID", "reviewerID"), ("asin", "asin"), ("ts", "unixReviewTime"))
    if not any(df[c].null_count() for c, _ in required):
        return df
    lines = data.split(b"\n")  # once per block (per reject, many rejects cost block x rejects)
    ok = pl.lit(True)
    for col, field in required:
        for n in df.filter(ok & pl.col(col).is_null())["__line"].to_list():
            reason = "missing or unparsable review time" if col == "ts" else "missing required field"
            rejects.add(file, n, reason, field=field, text=lines[n - first])
        ok = ok & pl.col(col).is_not_null()
    return df.filter(ok)


def parse_price(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        m = _PRICE.match(value)
        if m:
            return float(m.group(1).replace(",", ""))
    return None


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return " ".join(str(v).strip() for v in value if v is not None and str(v).strip())
    return str(value)


def _read_meta(meta: Path, cat: str, chunk: int, rejects, workdir: Path, stats) -> Path:
    import orjson

    rows = []
    n_lines = 0
    for nums, lines in iter_chunks(meta, chunk):
        n_lines = nums[-1]
        for n, line in zip(nums, lines):
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                rejects.add(meta.name, n, f"malformed JSON: {e}", text=line)
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("asin"), str):
                rejects.add(meta.name, n, "missing required field", field="asin", text=line)
                continue
            extra = {k: v for k, v in obj.items() if k not in META_FIELDS}
            # the two published releases name image lists differently; expose one key
            images = obj.get("imageURLHighRes") or obj.get("imageURL") or obj.get("image")
            if images:
                extra["image_urls"] = images
            price = parse_price(obj.get("price"))
            if price is None and obj.get("price"):
                extra["price_raw"] = obj.get("price")
            cats = obj.get("category")
            rows.append(
                {
                    "item": obj["asin"],
                    "title": _text(obj.get("title")),
                    "description": _text(obj.get("description")),
                    "categories": [str(c) for c in cats] if isinstance(cats, list) else [],
                    "brand": _text(obj.get("brand")),
                    "price": price,
                    "domain": cat,
                    "extra": orjson.dumps(extra).decode(),
                }
            )
    rejects.count_lines(meta, n_lines)
    df = pl.DataFrame(rows, schema=READER_ITEMS)
    dups = df.height - df["item"].n_unique()
    stats[f"meta_duplicate_asins/{cat}"] = dups
    df = df.unique("item", keep="first", maintain_order=True)
    part = workdir / f"meta-{cat}.parquet"
    df.write_parquet(part)
    return part


def _items_for_reviews(interactions: pl.LazyFrame, metas: list[Path], stats) -> pl.DataFrame:
    """One row per reviewed item: its meta when some category has it, else a bare row."""
    reviewed = interactions.group_by("item").agg(pl.col("domain").first()).collect(engine="streaming")
    if metas:
        meta = pl.concat([pl.read_parquet(m) for m in metas]).unique("item", keep="first")
    else:
        meta = pl.DataFrame(schema={"item": pl.String, "domain": pl.String})
    items = reviewed.join(meta.drop("domain"), on="item", how="left")
    has_meta = reviewed.join(meta.select("item"), on="item", how="semi").height
    stats["items_without_meta"] = reviewed.height - has_meta
    stats["meta_items_without_reviews"] = meta.height - has_meta
    # group_by and unique return rows in a different order on every run; sorted, the items
    # table (a DVC output) is byte-identical between runs
    return items.sort("item")
