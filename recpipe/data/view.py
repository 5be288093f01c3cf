"""The in-memory view every model reads: one split of `data/processed`, loaded once.

Models never touch Parquet: a stage calls `load_view(processed)` and hands the view down.
- the evaluator, graph backbones and baselines read the CSR matrices and item domains (this is
  the former `recpipe.eval.data.SplitData`, kept there as an alias);
- SASRec and HeLLM read time-ordered sequences and last-N windows (`sequences`, `window`);
- HUM reads multi-domain sequences, `domain_items(d)` and `item_titles`;
- CLLM4Rec reads training items and texts; profiles and exports read the raw id maps.
Leakage: sequences default to the train part; test-time histories ask for ("train", "valid").
What a model never uses costs nothing: sequences, id maps and texts are built on first use.

    U = n_users, I = n_items, D = len(domains), n = interactions of a part
    train, valid, test  (U, I) float32 CSR, binary (a repeated pair counts once)
    item_domain         (I,) int32 index into `domains`
    domains             D names, sorted, then UNKNOWN when some item has no domain
    rows[part]          Rows(uid, iid, ts), (n,) each, the part's Parquet rows in file order
    user_ids, item_ids  (U,), (I,) str: raw ids by uid / iid (user_map / item_map.parquet)
    item_titles         I str by iid, "" where missing (items.parquet); item_descriptions too
    sequences(parts)    Sequences (recpipe/data/sequences.py): CSR of items, ts, domain
    window(users, T)    (B, T) int32 last-T items per user, padded with pad_id = I
    domain_items(d)     (I_d,) int32 iids of domain d, ascending
    domain_view(d)      domain d's items only, re-numbered: a single-domain dataset

The split stage writes items.parquet (iid, item, title, description, ...) for every protocol;
a release without texts (RLMRec) has null titles, read here as "".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from recpipe.data.schema import SPLIT_NAMES
from recpipe.data.sequences import NO_TS, Rows, Seq, Sequences

UNKNOWN = "unknown"  # the domain of items whose data names none


@dataclass
class DataView:
    n_users: int
    n_items: int
    train: sp.csr_matrix  # (n_users, n_items) binary
    valid: sp.csr_matrix
    test: sp.csr_matrix
    item_domain: np.ndarray  # (n_items,) int32 index into `domains`
    domains: list[str]  # sorted names, then UNKNOWN when some item has no domain
    # the interactions behind the matrices; a view built from matrices alone has none
    rows: dict[str, Rows] = field(default_factory=dict, repr=False)
    source: Path | None = None  # the processed folder the id maps and texts are read from
    _seqs: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def part(self, name: str) -> sp.csr_matrix:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]

    @property
    def pad_id(self) -> int:
        return self.n_items  # no item has it: the padding of `window`

    # ---- sequences -------------------------------------------------------------------

    def sequences(self, parts: tuple[str, ...] = ("train",)) -> Sequences:
        """Per-user sequences of `parts` merged in time order (built once per set of parts)."""
        if bad := [p for p in parts if p not in SPLIT_NAMES]:
            raise ValueError(f"unknown split part(s) {bad}; parts are {list(SPLIT_NAMES)}")
        key = tuple(p for p in SPLIT_NAMES if p in parts)  # ties: train rows before valid
        if key not in self._seqs:
            if missing := [p for p in key if p not in self.rows]:
                raise ValueError(f"this view has no interaction rows for {missing}: it was built "
                                 "from matrices; sequences need load_view() or from_frames()")
            rows = [self.rows[p] for p in key]
            self._seqs[key] = Sequences.build(rows, self.item_domain, self.n_users)
        return self._seqs[key]

    def sequence(self, u: int, parts: tuple[str, ...] = ("train",)) -> Seq:
        """User u's (items, ts, domain) in `parts`, oldest first."""
        return self.sequences(parts)[u]

    def window(self, users, max_len: int, parts: tuple[str, ...] = ("train",), **kw) -> np.ndarray:
        """(B, max_len) last items per user, left-padded with pad_id; see Sequences.window."""
        return self.sequences(parts).window(users, max_len, **kw)

    # ---- domains -----------------------------------------------------------------------

    def domain_items(self, d: int | str, seen_in: tuple[str, ...] = ()) -> np.ndarray:
        """(I_d,) int32 iids of domain `d` (index or name), ascending; with `seen_in` only
        those interacted with in those parts (HUM validation: ("train", "valid"))."""
        k = self.domains.index(d) if d in self.domains else d
        if not isinstance(k, (int, np.integer)) or not 0 <= k < len(self.domains):
            raise ValueError(f"no domain {d!r}; domains are {self.domains}")
        items = np.flatnonzero(self.item_domain == k).astype(np.int32)
        if seen_in:
            seen = np.zeros(self.n_items, dtype=bool)
            for p in seen_in:
                seen[self.part(p).indices] = True
            items = items[seen[items]]
        return items

    def domain_view(self, d: int | str) -> DataView:
        """Domain `d` as a dataset of its own (a single-domain model's data; see
        recpipe/baselines/single_domain.py): the same users, only d's items, re-numbered
        0..I_d-1 in the order of `domain_items(d)` (item k of the view is iid items[k]), and
        every part's matrix and rows cut to them. No id maps or texts (source=None)."""
        items = self.domain_items(d)
        new_id = np.full(self.n_items, -1, dtype=np.int32)
        new_id[items] = np.arange(len(items), dtype=np.int32)
        rows = {}
        for p, r in self.rows.items():
            k = new_id[r.iid] >= 0
            rows[p] = Rows(r.uid[k], new_id[r.iid[k]], r.ts[k])
        mats = [self.part(p)[:, items].tocsr().sorted_indices() for p in SPLIT_NAMES]
        k = self.domains.index(d) if d in self.domains else int(d)
        return DataView(self.n_users, len(items), *mats,
                        item_domain=np.zeros(len(items), dtype=np.int32),
                        domains=[self.domains[k]], rows=rows)

    # ---- id maps and texts (read from `source` on first use) ----------------------------

    @cached_property
    def user_ids(self) -> np.ndarray:
        return self._by_id("user_map", "uid", "user", self.n_users, complete=True).astype(str)

    @cached_property
    def item_ids(self) -> np.ndarray:
        return self._by_id("item_map", "iid", "item", self.n_items, complete=True).astype(str)

    @cached_property
    def item_titles(self) -> list[str]:
        return self._by_id("items", "iid", "title", self.n_items).tolist()

    @cached_property
    def item_descriptions(self) -> list[str]:
        return self._by_id("items", "iid", "description", self.n_items).tolist()

    def _by_id(self, table: str, id_col: str, col: str, n: int, complete=False) -> np.ndarray:
        """(n,) object array of `col` by id; "" where the row, the value or the column is
        missing. complete: every id 0..n-1 must have a row (the id maps)."""
        if self.source is None:
            raise ValueError(f"{col}: this view was not loaded from a processed folder; "
                             "id maps and texts need load_view(processed)")
        path = self.source / f"{table}.parquet"
        has = col in pl.read_parquet_schema(path)
        f = pl.read_parquet(path, columns=[id_col, col] if has else [id_col])
        f = f.unique(id_col, keep="first", maintain_order=True)
        ids = f[id_col].to_numpy()
        if (len(ids) and (ids.min() < 0 or ids.max() >= n)) or (complete and len(ids) != n):
            raise ValueError(f"{path}: {id_col} must cover 0..{n - 1} once each, has {len(ids)} "
                             f"ids in [{ids.min() if len(ids) else '-'}, {ids.max() if len(ids) else '-'}]")
        out = np.full(n, "", dtype=object)
        if has:
            out[ids] = f[col].fill_null("").to_numpy()
        return out


