"""Steam (Kang & McAuley, ICDM 2018; Wan & McAuley, RecSys 2018; Pathak et al., SIGIR 2017).

Published at https://cseweb.ucsd.edu/~jmcauley/datasets.html#steam_data. Every file holds one
Python-2 literal per line (`{u'id': u'761140', ...}`), so all of them go through the parallel
literal parser (`recpipe.data.pyliteral`).

- Items: `steam_games.json.gz` (`app_name, title, id, genres, tags, specs, developer,
  publisher, price, discount_price, release_date, sentiment, metascore, early_access, url,
  reviews_url`). Optional: without it, items are just the ids seen in the interactions.
- Interactions, one of (`ingest.steam_source`; `auto` takes the first present, in this order):
  - `reviews`: `steam_reviews.json.gz` (the SASRec / RLMRec Steam data), one review per line.
  - `australian_reviews`: `australian_user_reviews.json`, one user per line with a list of
    reviews; one interaction per review.
  - `australian_items`: `australian_users_items.json`, one user per line with the games they
    own; one interaction per owned game (no time, no rating; playtimes go to `extra`).
  Each name is also accepted with or without `.gz`.

Choices (the published files leave them open):
- `steam_reviews`: user = `username`. It is on every line, while `user_id` is only on some,
  so keying on `user_id` where present would split one reviewer into two ids; RLMRec's Steam
  mapper also keys users by username. `user_id` is kept in `extra`.
- `australian_user_reviews`: rating = 1.0 if `recommend` else 0.0 (null when absent). `posted`
  reads "Posted November 5, 2011."; reviews from the crawl year omit it ("Posted July 15.")
  and get ts = null, counted as `posted_without_year` (guessing the year would invent data).
- Game prices: numbers stay floats; strings naming a free offer ("Free", "Free to Play",
  "Free Demo", "Play for Free!", ... i.e. containing the word "free") -> 0.0; any other string
  ("Starting at $499.00", "Install Now") -> null, with the original text kept in
  `extra.price_text`. Games have no description field, so `description` is null.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from recpipe.data.lines import ParquetParts
from recpipe.data.pyliteral import CHUNK_LINES, iter_literal_chunks
from recpipe.data.readers import ReadOptions, Tables
from recpipe.data.rejects import IngestError, RejectLog
from recpipe.data.schema import READER_INTERACTIONS, READER_ITEMS

DOMAIN = "steam"
GAMES_FILES = ("steam_games.json.gz", "steam_games.json")
SOURCES: dict[str, tuple[str, ...]] = {
    "reviews": ("steam_reviews.json.gz", "steam_reviews.json"),
    "australian_reviews": ("australian_user_reviews.json", "australian_user_reviews.json.gz"),
    "australian_items": ("australian_users_items.json", "australian_users_items.json.gz"),
}
INTERACTION_SCHEMA = READER_INTERACTIONS
ITEM_SCHEMA = READER_ITEMS
USER_SCHEMA = {"user": pl.String, "extra": pl.String}

# Game keys that become item columns; the rest (tags, specs, publisher, ...) go to `extra`.
_GAME_COLUMNS = {"id", "app_name", "title", "genres", "developer", "price"}
_FREE = re.compile(r"\bfree\b", re.IGNORECASE)
_POSTED = re.compile(r"^\s*Posted\s+(?P<date>[A-Za-z]+\s+\d{1,2}(?:,\s*\d{4})?)\s*\.?\s*$")


def _first_present(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def pick_source(folder: Path, source: str) -> tuple[str, Path]:
    """The interaction source to read and its file, per `ingest.steam_source`."""
    if source != "auto" and source not in SOURCES:
        raise IngestError(
            f"ingest.steam_source={source!r} is not known; "
            f"choose auto or one of {', '.join(SOURCES)}"
        )
    for name in SOURCES if source == "auto" else (source,):
        found = _first_present(folder, SOURCES[name])
        if found is not None:
            return name, found
    wanted = [SOURCES[source][0]] if source != "auto" else [n[0] for n in SOURCES.values()]
    raise IngestError(
        f"no Steam interaction file in {folder}: expected {' or '.join(wanted)} "
        "(each also accepted with or without .gz); steam_games.json.gz alone holds only items"
    )


def read(path: Path, opts: ReadOptions, rejects: RejectLog, workdir: Path) -> Tables:
    folder = Path(path)
    if not folder.is_dir():
        raise IngestError(f"dataset.path={str(folder)!r} is not a folder; Steam files expected")
    source, inter_file = pick_source(folder, opts.steam_source)
    stats: Counter = Counter()
    games_file = _first_present(folder, GAMES_FILES)
    if games_file is None:
        stats["games_file_missing"] = 1
        games = pl.DataFrame(schema=ITEM_SCHEMA)
    else:
        games = parse_games(games_file, opts, rejects, stats)

    known = games["item"]
    unknown: dict[str, str | None] = {}  # interaction items without a game row -> a name
    inter = ParquetParts(workdir, "steam_interactions", INTERACTION_SCHEMA, opts.chunk_lines)
    users: list[tuple[str, str]] = []
    chunk = min(opts.chunk_lines, CHUNK_LINES)
    for records in iter_literal_chunks(inter_file, rejects, opts.workers, chunk):
        frame = _CONVERTERS[source](records, inter_file, rejects, stats, users)
        new = frame.filter(~pl.col("item").is_in(known.implode())).select("item", "name")
        for item, name in new.unique("item", maintain_order=True).iter_rows():
            if unknown.get(item) is None:
                unknown[item] = name
        inter.add(frame.drop("name"))

    stats["items_without_meta"] = len(unknown)
    bare = pl.DataFrame(
        {"item": list(unknown), "title": list(unknown.values())},
        schema={"item": pl.String, "title": pl.String},
    ).with_columns(pl.lit(DOMAIN).alias("domain"))
    items = pl.concat([games, bare], how="diagonal_relaxed").select(
        pl.col(c).cast(t) for c, t in ITEM_SCHEMA.items()
    )
    users_frame = None
    if users:
        users_frame = pl.DataFrame(users, schema=USER_SCHEMA, orient="row")
        stats["duplicate_user_lines"] = users_frame.height - users_frame["user"].n_unique()
        users_frame = users_frame.unique("user", keep="first", maintain_order=True)
    stats[f"source_{source}"] = 1
    for key, n in stats.items():
        rejects.note(key, n)
    return Tables(
        interactions=inter.scan(),
        items=items,
        users=users_frame,
        stats={k: int(v) for k, v in stats.items()},
    )


# --- items ----------------------------------------------------------------------------------


def parse_games(file: Path, opts: ReadOptions, rejects: RejectLog, stats: Counter) -> pl.DataFrame:
    """`steam_games.json.gz` -> canonical items frame (first line wins for a duplicate id)."""
    rows: list[tuple] = []
    seen: set[str] = set()
    chunk = min(opts.chunk_lines, CHUNK_LINES)
    for records in iter_literal_chunks(file, rejects, opts.workers, chunk):
        for line_no, rec in records:
            item = rec.get("id")
            if item is None or str(item).strip() == "":
                rejects.add(file, line_no, "missing required field", field="id", text=repr(rec))
                continue
            item = str(item)
            if item in seen:
                stats["duplicate_items"] += 1
                continue
            seen.add(item)
            rows.append(game_row(item, rec, stats))
    return pl.DataFrame(rows, schema=ITEM_SCHEMA, orient="row")


def game_row(item: str, rec: dict, stats: Counter) -> tuple:
    """One items row (ITEM_SCHEMA order) from a parsed game record."""
    extra = {k: v for k, v in rec.items() if k not in _GAME_COLUMNS}
    price = parse_price(rec.get("price"))
    if isinstance(rec.get("price"), str):
        extra["price_text"] = rec["price"]
        stats["price_free_text" if price == 0.0 else "price_unparsable"] += 1
    genres = rec.get("genres")
    return (
        item,
        rec.get("app_name") or rec.get("title"),
        None,
        [str(g) for g in genres] if isinstance(genres, list) else None,
        rec.get("developer") or rec.get("publisher"),
        price,
        DOMAIN,
        json.dumps(extra, ensure_ascii=False, default=str),
    )


def parse_price(value) -> float | None:
    """Numbers -> float; 'Free', 'Free to Play', 'Play for Free!'... -> 0.0; other text -> None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and _FREE.search(value):
        return 0.0
    return None


