"""Reader for RLMRec's processed release (`data/{amazon,yelp,steam}/` of RLMRec's data.zip).

The release is already indexed and split, so this reader turns it back into canonical tables
while keeping both facts:
- `split` column = train/valid/test by source matrix (`trn_mat.pkl`, `val_mat.pkl` or
  `valid_mat.pkl`, `tst_mat.pkl`: pickled scipy sparse matrices of shape (n_users, n_items)).
  Entries are binarised: one row per stored nonzero, duplicates inside a matrix collapsed,
  explicit zeros dropped (both counted). A pair present in two matrices is kept in both and
  counted (`pairs_in_two_splits`); the split stage decides what to do with it.
- `users.orig_id` / `items.orig_id` = the release's integer ids, and every id 0..n-1 gets a row
  even without interactions, so the split stage can number entities in the release's order and
  the release's side matrices (embeddings) keep lining up.

Raw ids come from the mapper JSON-lines files (`{"uid": 0, "reviewerID": ...}`; Steam
`username`/`product_id`, Yelp `user_id`/`business_id`). Lookup order for the user mapper (the
item mapper likewise with `_item`), where `<ds>` is the dataset folder's name:
  1. `<path>/mapper/<ds>_user.json`, else the only `<path>/mapper/*_user.json`
  2. `<path>/../mapper/<ds>_user.json`  (the release layout: data/amazon + data/mapper);
     when `<path>` is a symlink, its real location's `../mapper/<ds>_user.json` next
  3. `<path>/<ds>_user.json`, else the only `<path>/*_user.json`
(`.jsonl` is accepted wherever `.json` is.) Without a mapper the raw id is `str(uid)`.

Optional side files are converted into workdir and listed in `Tables.side`:
- `usr_prf.pkl` / `itm_prf.pkl` (dict or list: id -> {'profile', 'reasoning'}) ->
  `user_profiles.parquet` / `item_profiles.parquet` (id, orig_id, summarization, reasoning);
- `usr_emb_np.pkl` / `itm_emb_np.pkl` ((n, d) float arrays) -> `user_emb.npy` / `item_emb.npy`
  (float32, row = orig_id).

The release has no timestamps, ratings, reviews or item metadata: those columns are null.
`ingest.categories` does not apply (one folder is one dataset, domain = folder name).
Pickles are read with `safe_pickle.safe_load`, which admits only numpy/scipy data. What an
admitted pickle holds is checked too: every matrix entry needs integer indices inside the
shape of `trn_mat.pkl` and a finite value >= 0, else ingest stops naming the file and an
example entry; an unreadable (truncated, corrupt) pickle stops it naming the file.
"""

from __future__ import annotations

import json
import operator
import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recpipe.data.readers import ReadOptions, Tables
from recpipe.data.rejects import IngestError, RejectLog
from recpipe.data.safe_pickle import UnsafePickleError, safe_load
from recpipe.io import write_npy, write_parquet

SPLIT_FILES = {  # split -> accepted file names, first found wins
    "train": ("trn_mat.pkl",),
    "valid": ("val_mat.pkl", "valid_mat.pkl"),
    "test": ("tst_mat.pkl",),
}
# Raw-id key in the mapper files, per entity, in the order we try them.
RAW_KEYS = {
    "user": ("reviewerID", "user_id", "username"),
    "item": ("asin", "business_id", "product_id"),
}
INT_KEY = {"user": "uid", "item": "iid"}
PROFILE_FILES = {"user": "usr_prf.pkl", "item": "itm_prf.pkl"}
EMB_FILES = {"user": "usr_emb_np.pkl", "item": "itm_emb_np.pkl"}


