"""RecBole atomic files (Zhao et al., CIKM 2021).

Format: https://recbole.io/docs/user_guide/data/atomic_files.html

Files, found in `dataset.path` (one folder may hold several datasets; each `<name>` is a domain
and `ingest.categories` filters them):
- `<name>.inter` (required), or RecBole's benchmark split `<name>.train.inter`,
  `<name>.valid.inter` (optional), `<name>.test.inter`: then the optional `split` column says
  train/valid/test, so a pre-split dataset keeps its split. Split files win over `<name>.inter`.
- `<name>.item`, `<name>.user` (optional).

Every file is tab-separated with a header of `field:type` (type: token, token_seq, float,
float_seq; seq values are space-separated). Mapping to the canonical tables:
- interactions: user_id -> user, item_id -> item, rating -> rating, timestamp -> ts (floored
  to int seconds), review -> review, domain -> domain (else `<name>`), the rest -> extra JSON.
- items: item_id -> item, title (token_seq kept as its space-joined text), categories
  (token_seq -> list), brand, price, description; the rest -> extra.
- users: user_id -> user; the rest -> extra.
RecBole's own releases use a few other names for these (`business_id`/`stars`/`date` in Yelp,
`product_id` in Steam, `movie_title`/`genre` in MovieLens), so the first present alias is used.

Items in a `.item` file take `<name>` as domain. Items (and users, when a `.user` file exists)
that interactions mention but the side files lack get a row without metadata (title null,
extra "{}", the domain of their first interaction), counted as `items_without_meta` /
`users_without_meta`, so both tables cover every interaction.

Users are merged by raw id across datasets (as RecBole's cross-domain files expect), so two
datasets in one folder share a user when their raw ids match. Files are streamed chunk by chunk
into Parquet parts; rows with the wrong field count or an unparsable float are rejected with
their line number and field.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import polars as pl

from recpipe.data.lines import iter_chunks, open_binary
from recpipe.data.readers import ReadOptions, Tables, find_files, select_categories
from recpipe.data.rejects import IngestError, RejectLog
from recpipe.data.schema import SPLIT_NAMES, conform

TYPES = ("token", "token_seq", "float", "float_seq")
USER = ("user_id",)
ITEM = ("item_id", "business_id", "product_id")
ALIASES = {
    "rating": ("rating", "stars"),
    "ts": ("timestamp", "date"),
    "review": ("review", "review_text", "text"),
    "domain": ("domain",),
    "title": ("title", "movie_title", "item_name", "app_name"),
    "categories": ("categories", "genre", "genres"),
    "brand": ("brand",),
    "price": ("price",),
    "description": ("description",),
}
_SPLIT_FILE = re.compile(r"^(?P<name>.+)\.(?P<split>train|valid|test)\.inter$")


def read(path: Path, opts: ReadOptions, rejects: RejectLog, workdir: Path) -> Tables:
    folder = Path(path)
    datasets = _datasets(find_files(folder, ["*.inter"], "RecBole file (<name>.inter)"), opts)
    out = Path(workdir) / "recbole"
    out.mkdir(parents=True, exist_ok=True)
    stats: dict[str, int] = {}
    inter_parts, item_parts, user_parts = [], [], []
    for name, files in sorted(datasets.items()):
        if "" in files and len(files) > 1:
            stats[f"{name}/inter_ignored_for_split_files"] = 1
            del files[""]
        if "" not in files and "train" not in files:
            raise IngestError(
                f"{folder}: {name}.valid/test.inter found but {name}.train.inter is missing"
            )
        for split in ("", *SPLIT_NAMES):
            if split in files:
                inter_parts += _stream(files[split], "interactions", name, split or None, opts,
                                       rejects, out)
        for ext, table, target in (("item", "items", item_parts), ("user", "users", user_parts)):
            f = folder / f"{name}.{ext}"
            if f.is_file():
                target += _stream(f, table, name, None, opts, rejects, out)
    interactions = pl.scan_parquet(inter_parts)
    item_parts.append(_stubs(interactions, "items", item_parts, out, stats))
    items = _dedupe(item_parts, "item", stats)
    users = None  # no .user file: derived from interactions later
    if user_parts:
        user_parts.append(_stubs(interactions, "users", user_parts, out, stats))
        users = _dedupe(user_parts, "user", stats)
    for key, n in stats.items():
        rejects.note(key, n)
    return Tables(interactions=interactions, items=items, users=users, stats=stats)


def _datasets(files: list[Path], opts: ReadOptions) -> dict[str, dict[str, Path]]:
    """{name: {split ("" for a plain .inter): path}}, filtered by ingest.categories."""
    found: dict[str, dict[str, Path]] = defaultdict(dict)
    for f in files:
        m = _SPLIT_FILE.match(f.name)
        name, split = (m["name"], m["split"]) if m else (f.name[: -len(".inter")], "")
        found[name][split] = f
    return select_categories(found, opts, "<name>.inter")


def _dedupe(parts: list[Path], key: str, stats: dict) -> pl.LazyFrame:
    lf = pl.scan_parquet(parts)
    n_all, n_unique = lf.select(pl.len(), pl.col(key).n_unique()).collect().row(0)
    if n_all > n_unique:
        stats[f"duplicate_{key}_rows"] = int(n_all - n_unique)
        lf = lf.unique(subset=[key], keep="first", maintain_order=True)
    return lf


def _stubs(interactions: pl.LazyFrame, table: str, parts: list[Path], out: Path, stats) -> Path:
    """A row (no metadata, extra "{}") for each interacting item/user missing from the
    .item/.user files, counted as `items_without_meta` / `users_without_meta`."""
    key = table[:-1]
    stubs = interactions.group_by(key).agg(pl.col("domain").first())
    if parts:
        stubs = stubs.join(pl.scan_parquet(parts).select(key), on=key, how="anti")
    stubs = stubs.collect().sort(key).with_columns(
        categories=pl.lit([], pl.List(pl.String)), extra=pl.lit("{}")
    )
    stats[f"{table}_without_meta"] = stubs.height
    part = out / f"{table}-stubs.parquet"
    conform(stubs, table).write_parquet(part)
    return part


# --- one atomic file -> typed chunks -------------------------------------------------------


def header(f: Path) -> list[tuple[str, str]]:
    """The `[(field, type), ...]` of an atomic file's first line; IngestError when malformed."""
    with open_binary(f) as fh:
        first = fh.readline().decode("utf-8-sig", errors="replace").rstrip("\r\n")
    fields = []
    for token in first.split("\t"):
        name, _, typ = token.strip().rpartition(":")
        if not name or typ not in TYPES:
            raise IngestError(
                f"{f.name}:1: header field {token!r} is not 'name:type' with type one of "
                f"{', '.join(TYPES)}"
            )
        fields.append((name, typ))
    return fields