# --- interactions: one converter per source --------------------------------------------------
# Each takes a chunk of (line_no, record) and returns a frame with INTERACTION_SCHEMA's columns
# plus `name` (an item name where the source has one, for items missing from the games file).


def _frame(cols: dict[str, list]) -> pl.DataFrame:
    schema = {**INTERACTION_SCHEMA, "name": pl.String}
    n = len(cols["user"])
    return pl.DataFrame(
        {c: cols.get(c, [DOMAIN] * n if c == "domain" else [None] * n) for c in schema},
        schema=schema,
    )


def _missing(rec: dict, *fields: str) -> str | None:
    return next((f for f in fields if rec.get(f) in (None, "")), None)


def convert_reviews(
    records, file: Path, rejects: RejectLog, stats: Counter, users: list
) -> pl.DataFrame:
    """steam_reviews: one line = one review; user = username (see module docstring)."""
    cols: dict[str, list] = {"user": [], "item": [], "ts": [], "review": [], "extra": []}
    for line_no, rec in records:
        field = _missing(rec, "username", "product_id", "date")
        if field is not None:
            rejects.add(file, line_no, "missing required field", field=field, text=repr(rec))
            continue
        try:
            day = datetime.strptime(str(rec["date"]), "%Y-%m-%d").replace(tzinfo=timezone.utc)
        except ValueError:
            reason = f"unparsable date {rec['date']!r} (expected YYYY-MM-DD)"
            rejects.add(file, line_no, reason, field="date", text=repr(rec))
            continue
        cols["user"].append(str(rec["username"]))
        cols["item"].append(str(rec["product_id"]))
        cols["ts"].append(int(day.timestamp()))
        cols["review"].append(rec.get("text"))
        rest = {k: v for k, v in rec.items() if k not in ("username", "product_id", "date", "text")}
        cols["extra"].append(json.dumps(rest, ensure_ascii=False, default=str))
    return _frame(cols)


