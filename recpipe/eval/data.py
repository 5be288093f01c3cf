"""The split as the evaluator sees it: sparse user x item matrices plus item domains."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp


UNKNOWN = "unknown"  # the domain of items whose data names none


@dataclass
class SplitData:
    n_users: int
    n_items: int
    train: sp.csr_matrix  # (n_users, n_items) binary
    valid: sp.csr_matrix
    test: sp.csr_matrix
    item_domain: np.ndarray  # (n_items,) int32 index into `domains`
    domains: list[str]  # sorted names, then UNKNOWN when some item has no domain

    def part(self, name: str) -> sp.csr_matrix:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]


def csr(uid: np.ndarray, iid: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(uid), dtype=np.float32), (uid, iid)), shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0  # binary: a repeated pair still counts once
    return m


def from_frames(train: pl.DataFrame, valid: pl.DataFrame, test: pl.DataFrame,
                n_users: int, n_items: int, item_domain: pl.DataFrame | None = None) -> SplitData:
    shape = (n_users, n_items)
    mats = [csr(f["uid"].to_numpy(), f["iid"].to_numpy(), shape) for f in (train, valid, test)]
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
    return SplitData(n_users, n_items, *mats, item_domain=dom, domains=names)


def load_split(processed: str | Path) -> SplitData:
    """Read `data/processed` (the split stage's output) into sparse matrices."""
    p = Path(processed)
    parts = {s: pl.read_parquet(p / f"{s}.parquet") for s in ("train", "valid", "test")}
    n_users = pl.read_parquet(p / "user_map.parquet").height
    n_items = pl.read_parquet(p / "item_map.parquet").height
    # an item's domain is where it was interacted with (one domain per item in all our data)
    dom = pl.concat([f.select("iid", "domain") for f in parts.values()]).unique("iid", keep="first")
    return from_frames(parts["train"], parts["valid"], parts["test"], n_users, n_items, dom)