def csr(uid: np.ndarray, iid: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(uid), dtype=np.float32), (uid, iid)), shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0  # binary: a repeated pair still counts once
    return m


def _rows(f: pl.DataFrame) -> Rows:
    ts = (f["ts"].cast(pl.Int64).fill_null(NO_TS).to_numpy() if "ts" in f.columns
          else np.full(f.height, NO_TS, dtype=np.int64))  # no time column: file order
    return Rows(f["uid"].to_numpy().astype(np.int32, copy=False),
                f["iid"].to_numpy().astype(np.int32, copy=False), ts)


def _item_domains(item_domain: pl.DataFrame | None, n_items: int) -> tuple[np.ndarray, list[str]]:
    dom = np.zeros(n_items, dtype=np.int32)
    names = ["all"]
    if item_domain is not None and item_domain.height:
        known = item_domain.filter(pl.col("domain").is_not_null() & (pl.col("domain") != ""))
        names = sorted(known["domain"].unique().to_list())
        # an item without a domain (null, "", or absent from the table) must not count as the
        # first domain: it gets its own explicit UNKNOWN domain, listed last
        dom[:] = len(names)
        lookup = {d: k for k, d in enumerate(names)}
        dom[known["iid"].to_numpy()] = [lookup[d] for d in known["domain"].to_list()]
        if (dom == len(names)).any():
            names.append(UNKNOWN)
    return dom, names


def from_frames(train: pl.DataFrame, valid: pl.DataFrame, test: pl.DataFrame,
                n_users: int, n_items: int, item_domain: pl.DataFrame | None = None,
                source: str | Path | None = None) -> DataView:
    """A view from split frames (uid, iid, optional ts) and an optional (iid, domain) table."""
    rows = {name: _rows(f) for name, f in zip(SPLIT_NAMES, (train, valid, test))}
    mats = [csr(r.uid, r.iid, (n_users, n_items)) for r in rows.values()]
    dom, names = _item_domains(item_domain, n_items)
    return DataView(n_users, n_items, *mats, item_domain=dom, domains=names, rows=rows,
                    source=None if source is None else Path(source))


def _height(path: Path) -> int:
    return pl.scan_parquet(path).select(pl.len()).collect().item()  # metadata only


def load_view(processed: str | Path) -> DataView:
    """Read `data/processed` (the split stage's output); the only Parquet reader models use."""
    p = Path(processed)
    parts = [pl.read_parquet(p / f"{s}.parquet", columns=["uid", "iid", "ts", "domain"])
             for s in SPLIT_NAMES]
    # an item's domain is where it was interacted with (one domain per item in all our data)
    dom = pl.concat([f.select("iid", "domain") for f in parts]).unique("iid", keep="first")
    return from_frames(*parts, _height(p / "user_map.parquet"), _height(p / "item_map.parquet"),
                       dom, source=p)