def read(path: Path, opts: ReadOptions, rejects: RejectLog, workdir: Path) -> Tables:
    # abspath, not resolve: the domain is the folder name the user gave, even via a symlink.
    path = Path(os.path.abspath(path))
    if not path.is_dir():
        raise IngestError(f"dataset.path={str(path)!r} is not a folder; the RLMRec files "
                          f"{_expected_names()} are expected there")
    domain = path.name
    if opts.categories and domain not in opts.categories:
        raise IngestError(
            f"ingest.categories={opts.categories} selects nothing: an rlmrec folder holds one "
            f"dataset, here domain {domain!r}; leave ingest.categories empty"
        )
    workdir = Path(workdir)
    stats: dict[str, int] = {}

    mats = _load_matrices(path, rejects, stats)
    n_users, n_items = mats["train"][1]  # checked > 0, and every index inside it
    stats["n_users"], stats["n_items"] = n_users, n_items

    user_ids = _raw_ids(path, domain, "user", n_users, rejects, stats)
    item_ids = _raw_ids(path, domain, "item", n_items, rejects, stats)

    interactions = _interactions(mats, user_ids, item_ids, domain, n_items, stats)
    users = pl.DataFrame({
        "user": user_ids,
        "extra": pl.Series(["{}"] * n_users, dtype=pl.String),
        "orig_id": pl.int_range(n_users, eager=True, dtype=pl.Int64),
    })
    items = pl.DataFrame({
        "item": item_ids,
        "domain": pl.Series([domain] * n_items, dtype=pl.String),
        "extra": pl.Series(["{}"] * n_items, dtype=pl.String),
        "orig_id": pl.int_range(n_items, eager=True, dtype=pl.Int64),
    })

    side: dict[str, Path] = {}
    for entity, ids in (("user", user_ids), ("item", item_ids)):
        prf = path / PROFILE_FILES[entity]
        if prf.is_file():
            out = workdir / f"{entity}_profiles.parquet"
            write_parquet(out, _profiles(prf, entity, ids, rejects, stats))
            side[f"{entity}_profiles"] = out
        emb = path / EMB_FILES[entity]
        if emb.is_file():
            out = workdir / f"{entity}_emb.npy"
            write_npy(out, _embeddings(emb, entity, len(ids), rejects, stats))
            side[f"{entity}_emb"] = out

    for k, v in stats.items():
        if k.endswith(("_collapsed", "_dropped", "_in_two_splits", "_missing", "_nonfinite_rows",
                        "_without_train")):
            rejects.note(k, v)
    return Tables(interactions=interactions, items=items, users=users, side=side, stats=stats)


# --------------------------------------------------------------------------- matrices


def _expected_names() -> str:
    return ", ".join(" or ".join(names) for names in SPLIT_FILES.values())


def _load(file: Path) -> Any:
    """safe_load, with every failure turned into an IngestError that names the file."""
    try:
        return safe_load(file)
    except UnsafePickleError as e:  # a refused global: its message already names the file
        raise IngestError(str(e)) from e
    except Exception as e:  # truncated or corrupt: UnpicklingError, EOFError, ValueError, ...
        # the stock messages ("pickle data was truncated", "invalid load key") name no file
        size = file.stat().st_size if file.is_file() else 0
        raise IngestError(
            f"{file}: not a readable pickle, the file ({size:,} bytes) is truncated or corrupt "
            f"({type(e).__name__}: {e}); copy or extract it again from the release"
        ) from e


def _load_matrices(path: Path, rejects: RejectLog, stats: dict) -> dict[str, tuple[Any, tuple]]:
    """Split -> (COO matrix, shape); every matrix must exist and all must share one shape."""
    import scipy.sparse as sp

    found = {s: next((path / n for n in names if (path / n).is_file()), None)
             for s, names in SPLIT_FILES.items()}
    missing = [" or ".join(SPLIT_FILES[s]) for s, f in found.items() if f is None]
    if missing:
        raise IngestError(
            f"RLMRec release in {path} is incomplete: missing {', '.join(missing)} "
            f"(expected {_expected_names()}: pickled scipy sparse matrices (n_users, n_items))"
        )
    mats: dict[str, tuple[Any, tuple]] = {}
    for split, file in found.items():
        obj = _load(file)
        if not sp.issparse(obj):
            raise IngestError(f"{file}: expected a pickled scipy sparse matrix, "
                              f"found {type(obj).__module__}.{type(obj).__name__}")
        shape = tuple(int(x) for x in obj.shape)
        if len(shape) != 2:
            raise IngestError(f"{file}: expected a 2-d (n_users, n_items) matrix, shape {shape}")
        if not mats and min(shape) <= 0:
            raise IngestError(f"{file}: empty shape {shape}; expected (n_users, n_items) with "
                              f"both > 0")
        if mats and shape != mats["train"][1]:  # train is read first and sets the shape
            raise IngestError(f"{file}: shape {shape} differs from {found['train'].name} shape "
                              f"{mats['train'][1]}; all split matrices must be (n_users, n_items)")
        coo = _checked_coo(file, obj, shape, found["train"].name)
        mats[split] = (coo, shape)
        rejects.count_lines(file, len(coo.data))
    return mats


