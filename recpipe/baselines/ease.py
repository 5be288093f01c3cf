"""EASE: Embarrassingly Shallow Autoencoder, a closed-form item-item linear model.

Paper: H. Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019.
Reference code: https://github.com/Darel13712/ease_rec (and the paper's own listing, sec. 3.3).

    G = X^T X + lambda I                         (n_items, n_items), X binary (n_users, n_items)
    P = G^-1
    B = I - P diag(1 / diag(P))   i.e. B[i, j] = -P[i, j] / P[j, j] for i != j, B[j, j] = 0
    score[u, :] = X[u, :] @ B

The inverse goes through a Cholesky factorisation in place (LAPACK potrf + potri): G is
symmetric positive definite, this costs half the flops of a general inverse and needs a
single dense n x n buffer. That buffer is the limit: EASE refuses item counts above
`max_items` (or above what free memory holds) with an error saying what it would need.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recpipe.config import choice, rng


@dataclass
class EASEParams:
    # L2 weight lambda on B (Steck: 200-1000 on ML-20M / Netflix / MSD); larger = smoother
    lambda_: float = field(default=500.0, metadata=rng(0.0, lo_open=True))
    # refuse catalogues larger than this: one dense n x n matrix must fit in memory
    max_items: int = field(default=20_000, metadata=rng(1))
    # float32 halves memory and time; float64 matches the paper's numpy listing
    dtype: str = field(default="float32", metadata=choice("float32", "float64"))


def dense_bytes(n_items: int, dtype: str) -> int:
    """Memory of the one dense (n_items, n_items) buffer EASE works in."""
    return n_items * n_items * np.dtype(dtype).itemsize


def check_size(n_items: int, p: EASEParams, available: int | None = None) -> None:
    """Raise MemoryError naming the item count, the memory needed and the limit."""
    need = dense_bytes(n_items, p.dtype)
    gib = need / 2**30
    if n_items > p.max_items:
        raise MemoryError(
            f"EASE: {n_items:,} items need a dense {n_items:,} x {n_items:,} {p.dtype} matrix "
            f"(about {gib:.1f} GiB), above the limit baselines.ease.max_items={p.max_items:,}; "
            f"raise max_items if the machine has the memory, or drop ease from baselines.models"
        )
    if available is not None and need * 1.2 > available:
        raise MemoryError(
            f"EASE: {n_items:,} items need about {gib:.1f} GiB for a dense {p.dtype} matrix but "
            f"only {available / 2**30:.1f} GiB is free (max_items={p.max_items:,}); use "
            f"ease.dtype=float32 or drop ease from baselines.models"
        )


def ease_weights(x: sp.csr_matrix, lambda_: float, dtype: str = "float32") -> np.ndarray:
    """B (n_items, n_items) with zero diagonal, from the binary training matrix x."""
    from scipy.linalg import lapack

    n = x.shape[1]
    xb = (x > 0).astype(dtype)
    g = np.asarray((xb.T @ xb).toarray())  # (n, n) C order, symmetric
    g[np.diag_indices(n)] += lambda_
    pre = "s" if g.dtype == np.float32 else "d"
    potrf, potri = getattr(lapack, pre + "potrf"), getattr(lapack, pre + "potri")
    # g is symmetric, so g.T (Fortran order, no copy) is the same matrix: LAPACK works in place
    c, info = potrf(g.T, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: X^T X + lambda I is not positive definite (potrf info={info})")
    inv, info = potri(c, lower=0, overwrite_c=1)  # upper triangle of P in Fortran order
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: inverse failed (potri info={info})")
    p = inv.T  # C order view: the valid triangle is now the lower one
    _mirror_lower(p)
    diag = p.diagonal().copy()
    p /= -diag[None, :]  # B[i, j] = -P[i, j] / P[j, j]
    p[np.diag_indices(n)] = 0.0
    return p


def _mirror_lower(a: np.ndarray, block: int = 512) -> None:
    """Copy the lower triangle of square `a` onto the upper one in place, in cache-sized blocks."""
    n = a.shape[0]
    for s in range(0, n, block):
        e = min(s + block, n)
        a[s:e, e:] = a[e:, s:e].T  # rows s:e right of the block <- columns s:e below it
        d = a[s:e, s:e]
        iu = np.triu_indices(e - s, 1)
        d[iu] = d.T[iu]


class EASE:
    Params = EASEParams

    def __init__(self, params: EASEParams | None = None, *, seed: int = 0, device: str = "cpu",
                 log_dir=None):
        self.params = params or EASEParams()
        self.b: np.ndarray | None = None  # (n_items, n_items)
        self.selected_epoch = None
        self.curve: list[dict] = []

    def fit(self, train: sp.csr_matrix, valid: sp.csr_matrix | None = None, data=None,
            cfg=None) -> EASE:
        import psutil

        check_size(train.shape[1], self.params, psutil.virtual_memory().available)
        self.x = (train > 0).astype(self.params.dtype).tocsr()  # (n_users, n_items)
        self.b = ease_weights(train, self.params.lambda_, self.params.dtype)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        """(B, n_items) scores: the users' training rows times B."""
        return np.asarray(self.x[users] @ self.b, dtype=np.float32)

    def scorer(self, part: str = "test"):
        from recpipe.eval.scorers import FunctionScorer

        if self.b is None:
            raise RuntimeError("EASE.scorer() called before fit()")
        return FunctionScorer(self.score, self.b.shape[0])