def posted_ts(posted) -> tuple[int | None, bool]:
    """'Posted November 5, 2011.' -> (unix s, True); 'Posted July 15.' -> (None, True)."""
    m = _POSTED.match(posted) if isinstance(posted, str) else None
    if m is None:
        return None, False
    date = " ".join(m.group("date").replace(",", " ").split())
    if not re.search(r"\d{4}$", date):
        return None, True
    try:
        day = datetime.strptime(date, "%B %d %Y").replace(tzinfo=timezone.utc)
    except ValueError:
        return None, False
    return int(day.timestamp()), True


def convert_australian_reviews(
    records, file: Path, rejects: RejectLog, stats: Counter, users: list
) -> pl.DataFrame:
    """australian_user_reviews: one line = one user with `reviews`; one interaction each."""
    cols: dict[str, list] = {k: [] for k in ("user", "item", "rating", "ts", "review", "extra")}
    for line_no, rec in records:
        field = _missing(rec, "user_id")
        reviews = rec.get("reviews")
        if field is None and not isinstance(reviews, list):
            field = "reviews"
        if field is not None:
            rejects.add(file, line_no, "missing required field", field=field, text=repr(rec))
            continue
        user = str(rec["user_id"])
        users.append((user, json.dumps({"user_url": rec.get("user_url")}, ensure_ascii=False)))
        for i, rv in enumerate(reviews):
            if not isinstance(rv, dict) or rv.get("item_id") in (None, ""):
                field = f"reviews[{i}].item_id"
                rejects.add(file, line_no, "review without item_id", field=field, text=repr(rv))
                continue
            ts, ok = posted_ts(rv.get("posted"))
            if not ok:
                reason = f"unparsable posted date {rv.get('posted')!r}"
                field = f"reviews[{i}].posted"
                rejects.add(file, line_no, reason, field=field, text=repr(rv))
                continue
            if ts is None:
                stats["posted_without_year"] += 1
            rec_flag = rv.get("recommend")
            cols["user"].append(user)
            cols["item"].append(str(rv["item_id"]))
            cols["rating"].append(None if rec_flag is None else float(bool(rec_flag)))
            cols["ts"].append(ts)
            cols["review"].append(rv.get("review"))
            rest = {k: v for k, v in rv.items() if k not in ("item_id", "recommend", "review")}
            cols["extra"].append(json.dumps(rest, ensure_ascii=False, default=str))
    return _frame(cols)


def convert_australian_items(
    records, file: Path, rejects: RejectLog, stats: Counter, users: list
) -> pl.DataFrame:
    """australian_users_items: one line = one user's library; one interaction per owned game."""
    cols: dict[str, list] = {k: [] for k in ("user", "item", "name", "forever", "two_weeks")}
    for line_no, rec in records:
        field = _missing(rec, "user_id")
        owned = rec.get("items")
        if field is None and not isinstance(owned, list):
            field = "items"
        if field is not None:
            rejects.add(file, line_no, "missing required field", field=field, text=repr(rec))
            continue
        user = str(rec["user_id"])
        meta = {k: rec.get(k) for k in ("steam_id", "user_url", "items_count")}
        users.append((user, json.dumps(meta, ensure_ascii=False, default=str)))
        for i, it in enumerate(owned):
            if not isinstance(it, dict) or it.get("item_id") in (None, ""):
                field = f"items[{i}].item_id"
                rejects.add(file, line_no, "owned game without item_id", field=field, text=repr(it))
                continue
            cols["user"].append(user)
            cols["item"].append(str(it["item_id"]))
            cols["name"].append(it.get("item_name"))
            cols["forever"].append(it.get("playtime_forever"))
            cols["two_weeks"].append(it.get("playtime_2weeks"))
    # Millions of rows on the full file: let polars build the JSON rather than json.dumps.
    frame = pl.DataFrame(
        {
            "user": cols["user"],
            "item": cols["item"],
            "item_name": cols["name"],
            "playtime_forever": cols["forever"],
            "playtime_2weeks": cols["two_weeks"],
        },
        schema={
            "user": pl.String,
            "item": pl.String,
            "item_name": pl.String,
            "playtime_forever": pl.Int64,
            "playtime_2weeks": pl.Int64,
        },
        strict=False,
    )
    return frame.select(
        "user",
        "item",
        pl.lit(None, pl.Float32).alias("rating"),
        pl.lit(None, pl.Int64).alias("ts"),
        pl.lit(None, pl.String).alias("review"),
        pl.lit(DOMAIN).alias("domain"),
        pl.struct("item_name", "playtime_forever", "playtime_2weeks")
        .struct.json_encode()
        .alias("extra"),
        pl.col("item_name").alias("name"),
    )


_CONVERTERS = {
    "reviews": convert_reviews,
    "australian_reviews": convert_australian_reviews,
    "australian_items": convert_australian_items,
}
