"""Per-user interaction sequences in time order, for the sequential models (SASRec, HeLLM, HUM).

`Sequences` is a CSR-like layout: user u's interactions are rows indptr[u]:indptr[u+1] of the
flat arrays, ordered by timestamp and, on equal timestamps, by the order of the rows in the
split's Parquet file (a stable sort). A row without a timestamp (the RLMRec release has none)
stores NO_TS, the largest int64, so it sorts after every dated row of its user and rows
without time keep their file order. `DataView.sequences(parts)` builds them from the split.

    n = rows of the parts read, B = users asked for, T = max_len of a window
    indptr  (n_users + 1,) int64
    items   (n,) int32   iid
    ts      (n,) int64   unix seconds, NO_TS where the data has none
    domain  (n,) int32   the item's index into DataView.domains
    part    (n,) int8    which of the parts built from a row came from (0 = the first given)
    window(users, T) -> (B, T) padded with `pad` (= n_items, an id no item has)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

NO_TS = np.iinfo(np.int64).max  # the timestamp of a row that has none: sorts last


class Rows(NamedTuple):
    """One split part's interactions as read, in file order."""

    uid: np.ndarray  # (n,) int32
    iid: np.ndarray  # (n,) int32
    ts: np.ndarray  # (n,) int64, NO_TS where null


class Seq(NamedTuple):
    """One user's sequence, oldest first."""

    items: np.ndarray  # (L,) int32
    ts: np.ndarray  # (L,) int64
    domain: np.ndarray  # (L,) int32


@dataclass(frozen=True)
class Sequences:
    indptr: np.ndarray  # (n_users + 1,) int64
    items: np.ndarray  # (n,) int32
    ts: np.ndarray  # (n,) int64
    domain: np.ndarray  # (n,) int32
    pad: int  # the padding item id of `window` (= n_items)
    part: np.ndarray | None = None  # (n,) int8: which of the `parts` given to build a row came from

    @classmethod
    def build(cls, parts: list[Rows], item_domain: np.ndarray, n_users: int) -> Sequences:
        """Concatenate `parts` (ties between parts keep their order) and sort by (uid, ts)."""
        uid = np.concatenate([p.uid for p in parts]) if parts else np.zeros(0, np.int32)
        iid = np.concatenate([p.iid for p in parts]) if parts else np.zeros(0, np.int32)
        ts = np.concatenate([p.ts for p in parts]) if parts else np.zeros(0, np.int64)
        if len(uid) and (uid.min() < 0 or uid.max() >= n_users):
            raise ValueError(f"uid out of range [0, {n_users}): {uid.min()}..{uid.max()}")
        src = np.repeat(np.arange(len(parts), dtype=np.int8), [len(p.uid) for p in parts])
        order = np.lexsort((ts, uid))  # stable: equal (uid, ts) keep row order
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(uid, minlength=n_users), out=indptr[1:])
        items = iid[order].astype(np.int32, copy=False)
        return cls(indptr, items, ts[order].astype(np.int64, copy=False),
                   item_domain[items].astype(np.int32, copy=False), len(item_domain), src[order])

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)  # (n_users,) int64

    def __getitem__(self, u: int) -> Seq:
        s = slice(self.indptr[u], self.indptr[u + 1])
        return Seq(self.items[s], self.ts[s], self.domain[s])

    def window(self, users, max_len: int, *, left: bool = True, end=None,
               field: str = "items") -> np.ndarray:
        """The last `max_len` entries of each user's sequence before position `end`, padded.

        users: (B,) uids. end: None (the whole sequence) or an int or (B,) ints, an exclusive
        position as in Python slicing, negatives from the end: `end=-1` is `seq[:-1]`, the
        SASRec/HeLLM input whose next item is the target. left=True (SASRec, HeLLM) puts the
        padding first so the newest item is in the last column; left=False puts it last.
        field: "items" (padded with `pad`), "ts" (NO_TS) or "domain" (-1).
        Returns (B, max_len), the dtype of `field`.
        """
        users = np.asarray(users, dtype=np.int64)
        start = self.indptr[users]  # (B,)
        size = self.indptr[users + 1] - start  # (B,)
        stop = size if end is None else np.broadcast_to(np.asarray(end, np.int64), users.shape)
        stop = np.clip(np.where(stop < 0, size + stop, stop), 0, size)  # (B,)
        n = np.minimum(stop, max_len)  # (B,) entries kept
        col = np.arange(max_len)[None, :]  # (1, T)
        pos = col - (max_len - n)[:, None] if left else col  # (B, T) index into the kept run
        keep = (pos >= 0) & (pos < n[:, None])
        src = getattr(self, field)  # (n,)
        pad = {"items": self.pad, "ts": NO_TS, "domain": -1}[field]
        if not len(src):
            return np.full((len(users), max_len), pad, dtype=src.dtype)
        idx = np.clip((start + stop - n)[:, None] + pos, 0, len(src) - 1)  # (B, T)
        return np.where(keep, src[idx], np.array(pad, src.dtype))
