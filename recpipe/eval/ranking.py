"""Batched top-K over all items with masks, in torch (default) or faiss.

Ranking rules (evaluation.md section 1): masked items score -inf and never enter the list;
ties go to the smaller item index, so results are deterministic and identical across batch
sizes and backends; a row with fewer than K finite candidates has invalid trailing slots.

`torch.topk` does not order ties, so `topk_exact` takes the top K+1 first and only for rows
where the K-th and (K+1)-th scores tie falls back to a stable full sort of that row.
"""

from __future__ import annotations

import numpy as np


def topk_exact(scores, k: int):
    """(idx, valid) of the K best columns per row of `scores` (B, n), ties -> smaller index.

    idx: (B, K) int64; valid: (B, K) bool, False where the slot holds a -inf (masked) item.
    """
    import torch

    if torch.isnan(scores).any():
        raise ValueError("the scorer returned NaN scores; check the model for divergence")
    n = scores.shape[1]
    k = min(k, n)
    k1 = min(k + 1, n)
    vals, idx = torch.topk(scores, k1, dim=1, sorted=True)
    if k1 > k:
        tie = (vals[:, k - 1] == vals[:, k]) & torch.isfinite(vals[:, k - 1])
    else:
        tie = torch.zeros(len(scores), dtype=torch.bool)
    vals, idx = vals[:, :k], idx[:, :k]
    # inside the top K: order equal scores by index (sort by index, then stable by score)
    by_idx = torch.argsort(idx, dim=1)
    idx, vals = idx.gather(1, by_idx), vals.gather(1, by_idx)
    by_val = torch.sort(vals, dim=1, descending=True, stable=True).indices
    idx, vals = idx.gather(1, by_val), vals.gather(1, by_val)
    if tie.any():
        rows = tie.nonzero().squeeze(1)
        s = torch.sort(scores[rows], dim=1, descending=True, stable=True)
        idx[rows], vals[rows] = s.indices[:, :k], s.values[:, :k]
    return idx, torch.isfinite(vals)


def mask_(scores, rows: np.ndarray, matrix) -> None:
    """Set scores[b, j] = -inf for every nonzero (rows[b], j) of the sparse `matrix`."""
    import torch

    sub = matrix[rows].tocoo()
    if sub.nnz:
        r = torch.from_numpy(sub.row.astype(np.int64))
        c = torch.from_numpy(sub.col.astype(np.int64))
        scores[r, c] = float("-inf")


def faiss_topk(user_vecs: np.ndarray, item_vecs: np.ndarray, k: int, masks: list,
               rows: np.ndarray, index=None):
    """Exact inner-product top-K with faiss (`IndexFlatIP`), honouring the sparse masks.

    faiss cannot mask per query, so each query asks for K + (its most masked items) results;
    masked hits are dropped and ties re-ordered by index, as in `topk_exact`.
    """
    import torch

    if index is None:
        index = build_index(item_vecs)
    extra = 0
    masked = [m[rows] for m in masks]
    if masked:
        extra = int(sum(np.diff(m.indptr) for m in masked).max(initial=0))
    depth = min(k + extra + 1, item_vecs.shape[0])
    vals, idx = index.search(np.ascontiguousarray(user_vecs, dtype=np.float32), depth)
    scores = torch.full((len(rows), item_vecs.shape[0]), float("-inf"))
    found = torch.from_numpy(idx.astype(np.int64))
    ok = found >= 0
    scores[torch.nonzero(ok)[:, 0], found[ok]] = torch.from_numpy(vals)[ok]
    for m in masked:
        coo = m.tocoo()
        scores[torch.from_numpy(coo.row.astype(np.int64)), torch.from_numpy(coo.col.astype(np.int64))] = float("-inf")
    return topk_exact(scores, k)


def build_index(item_vecs: np.ndarray, spec: str = "Flat"):
    """A faiss inner-product index over the items: "Flat" is exact; "HNSW32" or
    "IVF1024,Flat" (faiss index_factory strings) trade exactness for speed on huge catalogues.
    """
    import faiss

    x = np.ascontiguousarray(item_vecs, dtype=np.float32)
    index = faiss.index_factory(x.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(x)
    if faiss.get_num_gpus() > 0:  # pragma: no cover - no GPU in CI
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(x)
    return index
