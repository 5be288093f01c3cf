"""Mixed-sequence cross-domain releases (C2DSR, Cao et al., CIKM 2022; URLLM, Shen et al.,
2024: https://github.com/TingJShen/URLLM): one sequence per user that interleaves the items of
two domains, each domain an id range.

Files, found in `dataset.path`:
- `train*.txt`, `valid*.txt`, `test*.txt` (at least one; URLLM: `train_F2.txt` ...): lines
  `uid \\t n \\t iid|pos|pos \\t iid|pos|pos ... \\t` (tab-separated, usually a trailing tab).
  `uid` is a 0-based user index, `n` the last position (items - 1), and each item field is the
  item's sequence id followed by its position, twice: in the URLLM release both copies equal the
  field's index in the line (0, 1, 2, ...). `ts` is the first copy, an ordinal
  pseudo-timestamp as in `seqtxt` (order within a user only; no times are released, so the
  reader declares `ts_kind: position` and `split.protocol=temporal` splits per user by it). A
  second copy that differs is ignored and counted (`cdsr/position_fields_differ`).
- `item_list<CODE>*.csv` (one per domain, required): CSV `idBefore,item_title,idAfter,
  item_attribute`; `idAfter` is the id the sequences use, `idBefore` the item's id before the
  release re-numbered the domains into one range. The domain of an item is the list it is in,
  and the domain is named by `<CODE>`, the letters after `item_list` up to `_` or `.`
  (`item_listA_F.csv` -> `A`, `item_listO_AA_F.csv` -> `O`). The release spells its domains
  only as these letters, so the reader keeps them rather than guess names (in the Arts/Office
  set A holds "arts crafts sewing" items and O "office products"); `ingest.categories` selects
  domains by these codes.
- `userlist.txt` (`reviewerID \\t index`) or `Dualuser_dict.json` (reviewer ids in index order),
  optional: the real user ids. When both exist they must agree. Without them the user id is
  the integer `uid`.

Canonical tables:
- interactions: the union of every line of the user across the files, `item` = the sequence
  id as text, `ts` = the position, `rating` null. A user has several lines: the URLLM release
  repeats each sequence once per domain, each copy ending with that domain's target (an O
  item, then an A item). At a position that ends every line holding it each distinct item is
  kept, so the user ends with one target per domain at one position (`cdsr/final_positions_with_several_items`
  counts them) and the position split tests both. Two lines that disagree before their last
  item mean the histories differ: the later line (file order train, valid, test, then line
  order) wins, counted (`cdsr/position_conflicts_mid`) and warned about. (The data README's
  198,964 interactions count one item per position, the later line's: 9,577 fewer.)
- items: every row of the item lists, `title` = item_title, `categories` = [item_attribute]
  (the release's lower-cased category path and brand in one string: they cannot be told
  apart, so `brand` stays null), `extra` = {"id_before": idBefore}, `orig_id` = idAfter - the
  smallest idAfter (release order).
- users: `user` = reviewer id (or uid), `orig_id` = uid - the smallest uid (release order).

Rejected, with file, line and field: a line with fewer than three fields, a uid / n that is not
an integer, an item field that is not `iid|pos|pos`, `n` that does not match the number of
items, positions that do not increase along the line, an item id in no item list, a uid
beyond the user list; an item-list row with the wrong field count, a non-integer or repeated
idAfter; a user-list line that is not `reviewerID \\t index` or repeats an index or id.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import polars as pl

from recpipe.data.readers import ReadOptions, Tables, find_files, select_categories
from recpipe.data.readers.seqtxt import _numbered
from recpipe.data.rejects import IngestError, RejectLog

SEQUENCES = ("train*.txt", "valid*.txt", "test*.txt")  # read in this order: later lines win
ITEM_LISTS = ("item_list*.csv",)
USERLIST = "userlist.txt"
DUALUSER = "Dualuser_dict.json"
ITEM_HEADER = ("idBefore", "item_title", "idAfter", "item_attribute")
_INT = r"^\d{1,18}$"  # fits in Int64
_IS_INT = re.compile(_INT)
_FIELD = r"^\d{1,18}\|\d{1,18}\|\d{1,18}$"


def read(path: Path, opts: ReadOptions, rejects: RejectLog, workdir: Path) -> Tables:
    folder = Path(path)
    lists = find_files(folder, list(ITEM_LISTS),
                       "item list (item_list<CODE>*.csv, C2DSR/URLLM format)")
    seq_files = _sequence_files(folder)
    codes = _codes(lists)
    keep = sorted(select_categories(codes, opts, "item_list<CODE>*.csv"))
    stats: dict = {"ts_kind": "position"}

    items = _read_items(codes, rejects)  # every list: an id of a skipped domain is not unknown
    if items.height == 0:
        raise IngestError(f"{folder}: the item lists hold no usable row (see the rejects)")
    user_ids = _user_ids(folder, rejects)
    known = items.select(iid="id_after", domain="domain")
    rows = pl.concat(
        [_read_sequences(f, i, known, user_ids, rejects) for i, f in enumerate(seq_files)]
    )
    inter = _union(rows, stats)
    if len(keep) < len(codes):  # ingest.categories: the chosen domains' items, positions kept
        inter = inter.filter(pl.col("domain").is_in(keep))
        items = items.filter(pl.col("domain").is_in(keep))

    item_tab = _numbered(items, "item", 0).select(
        "item",
        title="title",
        description=pl.lit(None, pl.String),
        categories="categories",
        brand=pl.lit(None, pl.String),
        price=pl.lit(None, pl.Float64),
        domain="domain",
        extra=pl.struct("id_before").struct.json_encode(),
        orig_id="orig_id",
    )
    names = pl.DataFrame(
        {"uid": list(user_ids or {}), "user": list((user_ids or {}).values())},
        schema={"uid": pl.Int64, "user": pl.String},
    )
    if user_ids is None:  # no user list: the release's integer uid is the id
        names = inter.select("uid").unique().with_columns(user=pl.col("uid").cast(pl.String))
    inter = inter.join(names, on="uid", how="left").sort("uid", "pos")
    uids = inter.select("uid", "user").unique("uid")
    user_tab = uids.select(
        "user", extra=pl.lit("{}"), orig_id=pl.col("uid") - pl.col("uid").min()
    ).sort("orig_id")
    if user_ids is not None:
        stats["cdsr/listed_users_without_sequence"] = len(user_ids) - user_tab.height

    per_user = inter.group_by("uid").agg(pl.col("domain").n_unique())
    stats["cdsr/users_in_every_domain"] = per_user.filter(pl.col("domain") == len(keep)).height
    stats["cdsr/items_without_title"] = item_tab["title"].null_count()
    stats["cdsr/listed_items_without_interaction"] = item_tab.height - inter["item"].n_unique()
    interactions = inter.select(
        "user", "item", ts="pos", rating=pl.lit(None, pl.Float32), domain="domain"
    )
    return Tables(interactions=interactions, items=item_tab, users=user_tab, stats=stats)


def _sequence_files(folder: Path) -> list[Path]:
    """train*, valid*, test* .txt files, in that order; at least one must exist."""
    found = [p for pat in SEQUENCES for p in sorted(folder.glob(pat)) if p.is_file()]
    if not found:
        raise IngestError(
            f"no sequence file in {folder}: expected files named like {', '.join(SEQUENCES)} "
            f"(C2DSR/URLLM format: `uid \\t n \\t iid|pos|pos ...` lines), next to item_list*.csv"
        )
    return found


def _codes(lists: list[Path]) -> dict[str, Path]:
    """Domain code -> item list: `item_listA_F.csv` -> A (the letters up to `_` or `.`)."""
    out: dict[str, Path] = {}
    for f in lists:
        m = re.match(r"item_list_?([A-Za-z0-9]+)", f.name)
        code = m.group(1) if m else f.stem
        if code in out:
            raise IngestError(
                f"{out[code].name} and {f.name} both name domain {code!r} (the letters after "
                f"`item_list`); keep one item list per domain"
            )
        out[code] = f
    return out


def _read_items(by_code: dict[str, Path], rejects: RejectLog) -> pl.DataFrame:
    """Every usable item-list row: id_after, item, title, categories, domain, id_before."""
    ids, titles, attrs, domains, before = [], [], [], [], []
    seen: dict[int, tuple[str, int]] = {}  # id_after -> (file, line), across lists
    for code, f in sorted(by_code.items()):
        with open(f, newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or "idAfter" not in [h.strip().lstrip("\ufeff") for h in header]:
                raise IngestError(
                    f"{f}: the first line must be the header {','.join(ITEM_HEADER)} "
                    f"(got {header!r})"
                )
            cols = {h.strip().lstrip("\ufeff"): i for i, h in enumerate(header)}
            n = 1
            for row in reader:
                n = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                bad = _item_row_problem(row, cols, seen)
                if bad:
                    rejects.add(f, n, bad[1], field=bad[0], text=",".join(row))
                    continue
                iid = int(row[cols["idAfter"]])
                seen[iid] = (f.name, n)
                ids.append(iid)
                domains.append(code)
                titles.append(_cell(row, cols, "item_title"))
                attrs.append(_cell(row, cols, "item_attribute"))
                ib = _cell(row, cols, "idBefore")
                before.append(int(ib) if ib is not None else None)
            rejects.count_lines(f, n)
    attr = pl.col("attribute")
    return pl.DataFrame(
        {"id_after": ids, "title": titles, "attribute": attrs, "domain": domains,
         "id_before": before},
        schema={"id_after": pl.Int64, "title": pl.String, "attribute": pl.String,
                "domain": pl.String, "id_before": pl.Int64},
    ).select(
        "id_after", "title", "domain", "id_before",
        item=pl.col("id_after").cast(pl.String),
        categories=pl.when(attr.is_not_null()).then(pl.concat_list(attr))
        .otherwise(pl.lit([], pl.List(pl.String))),
    )


def _cell(row: list[str], cols: dict[str, int], name: str) -> str | None:
    i = cols.get(name)
    value = row[i].strip() if i is not None else ""
    return value or None


def _item_row_problem(row, cols, seen) -> tuple[str, str] | None:
    """(field, reason) of what makes an item-list row unusable, or None."""
    if len(row) != len(cols):
        return "row", f"{len(row)} fields, the header has {len(cols)}"
    id_after = row[cols["idAfter"]].strip()
    if not _IS_INT.match(id_after):
        return "idAfter", f"idAfter {id_after!r} is not a non-negative integer"
    if int(id_after) in seen:
        first, line = seen[int(id_after)]
        return "idAfter", f"item id {id_after} is already listed ({first} line {line})"
    before = _cell(row, cols, "idBefore")
    if before is not None and not _IS_INT.match(before):
        return "idBefore", f"idBefore {before!r} is not a non-negative integer"
    return None


def _user_ids(folder: Path, rejects: RejectLog) -> dict[int, str] | None:
    """uid -> reviewer id from userlist.txt and/or Dualuser_dict.json; None when neither."""
    listed = _read_userlist(folder / USERLIST, rejects)
    dual = _read_dualuser(folder / DUALUSER)
    if listed is not None and dual is not None:
        for uid, name in sorted(listed.items()):
            if uid < len(dual) and dual[uid] != name:
                raise IngestError(
                    f"{USERLIST} and {DUALUSER} disagree on user {uid}: {name!r} vs "
                    f"{dual[uid]!r}; remove the wrong one"
                )
    if listed is not None:
        return listed
    if dual is not None:
        return dict(enumerate(dual))
    return None


def _read_userlist(f: Path, rejects: RejectLog) -> dict[int, str] | None:
    if not f.is_file():
        return None
    out: dict[int, str] = {}
    names: dict[str, int] = {}
    lines = f.read_text(encoding="utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    rejects.count_lines(f, len(lines))
    for n, text in enumerate(lines, start=1):
        parts = text.rstrip("\r").split("\t")
        if not text.strip():
            continue
        if len(parts) != 2 or not parts[0].strip() or not _IS_INT.match(parts[1].strip()):
            rejects.add(f, n, "expected `reviewerID \\t index` (index a non-negative integer)",
                        field="index" if len(parts) == 2 else "line", text=text)
            continue
        name, uid = parts[0].strip(), int(parts[1])
        if uid in out:
            rejects.add(f, n, f"index {uid} already names {out[uid]!r}", field="index", text=text)
        elif name in names:
            rejects.add(f, n, f"reviewer id {name!r} already has index {names[name]}",
                        field="reviewerID", text=text)
        else:
            out[uid], names[name] = name, uid
    return out


def _read_dualuser(f: Path) -> list[str] | None:
    if not f.is_file():
        return None
    try:
        obj = json.loads(f.read_bytes())
    except ValueError as e:
        raise IngestError(f"{f}: not valid JSON ({e}); expected a list of reviewer ids")
    if not isinstance(obj, list) or not all(isinstance(x, str) for x in obj):
        raise IngestError(f"{f}: expected a JSON list of reviewer ids (strings) in index order")
    if len(set(obj)) != len(obj):
        raise IngestError(f"{f}: a reviewer id appears twice, so two users would merge")
    return obj


def _read_sequences(f: Path, order: int, known: pl.DataFrame, user_ids: dict[int, str] | None,
                    rejects: RejectLog) -> pl.DataFrame:
    """Good lines of one sequence file -> one row per item field:
    (order, line, k, last, uid, iid, pos, pos2, domain)."""
    raw = f.read_bytes().decode("utf-8", errors="replace").split("\n")
    if raw and raw[-1] == "":
        raw.pop()  # the final newline does not start another line
    rejects.count_lines(f, len(raw))
    lines = (
        pl.DataFrame({"text": raw}, schema={"text": pl.String})
        .with_row_index("line", offset=1)
        .with_columns(fields=pl.col("text").str.strip_chars_end("\r\t").str.split("\t"))
        .filter(pl.col("text").str.strip_chars() != "")  # blank lines are not records
    )
    uid = pl.col("fields").list.get(0, null_on_oob=True)
    n = pl.col("fields").list.get(1, null_on_oob=True)
    seq = pl.col("fields").list.slice(2)
    first_bad = seq.list.eval(pl.element().filter(~pl.element().str.contains(_FIELD))).list.first()
    checks = (
        (pl.col("fields").list.len() < 3,
         pl.lit("expected `uid \\t n \\t iid|pos|pos ...`: fewer than 3 tab-separated fields"),
         "line"),
        (~uid.str.contains(_INT), pl.format("uid {} is not a non-negative integer", uid), "uid"),
        (~n.str.contains(_INT), pl.format("n {} is not a non-negative integer", n), "n"),
        (first_bad.is_not_null(),
         pl.format("item field '{}' is not iid|pos|pos", first_bad), "item"),
        (n.cast(pl.Int64, strict=False) != seq.list.len() - 1,
         pl.format("n={} but the line has {} items (n is the last position: items - 1)",
                   n, seq.list.len()), "n"),
    )
    ok = lines.with_columns(ok=pl.lit(True))
    for bad, reason, field in checks:
        hit = ok.filter(pl.col("ok") & bad.fill_null(False))
        for ln, text, why in hit.select("line", "text", reason.alias("why")).iter_rows():
            rejects.add(f, ln, why, field=field, text=text)
        ok = ok.with_columns(ok=pl.col("ok") & ~bad.fill_null(False))
    good = ok.filter("ok").select("line", uid=uid.cast(pl.Int64), fields=seq)
    rows = (
        good.with_columns(k=pl.int_ranges(0, pl.col("fields").list.len()),
                          nk=pl.col("fields").list.len())
        .explode(["fields", "k"])
        .with_columns(parts=pl.col("fields").str.split("|"))
        .select(
            "line", "uid", "k", last=pl.col("k") == pl.col("nk") - 1,
            iid=pl.col("parts").list.get(0).cast(pl.Int64),
            pos=pl.col("parts").list.get(1).cast(pl.Int64),
            pos2=pl.col("parts").list.get(2).cast(pl.Int64),
        )
        .join(known, on="iid", how="left")
    )
    # line-level checks that need the exploded fields
    per_line = rows.group_by("line").agg(
        increasing=(pl.col("pos").diff().drop_nulls() > 0).all(),
        unknown=pl.col("iid").filter(pl.col("domain").is_null()).first(),
        uid=pl.col("uid").first(),
    )
    ranges = _ranges(known)
    bad_lines: set[int] = set()
    for ln, inc, unknown, u in per_line.sort("line").iter_rows():
        if not inc:
            why, field = "positions do not increase along the line", "item"
        elif unknown is not None:
            why, field = f"item id {unknown} is in no item list ({ranges})", "item"
        elif user_ids is not None and u not in user_ids:
            why, field = f"uid {u} is not in the user list ({USERLIST} / {DUALUSER})", "uid"
        else:
            continue
        rejects.add(f, ln, why, field=field, text=raw[ln - 1])
        bad_lines.add(ln)
    rows = rows.filter(~pl.col("line").is_in(list(bad_lines)))
    return rows.with_columns(order=pl.lit(order, pl.Int64))


def _ranges(known: pl.DataFrame) -> str:
    """'A: 0-18638, O: 18639-38395' (each domain's smallest and largest listed id)."""
    if known.height == 0:
        return "the lists are empty"
    spans = known.group_by("domain").agg(lo=pl.col("iid").min(), hi=pl.col("iid").max())
    spans = spans.sort("domain")
    return ", ".join(f"{d}: {lo}-{hi}" for d, lo, hi in spans.iter_rows())


def _union(rows: pl.DataFrame, stats: dict) -> pl.DataFrame:
    """The user's lines merged by position. A position that is the last of every line holding
    it keeps each distinct item (C2DSR/URLLM repeat each sequence once per domain, each copy
    ending with that domain's target, so a user ends with one item per domain at one
    position); elsewhere the item of the user's latest line (file order, then line) wins."""
    rows = rows.sort("uid", "pos", "order", "line")
    # a position that ends every line holding it keeps all its distinct items
    final = rows.group_by("uid", "pos").agg(pl.col("last").all().alias("final"))
    rows = rows.join(final, on=["uid", "pos"])
    latest = rows.group_by("uid", "pos", maintain_order=True).agg(pl.col("iid").last().alias("kept"))
    rows = rows.join(latest, on=["uid", "pos"])
    differ = rows.filter(pl.col("iid") != pl.col("kept"))
    mid = differ.filter(~pl.col("final")).select("uid", "pos").unique()
    stats["cdsr/final_positions_with_several_items"] = (
        differ.filter(pl.col("final")).select("uid", "pos").unique().height)
    stats["cdsr/position_conflicts_mid"] = mid.height
    stats["cdsr/position_fields_differ"] = rows.filter(pl.col("pos") != pl.col("pos2")).height
    if mid.height:
        u, p = mid.sort("uid", "pos").row(0)
        print(f"ingest: warning: cdsr: {mid.height:,} positions hold different items on two "
              f"lines of one user before either line's last item (first: uid {u}, position "
              f"{p}); the later line's item is kept (cdsr/position_conflicts_mid)",
              file=sys.stderr, flush=True)
    kept = rows.filter(pl.col("final") | (pl.col("iid") == pl.col("kept")))
    kept = kept.unique(["uid", "pos", "iid"], keep="first", maintain_order=True)
    return kept.select("uid", item=pl.col("iid").cast(pl.String), pos="pos", domain="domain")