def _checked_coo(file: Path, obj: Any, shape: tuple, shape_from: str) -> Any:
    """`obj` as COO, after checking that every entry is a usable (user, item, value).

    Unpickling restores a matrix's arrays as stored, without scipy's own checks, so a damaged
    or hand-made pickle can hold indices outside the shape. Left alone, a row of -1 or a column
    past the end folds onto another user or item through the `row * n_items + col` key, and a
    row past the end crashes in polars: every index is checked against the shape here.
    """
    n_users, n_items = shape
    try:
        if obj.format in ("csr", "csc"):  # indptr/indices are only checked on request
            obj.check_format(full_check=True)
        coo = obj.tocoo()
        row, col, data = np.asarray(coo.row), np.asarray(coo.col), np.asarray(coo.data)
    except Exception as e:  # noqa: BLE001 - any inconsistency scipy itself notices
        raise IngestError(f"{file}: not a consistent sparse matrix ({type(e).__name__}: {e})") \
            from e
    for name, arr, kinds, want in (("row index", row, "iu", "integers"),
                                   ("column index", col, "iu", "integers"),
                                   ("value", data, "biuf", "numbers")):
        if arr.dtype.kind not in kinds or arr.ndim != 1:
            raise IngestError(f"{file}: the {name} array has dtype {arr.dtype} and shape "
                              f"{arr.shape}; expected a 1-d array of {want}")
    if not len(row) == len(col) == len(data):
        raise IngestError(f"{file}: {len(row)} row indices, {len(col)} column indices and "
                          f"{len(data)} values; a sparse matrix has as many of each")

    def fail(bad: np.ndarray, what: str, why: str) -> None:
        k = int(np.flatnonzero(bad)[0])
        example = f"entry {k}: (row {row[k]}, column {col[k]}, value {data[k]})"
        raise IngestError(f"{file}: {int(bad.sum()):,} of {len(data):,} entries have {what}, "
                          f"e.g. {example}; {why}")

    dims = f"the shape {shape} of {shape_from} gives n_users={n_users}, n_items={n_items}"
    bad = (row < 0) | (row >= n_users)
    if bad.any():
        fail(bad, f"a row (user) index outside 0..{n_users - 1}", dims)
    bad = (col < 0) | (col >= n_items)
    if bad.any():
        fail(bad, f"a column (item) index outside 0..{n_items - 1}", dims)
    # values are interaction strengths (1 in the release): NaN, inf or negative is not one
    bad = ~np.isfinite(data) | (data < 0) if data.dtype.kind == "f" else data < 0
    if bad.any():
        fail(bad, "a value that is not a finite number >= 0",
             "an interaction matrix holds 1s or counts (explicit 0s are dropped)")
    return coo


