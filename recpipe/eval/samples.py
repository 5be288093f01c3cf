"""Evaluation samples: the units of sample-level protocols (evaluation.md sections 1, 3, 5.7).

A sample is one ranking: a user, the item(s) to find, what to exclude and where to look. One
user may have several (leave-one-out with every position, HUM's one sample per target), each
with its own history, targets and candidates. Everything is arrays, one row per sample:

    n = samples, I = n_items, D = len(data.domains)
    uid         (n,) int64   the sample's user (user-level scorers score this user)
    targets     (n, I) CSR   binary, >= 1 target per sample
    domain      (n,) int32   index into data.domains: rank only that domain's items
                             (HUM, eval.candidates=target_domain); -1 = rank over all items
    exclude     (n, I) CSR   optional: the sample's own history, masked (-inf) for that
                             sample only; leave it out when the protocol keeps history
    candidates  (n, I) CSR   optional: an explicit candidate set per sample (target + sampled
                             negatives, eval.candidates=sampled); only those items are ranked
    part        str          the split part the targets come from ("valid" masks and
                             candidates follow the protocol for that part, as in `evaluate`)
    pos         (n,) int64   optional: the target's row in data.sequences(SPLIT_NAMES), the
                             user's sequence over every part in time order; a sequence scorer
                             reads the history before it (HUM: the last 10, across domains)

`Samples.from_users(data, part)` is `evaluate`'s per-user units as samples (equal results);
`Samples.from_frame(frame, data)` builds them from rows (uid, iid, domain, history, ...);
`Samples.per_interaction(data, part)` is HUM's units: one per interaction of the part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from recpipe.data.schema import SPLIT_NAMES
from recpipe.eval.data import SplitData, csr
from recpipe.eval.evaluator import user_units


@dataclass
class Samples:
    uid: np.ndarray  # (n,) int64
    targets: sp.csr_matrix  # (n, n_items) binary
    domain: np.ndarray | None = None  # (n,) int32, -1 = all items; None -> all -1
    exclude: sp.csr_matrix | None = None  # (n, n_items) history to mask, per sample
    candidates: sp.csr_matrix | None = None  # (n, n_items) explicit candidate sets
    part: str = "test"  # "train" | "valid" | "test"
    pos: np.ndarray | None = None  # (n,) int64 rows of data.sequences(SPLIT_NAMES)

    def __post_init__(self):
        self.uid = np.asarray(self.uid, dtype=np.int64).ravel()
        n = len(self.uid)
        self.targets = _matrix(self.targets, "targets", n)
        n_items = self.targets.shape[1]
        self.domain = (np.full(n, -1, np.int32) if self.domain is None
                       else np.asarray(self.domain).astype(np.int32).ravel())
        if len(self.domain) != n:
            raise ValueError(f"Samples.domain has {len(self.domain)} entries for {n} samples")
        self.exclude = _matrix(self.exclude, "exclude", n, n_items)
        self.candidates = _matrix(self.candidates, "candidates", n, n_items)
        if self.part not in ("train", "valid", "test"):
            raise ValueError(f"Samples.part must be train, valid or test, not {self.part!r}")
        if n and (empty := np.flatnonzero(np.diff(self.targets.indptr) == 0)).size:
            raise ValueError(f"{empty.size} samples have no target (first: sample {empty[0]})")
        if self.candidates is not None:
            outside = self.targets - self.targets.multiply(self.candidates > 0)
            if outside.nnz:
                row = outside.tocoo().row[0]
                raise ValueError(f"{len(np.unique(outside.tocoo().row))} samples have a target "
                                 f"outside their candidates (first: sample {row})")

    @property
    def n(self) -> int:
        return len(self.uid)

    def check(self, data: SplitData) -> None:
        """Raise a clear error when the samples do not fit `data` (users, items, domains)."""
        if self.targets.shape[1] != data.n_items:
            raise ValueError(f"Samples are over {self.targets.shape[1]} items, the data has {data.n_items}")
        if self.n and (self.uid.min() < 0 or self.uid.max() >= data.n_users):
            raise ValueError(f"Samples.uid must lie in [0, {data.n_users}), has "
                             f"{self.uid.min()}..{self.uid.max()}")
        if self.n and (self.domain.min() < -1 or self.domain.max() >= len(data.domains)):
            raise ValueError(f"Samples.domain must be -1 or an index into {data.domains}")
        t = self.targets.tocoo()
        d = self.domain[t.row]
        off = (d >= 0) & (data.item_domain[t.col] != d)
        if off.any():
            k = np.flatnonzero(off)[0]
            raise ValueError(
                f"sample {t.row[k]} ranks within {data.domains[d[k]]} but its target {t.col[k]} "
                f"is in {data.domains[data.item_domain[t.col[k]]]}: it could never be ranked")

    @classmethod
    def from_users(cls, data: SplitData, part: str = "test", by_domain: bool = False) -> Samples:
        """`evaluate`'s units: one sample per user with a target in `part` (its targets), or
        with `by_domain` one per (user, domain) ranked in that domain (target_domain)."""
        users, doms, t = user_units(data, data.part(part), by_domain)
        return cls(users, t, domain=doms, part=part)

    @classmethod
    def per_interaction(cls, data, part: str = "test", users: np.ndarray | None = None,
                        by_domain: bool = False) -> Samples:
        """HUM's units (hum.md 6.3): one sample per interaction of `part` (of `users` only, when
        given), its item the target, ranked within the target's domain when `by_domain`. The
        history is everything the user did before it, over every part (a test history may
        hold earlier test items, as in the reference), never the target itself; a user's first
        interaction has none and is no sample. `pos` locates each target in the sequences."""
        seqs = data.sequences(SPLIT_NAMES)
        k = SPLIT_NAMES.index(part)
        first = np.zeros(len(seqs.items), dtype=bool)
        first[seqs.indptr[:-1][np.diff(seqs.indptr) > 0]] = True
        uid_of = np.repeat(np.arange(seqs.n_users), np.diff(seqs.indptr))  # (n,) row -> user
        keep = (seqs.part == k) & ~first
        if users is not None:
            chosen = np.zeros(seqs.n_users, dtype=bool)
            chosen[np.asarray(users, np.int64)] = True
            keep &= chosen[uid_of]
        pos = np.flatnonzero(keep).astype(np.int64)
        items = seqs.items[pos]
        targets = csr(np.arange(len(pos)), items, (len(pos), data.n_items))
        dom = seqs.domain[pos] if by_domain else None
        return cls(uid_of[pos], targets, domain=dom, part=part, pos=pos)

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, data: SplitData, part: str = "test") -> Samples:
        """One sample per row, in row order. Columns: `uid` (int), `iid` (the target: int, or
        a list of ints), optional `domain` (a name of data.domains or an index; null or -1 =
        all items; HUM sets the target's domain), optional `history` (list of iids, excluded
        from the sample's ranking) and `candidates` (list of iids: an explicit candidate set)."""
        if missing := {"uid", "iid"} - set(frame.columns):
            raise ValueError(f"the sample frame lacks column(s) {sorted(missing)}")
        shape = (frame.height, data.n_items)
        lists = {c: _rows_of(frame, c, shape) for c in ("iid", "history", "candidates")
                 if c in frame.columns}
        domain = None
        if "domain" in frame.columns:
            col = frame["domain"]
            if col.dtype == pl.Utf8:
                if unknown := set(col.drop_nulls().unique()) - set(data.domains):
                    raise ValueError(f"unknown domain(s) {sorted(unknown)}; data has {data.domains}")
                col = col.replace_strict({d: k for k, d in enumerate(data.domains)},
                                         default=None, return_dtype=pl.Int32)
            domain = col.fill_null(-1).to_numpy()
        out = cls(frame["uid"].to_numpy(), lists["iid"], domain=domain,
                  exclude=lists.get("history"), candidates=lists.get("candidates"), part=part)
        out.check(data)
        return out


def _rows_of(frame: pl.DataFrame, col: str, shape: tuple[int, int]) -> sp.csr_matrix:
    """(rows, n_items) binary CSR: row r holds frame[col][r] (an int or a list of ints)."""
    f = frame.select(pl.col(col)).with_row_index("__r")
    if isinstance(f.schema[col], (pl.List, pl.Array)):
        f = f.explode(col)
    f = f.drop_nulls(col)
    iid = f[col].to_numpy()
    if len(iid) and (iid.min() < 0 or iid.max() >= shape[1]):
        raise ValueError(f"sample column {col!r} holds item ids outside [0, {shape[1]})")
    return csr(f["__r"].to_numpy(), iid, shape)


def _matrix(m, name: str, n: int, n_items: int | None = None) -> sp.csr_matrix | None:
    if m is None:
        return None
    m = sp.csr_matrix(m)
    if m.shape[0] != n or (n_items is not None and m.shape[1] != n_items):
        want = f"({n}, {'n_items' if n_items is None else n_items})"
        raise ValueError(f"Samples.{name} has shape {m.shape}, expected {want} (one row per sample)")
    if (m.data == 0).any():  # a stored zero is no item
        m = m.copy()
        m.eliminate_zeros()
    return m
