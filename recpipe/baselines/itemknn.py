"""ItemKNN: item-based top-N recommendation with shrunk cosine similarity.

Paper: M. Deshpande, G. Karypis, "Item-based top-N recommendation algorithms", ACM TOIS 22(1),
2004 (cosine item-item model, k most similar items kept per item); shrinkage as in
Koren/Bell and the "Are we really making much progress?" baselines (Dacrema et al., RecSys
2019). Reference code: https://github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation
(`KNN/ItemKNNCFRecommender.py`, `Base/Similarity/Compute_Similarity_Python.py`).

    sim[i, j] = (X^T X)[i, j] / (|i| |j| + shrink),   |i| = sqrt(#training users of i)
    row i keeps its k largest positive sim[i, j], j != i           -> S (n_items, n_items) sparse
    score[u, :] = X[u, :] @ S                                       (sum over the user's items)

X is the binary (n_users, n_items) training matrix. The similarity is built in blocks of
rows, each a dense (block, n_items) slab, so memory stays bounded on large catalogues.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recpipe.config import rng


@dataclass
class ItemKNNParams:
    # neighbours kept per item (Deshpande & Karypis: 10-50; Dacrema et al. tune 5..1000)
    k: int = field(default=100, metadata=rng(1))
    # shrinkage added to the cosine denominator; damps similarities backed by few users
    shrink: float = field(default=10.0, metadata=rng(0.0))
    # MiB for one dense block of similarity rows while building S
    block_mb: int = field(default=256, metadata=rng(1))


def cosine_topk(x: sp.csr_matrix, k: int, shrink: float, block_mb: int = 256,
                block: int | None = None) -> sp.csr_matrix:
    """Sparse (n_items, n_items) matrix of each item's k nearest items by shrunk cosine.

    block: similarity rows per dense slab; None sizes it from `block_mb`.
    """
    x = (x > 0).astype(np.float32).tocsc()  # binary; column slices are cheap in CSC
    n = x.shape[1]
    norm = np.sqrt(np.asarray(x.sum(axis=0), dtype=np.float32).ravel())  # (n_items,) |i|
    xt = x.T.tocsr()  # (n_items, n_users)
    # float32 slabs: counts, denominators, similarities, negated copy; int64 argpartition output
    block = block or max(1, (block_mb << 20) // (n * 4 * 6))
    k = min(k, n - 1) if n > 1 else 0
    rows, cols, vals = [], [], []
    for start in range(0, n, block):
        stop = min(start + block, n)
        dot = (xt[start:stop] @ x).toarray()  # (b, n) co-occurrence counts
        den = norm[start:stop, None] * norm[None, :]
        den += np.float32(shrink + 1e-12)  # never 0: an item without users has dot = 0 anyway
        sim = dot / den
        sim[np.arange(stop - start), np.arange(start, stop)] = 0.0  # an item is not its own neighbour
        if k == 0:
            continue
        # k largest per row, O(n) each; among values tied at the k-th, argpartition's pick is
        # arbitrary but the same for the same input, so a fit is reproducible
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]  # (b, k)
        top_val = np.take_along_axis(sim, top, axis=1)
        keep = top_val > 0
        r = np.repeat(np.arange(start, stop), k).reshape(-1, k)
        rows.append(r[keep])
        cols.append(top[keep])
        vals.append(top_val[keep].astype(np.float32))
    if not rows:
        return sp.csr_matrix((n, n), dtype=np.float32)
    s = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(n, n), dtype=np.float32)
    s.sort_indices()
    return s


class ItemKNN:
    Params = ItemKNNParams

    def __init__(self, params: ItemKNNParams | None = None, *, seed: int = 0, device: str = "cpu",
                 log_dir=None):
        self.params = params or ItemKNNParams()
        self.sim: sp.csr_matrix | None = None  # (n_items, n_items), k entries per row at most
        self.selected_epoch = None
        self.curve: list[dict] = []

    def fit(self, train: sp.csr_matrix, valid: sp.csr_matrix | None = None, data=None,
            cfg=None) -> ItemKNN:
        p = self.params
        self.x = (train > 0).astype(np.float32).tocsr()  # (n_users, n_items)
        self.sim = cosine_topk(self.x, p.k, p.shrink, p.block_mb)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        """(B, n_items) float32 scores for a batch of user ids."""
        return (self.x[users] @ self.sim).toarray().astype(np.float32, copy=False)

    def scorer(self, part: str = "test"):
        from recpipe.eval.scorers import FunctionScorer

        if self.sim is None:
            raise RuntimeError("ItemKNN.scorer() called before fit()")
        return FunctionScorer(self.score, self.sim.shape[0])