def _interactions(mats, user_ids: pl.Series, item_ids: pl.Series, domain: str, n_items: int,
                  stats: dict) -> pl.DataFrame:
    """One row per distinct nonzero (user, item) per matrix, ordered by split, user, item."""
    parts, keys_per_split = [], []
    zeros = dups = 0
    for split, (coo, _) in mats.items():
        nz = coo.data != 0
        zeros += int((~nz).sum())
        key = coo.row[nz].astype(np.int64) * n_items + coo.col[nz].astype(np.int64)
        uniq = np.unique(key)  # sorted: also gives the (user, item) order
        dups += len(key) - len(uniq)
        keys_per_split.append(uniq)
        stats[f"interactions_{split}"] = len(uniq)
        parts.append(pl.DataFrame({
            "uid": uniq // n_items, "iid": uniq % n_items,
            "split": pl.Series([split] * len(uniq), dtype=pl.String),
        }))
    stats["explicit_zeros_dropped"] = zeros
    stats["duplicate_entries_collapsed"] = dups
    _, counts = np.unique(np.concatenate(keys_per_split), return_counts=True)
    stats["pairs_in_two_splits"] = int((counts > 1).sum())  # two or more splits

    df = pl.concat(parts)
    train = df.filter(pl.col("split") == "train")
    stats["users_without_train"] = len(user_ids) - train["uid"].n_unique()
    stats["items_without_train"] = len(item_ids) - train["iid"].n_unique()
    return df.select(
        user=user_ids.gather(df["uid"]),
        item=item_ids.gather(df["iid"]),
        rating=pl.lit(None, dtype=pl.Float32),
        ts=pl.lit(None, dtype=pl.Int64),
        review=pl.lit(None, dtype=pl.String),
        domain=pl.lit(domain, dtype=pl.String),
        split=pl.col("split"),
    )


# --------------------------------------------------------------------------- mappers


def _find_mapper(path: Path, domain: str, entity: str) -> Path | None:
    """First mapper file in the documented lookup order (module docstring), or None."""
    places = [(path / "mapper", True), (path.parent / "mapper", False)]
    if path.resolve().parent != path.parent:  # a symlinked dataset folder: try its real home too
        places.append((path.resolve().parent / "mapper", False))
    for folder, glob_ok in places + [(path, True)]:
        if not folder.is_dir():
            continue
        for ext in (".json", ".jsonl"):
            exact = folder / f"{domain}_{entity}{ext}"
            if exact.is_file():
                return exact
        if glob_ok:
            cands = sorted(p for ext in (".json", ".jsonl")
                           for p in folder.glob(f"*_{entity}{ext}") if p.is_file())
            if len(cands) > 1:
                raise IngestError(
                    f"several {entity} mappers in {folder}: {[p.name for p in cands]}; "
                    f"name the one for this dataset {domain}_{entity}.json"
                )
            if cands:
                return cands[0]
    return None