def _decode(nums: list[int], lines: list[bytes], f: Path, rejects) -> pl.DataFrame:
    try:
        text = pl.Series("__raw", lines, dtype=pl.Binary).cast(pl.String)
        return pl.DataFrame({"__line": nums, "__raw": text}, schema_overrides={"__line": pl.Int64})
    except pl.exceptions.ComputeError:  # invalid UTF-8 somewhere: find the lines
        keep_nums, keep = [], []
        for n, line in zip(nums, lines):
            try:
                keep.append(line.decode("utf-8"))
                keep_nums.append(n)
            except UnicodeDecodeError:
                rejects.add(f, n, "line is not valid UTF-8", text=line)
        return pl.DataFrame({"__line": keep_nums, "__raw": keep},
                            schema={"__line": pl.Int64, "__raw": pl.String})


def parse_chunk(f: Path, fields, nums: list[int], lines: list[bytes], rejects) -> pl.DataFrame:
    """Lines of an atomic file -> one typed column per field (token/token_seq/float_seq as
    strings, float as f64) plus `__line` and `__raw` (the line); bad rows go to `rejects`."""
    df = _decode(nums, lines, f, rejects)
    cells = pl.col("__raw").str.strip_chars_end("\r\n").str.split("\t")
    df = df.with_columns(cells=cells)
    checks = [(pl.col("cells").list.len() != len(fields),
               f"wrong number of fields (header has {len(fields)})", None)]
    values = []
    for i, (name, typ) in enumerate(fields):
        cell = pl.col("cells").list.get(i, null_on_oob=True).str.strip_chars()
        cell = pl.when(cell != "").then(cell)
        if typ == "float":
            parsed = cell.cast(pl.Float64, strict=False)
            checks.append((cell.is_not_null() & parsed.is_null(), "unparsable float", name))
        elif typ == "float_seq":
            parsed = cell
            nums_bad = cell.str.extract_all(r"\S+").list.eval(
                pl.element().cast(pl.Float64, strict=False).is_null()
            ).list.any()
            checks.append((nums_bad.fill_null(False), "unparsable float in float_seq", name))
        else:
            parsed = cell
        values.append(parsed.alias(name))
    ok = pl.lit(True)
    text = None
    for bad, reason, field in checks:
        found = df.filter(ok & bad).select("__line", "__raw")
        if found.height:
            text = text or dict(zip(nums, lines))
            for n, raw in found.iter_rows():
                got = raw.count("\t") + 1 if field is None else None
                why = reason if got is None else f"{reason}, got {got}"
                rejects.add(f, n, why, field=field, text=text[n])
        ok = ok & ~bad
    return df.filter(ok).select("__line", "__raw", *values)