def _raw_ids(path: Path, domain: str, entity: str, n: int, rejects: RejectLog,
             stats: dict) -> pl.Series:
    """Raw id string for each integer id 0..n-1 (from the mapper, else str(id))."""
    name = entity  # the Series name doubles as the canonical column name
    file = _find_mapper(path, domain, entity)
    stats[f"{entity}_mapper_rows"] = 0
    if file is None:
        return pl.Series(name, [str(i) for i in range(n)], dtype=pl.String)

    int_key = INT_KEY[entity]
    ids: dict[int, str] = {}
    n_lines = 0
    with open(file, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            n_lines += 1
            try:
                rec = json.loads(line)
                idx = rec[int_key]
                raw_key = next((k for k in RAW_KEYS[entity] if k in rec), None)
                if raw_key is None:
                    others = [k for k in rec if k != int_key]
                    raw_key = others[0] if len(others) == 1 else None
                if raw_key is None:
                    raise KeyError(f"one of {RAW_KEYS[entity]}")
                if not isinstance(idx, int) or isinstance(idx, bool):
                    raise TypeError(f"{int_key} is not an integer: {idx!r}")
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                rejects.add(file, line_no, f"bad mapper line: {type(e).__name__}: {e}",
                            field=int_key, text=line)
                continue
            if not 0 <= idx < n:
                rejects.add(file, line_no, f"{int_key}={idx} outside 0..{n - 1} "
                            f"(the matrices have {n} {entity}s)", field=int_key, text=line)
                continue
            if idx in ids:
                rejects.add(file, line_no, f"{int_key}={idx} mapped twice", field=int_key,
                            text=line)
                continue
            ids[idx] = str(rec[raw_key])
    rejects.count_lines(file, n_lines)

    if len(ids) != n:
        absent = [i for i in range(n) if i not in ids][:5]
        raise IngestError(
            f"{file}: maps {len(ids)} {entity}s but the matrices have {n} (shape "
            f"(n_users, n_items)); {int_key}s without a raw id include {absent}. Is this the "
            f"mapper of another dataset?"
        )
    series = pl.Series(name, [ids[i] for i in range(n)], dtype=pl.String)
    if series.n_unique() != n:
        dup = series.filter(series.is_duplicated()).head(3).to_list()
        raise IngestError(f"{file}: raw ids repeat across {int_key}s (e.g. {dup}); two integer "
                          f"ids would merge into one {entity}")
    stats[f"{entity}_mapper_rows"] = n
    return series


# --------------------------------------------------------------------------- side files


def _entries(obj: Any) -> list[tuple[Any, Any]]:
    if isinstance(obj, dict):
        return list(obj.items())
    if isinstance(obj, (list, tuple)):
        return list(enumerate(obj))
    raise TypeError(type(obj).__name__)


def _profiles(file: Path, entity: str, ids: pl.Series, rejects: RejectLog,
              stats: dict) -> pl.DataFrame:
    """Profile pickle -> (id, orig_id, summarization, reasoning), one row per usable entry."""
    obj = _load(file)
    try:
        entries = _entries(obj)
    except TypeError:
        raise IngestError(f"{file}: expected a dict or list of profiles indexed by "
                          f"{INT_KEY[entity]}, found {type(obj).__name__}") from None
    rejects.count_lines(file, len(entries))
    n = len(ids)
    rows: dict[int, tuple[str, str | None]] = {}
    for pos, (key, val) in enumerate(entries, 1):
        try:  # int, numpy integer, or a digit string (JSON-style keys)
            idx = int(key) if isinstance(key, str) and key.isdigit() else operator.index(key)
        except TypeError:
            rejects.add(file, pos, f"profile key {key!r} is not an integer id", field="id")
            continue
        if not 0 <= idx < n:
            rejects.add(file, pos, f"profile id {idx} outside 0..{n - 1} (the matrices have "
                        f"{n} {entity}s)", field="id")
            continue
        if idx in rows:
            rejects.add(file, pos, f"profile id {idx} repeated", field="id")
            continue
        summ = val.get("profile", val.get("summarization")) if isinstance(val, dict) else None
        if not isinstance(summ, str):
            rejects.add(file, pos, f"profile {idx} has no 'profile' text", field="profile",
                        text=repr(val))
            continue
        reason = val.get("reasoning")
        rows[idx] = (summ, None if reason is None else str(reason))
    stats[f"{entity}_profiles"] = len(rows)
    stats[f"{entity}_profiles_missing"] = n - len(rows)
    order = sorted(rows)
    return pl.DataFrame({
        "id": ids.gather(order) if order else pl.Series([], dtype=pl.String),
        "orig_id": pl.Series(order, dtype=pl.Int64),
        "summarization": pl.Series([rows[i][0] for i in order], dtype=pl.String),
        "reasoning": pl.Series([rows[i][1] for i in order], dtype=pl.String),
    })


def _embeddings(file: Path, entity: str, n: int, rejects: RejectLog, stats: dict) -> np.ndarray:
    """(n, d) float32 matrix whose row i belongs to integer id i."""
    obj = _load(file)
    if isinstance(obj, (list, tuple)):
        try:
            obj = np.asarray(obj, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise IngestError(f"{file}: rows are not numbers of equal length ({e})") from e
    if not isinstance(obj, np.ndarray):
        raise IngestError(f"{file}: expected a numpy (n, d) array, found {type(obj).__name__}")
    if obj.dtype.kind not in "fiu":
        raise IngestError(f"{file}: expected a float array, found dtype {obj.dtype}")
    if obj.ndim != 2 or obj.shape[0] != n:
        raise IngestError(
            f"{file}: embedding shape {obj.shape} does not match the matrices: expected ({n}, d) "
            f"for {n} {entity}s (shape of trn_mat.pkl gives n_users, n_items)"
        )
    emb = obj.astype(np.float32)
    stats[f"{entity}_emb_dim"] = int(emb.shape[1])
    stats[f"{entity}_emb_nonfinite_rows"] = int((~np.isfinite(emb).all(axis=1)).sum())
    rejects.count_lines(file, n)
    return emb