# --- typed chunk -> canonical table ---------------------------------------------------------


def _pick(names: list[str], aliases: tuple[str, ...]) -> str | None:
    return next((a for a in aliases if a in names), None)


def _extra(types: dict[str, str], used: set[str]) -> pl.Expr:
    """Leftover fields as JSON: token -> str, float -> number, *_seq -> list."""
    rest = []
    for name, typ in types.items():
        if name in used:
            continue
        col = pl.col(name)
        if typ == "token_seq":
            col = col.str.extract_all(r"\S+")
        elif typ == "float_seq":
            col = col.str.extract_all(r"\S+").list.eval(pl.element().cast(pl.Float64))
        rest.append(col.alias(name))
    if not rest:
        return pl.lit(None, pl.String).alias("extra")
    return pl.struct(rest).struct.json_encode().alias("extra")


def _required(df, f: Path, col: str, rejects) -> pl.DataFrame:
    bad = df.filter(pl.col(col).is_null()).select("__line", "__raw")
    for n, raw in bad.iter_rows():
        rejects.add(f, n, f"missing {col}", field=col, text=raw)
    return df.filter(pl.col(col).is_not_null()) if bad.height else df


def _mapper(f: Path, table: str, fields, name: str, split: str | None):
    """Return a function typed chunk -> canonical frame, after checking the header."""
    types = dict(fields)
    names = list(types)
    user, item = _pick(names, USER), _pick(names, ITEM)
    key = {"interactions": (user, item), "items": (item,), "users": (user,)}[table]
    if None in key:
        want = {"interactions": "user_id:token and item_id:token", "items": "item_id:token",
                "users": "user_id:token"}[table]
        raise IngestError(f"{f.name}:1: header needs {want}; it has {', '.join(names)}")
    pick = {k: _pick(names, a) for k, a in ALIASES.items()}

    def col(k: str, dtype=pl.String) -> pl.Expr:
        return pl.col(pick[k]).cast(dtype, strict=False) if pick[k] else pl.lit(None, dtype)

    def interactions(df: pl.DataFrame, rejects) -> pl.DataFrame:
        for c in (user, item):
            df = _required(df, f, c, rejects)
        used = {user, item, *(pick[k] for k in ("rating", "ts", "review", "domain"))}
        return df.select(
            user=pl.col(user),
            item=pl.col(item),
            rating=col("rating", pl.Float64),
            ts=col("ts", pl.Float64).floor().cast(pl.Int64, strict=False),
            review=col("review"),
            domain=col("domain").fill_null(pl.lit(name)),
            extra=_extra(types, used),
            split=pl.lit(split, pl.String),
        )

    def items(df: pl.DataFrame, rejects) -> pl.DataFrame:
        df = _required(df, f, item, rejects)
        used = {item, *(pick[k] for k in ("title", "categories", "brand", "price",
                                          "description"))}
        cats = col("categories").str.extract_all(r"\S+").fill_null([])
        return df.select(
            item=pl.col(item),
            title=col("title"),
            description=col("description"),
            categories=cats,
            brand=col("brand"),
            price=col("price", pl.Float64),
            domain=pl.lit(name),
            extra=_extra(types, used),
        )

    def users(df: pl.DataFrame, rejects) -> pl.DataFrame:
        df = _required(df, f, user, rejects)
        return df.select(user=pl.col(user), extra=_extra(types, {user}))

    return {"interactions": interactions, "items": items, "users": users}[table]


def _stream(f: Path, table: str, name: str, split, opts: ReadOptions, rejects, out: Path):
    """Parse one atomic file into conformed Parquet parts under `out`."""
    fields = header(f)
    to_table = _mapper(f, table, fields, name, split)
    parts: list[Path] = []
    n_lines = 0
    for k, (nums, lines) in enumerate(iter_chunks(f, opts.chunk_lines)):
        n_lines = nums[-1]
        if nums[0] == 1:  # the header line
            nums, lines = nums[1:], lines[1:]
        typed = parse_chunk(f, fields, nums, lines, rejects)
        part = out / f"{f.name}-{k:05d}.parquet"
        conform(to_table(typed, rejects), table).write_parquet(part)
        parts.append(part)
    rejects.count_lines(f, max(n_lines - 1, 0))  # data lines, without the header
    if not parts:
        raise IngestError(f"{f}: empty file; expected a header line of field:type columns")
    return parts

