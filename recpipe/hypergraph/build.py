"""MMHCL's two hypergraphs (hellm.md 3.1), built sparse: never a dense n x n matrix.

- U2U: every item is a hyperedge over its users, A_u = R Rᵀ (co-interaction counts) with a zero
  diagonal, row-normalised D⁻¹ A_u. The reference (`load_data.get_U2U_mat`) builds R Rᵀ dense,
  35,598² floats (≈ 5 GB) on Sports; here it is a sparse product, in row chunks.
- I2I: per modality m, K_m keeps the top-k cosine neighbours of every item (self included);
  H = [K_1 | K_2 | ...] (n x m·n) is the incidence matrix (column j of K_m = "the items that have
  j among their k nearest neighbours in modality m"), A_i = H Hᵀ counts shared hyperedges, and
  is normalised D^-1/2 A_i D^-1/2 (`get_I2I_Hypergraph_mul_mat`).

How the reference binarises K_m (`load_data.build_knn_normalized_graph`): it scatters the top-k
similarities into a zero matrix and sets the entries `> 0` to 1. So a kept neighbour with a
negative cosine keeps its negative value and one with cosine exactly 0 vanishes. `binarize=
"reference"` reproduces that; "clean" (the project default) sets every kept entry to 1.
A consequence of "reference": a row of A_i may get a degree <= 0, where the reference's
D^-1/2 is NaN; here such a row stays zero (it needs many negative neighbours, not seen on
real features).

Zero feature rows (the reference divides by the norm, giving NaN) normalise to zero here: all
their cosines are 0 and their neighbours are an arbitrary tie-break.

Features may be scipy sparse (a wide multi-hot attribute matrix, recpipe.hypergraph.features):
the kNN search then multiplies sparse rows a block at a time, never densifying the whole.

torch and faiss are imported inside the functions: building graphs needs neither at import.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recpipe.config import ParamError

BINARIZE = ("clean", "reference")


def binary(train: sp.spmatrix) -> sp.csr_matrix:
    """The float32 0/1 CSR of the nonzero entries of `train` (explicit zeros dropped)."""
    r = sp.csr_matrix(train, dtype=np.float32, copy=True)
    r.sum_duplicates()
    r.eliminate_zeros()
    r.data[:] = 1.0
    return r


def _scale_rows(m: sp.csr_matrix, s: np.ndarray) -> sp.csr_matrix:
    """diag(s) @ m for a CSR m, without a diagonal-matrix product."""
    m.data *= np.repeat(s, np.diff(m.indptr)).astype(m.data.dtype)
    return m


def _inv_pow(deg: np.ndarray, p: float) -> np.ndarray:
    """deg ** p where deg > 0, else 0 (isolated or degenerate rows stay zero rows)."""
    out = np.zeros_like(deg, dtype=np.float64)
    ok = deg > 0
    out[ok] = deg[ok].astype(np.float64) ** p
    return out


def u2u(train: sp.spmatrix, chunk_rows: int = 4096) -> sp.csr_matrix:
    """Row-normalised user co-interaction hypergraph D⁻¹(R Rᵀ - diag), (U, U) float32 CSR.

    Computed `chunk_rows` users at a time: each chunk is R[s:e] Rᵀ (a (c, U) sparse block),
    its diagonal (entries (r, s + r)) dropped and its rows normalised, so the peak memory is
    the result plus one block. Users without training items keep an empty row.
    """
    r = binary(train)  # (U, I)
    rt = r.T.tocsr()  # (I, U)
    n = r.shape[0]
    blocks = []
    for s in range(0, n, chunk_rows):
        blk = (r[s:s + chunk_rows] @ rt).tocoo()  # (c, U) co-interaction counts
        keep = blk.row + s != blk.col  # no self-loops
        blk = sp.csr_matrix((blk.data[keep], (blk.row[keep], blk.col[keep])), shape=blk.shape,
                            dtype=np.float32)
        deg = np.asarray(blk.sum(axis=1)).ravel()  # (c,) hyperedge-weighted user degree
        blocks.append(_scale_rows(blk, _inv_pow(deg, -1.0)))
    out = sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((n, n), dtype=np.float32)
    out.sort_indices()
    return out.astype(np.float32)


def _l2_rows(x):
    """Rows scaled to unit L2 norm, float32 (C-contiguous dense, or CSR for sparse input: a
    wide multi-hot attribute matrix stays sparse); zero rows stay zero."""
    if sp.issparse(x):
        x = sp.csr_matrix(x, dtype=np.float32, copy=True)
        norm = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())  # (n,)
        return _scale_rows(x, _inv_pow(norm, -1.0))
    x = np.ascontiguousarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norm > 0, norm, 1.0), dtype=np.float32)


def _topk_faiss(x: np.ndarray, k: int):
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])  # exact inner product = cosine on unit rows
    index.add(x)
    sim, idx = index.search(x, k)  # (n, k), (n, k)
    return sim, idx.astype(np.int64)


def _topk_torch(x: np.ndarray, k: int, chunk: int = 2048):
    """Exact top-k by inner product in row chunks: a (chunk, n) block at a time."""
    import torch

    t = torch.from_numpy(x)
    sims, idxs = [], []
    for s in range(0, len(t), chunk):
        val, ind = torch.topk(t[s:s + chunk] @ t.T, k, dim=1)  # (c, k)
        sims.append(val.numpy())
        idxs.append(ind.numpy())
    return np.concatenate(sims), np.concatenate(idxs).astype(np.int64)


def _topk_sparse(x: sp.csr_matrix, k: int, chunk: int = 2048):
    """Exact top-k by inner product for CSR rows: a sparse (chunk, f) x (f, n) product made
    dense a (chunk, n) block at a time, then torch.topk (the torch backend's tie-break)."""
    import torch

    xt = x.T.tocsr()  # (f, n)
    sims, idxs = [], []
    for s in range(0, x.shape[0], chunk):
        blk = torch.from_numpy((x[s:s + chunk] @ xt).toarray())  # (c, n) float32
        val, ind = torch.topk(blk, k, dim=1)  # (c, k)
        sims.append(val.numpy())
        idxs.append(ind.numpy())
    return np.concatenate(sims), np.concatenate(idxs).astype(np.int64)


def knn(features, k: int, binarize: str = "clean", backend: str = "auto") -> sp.csr_matrix:
    """K_m: the top-k cosine neighbours of every row (self included), (n, n) float32 CSR.

    features: (n, f) dense array, or scipy sparse (searched sparse, whatever `backend` says).
    backend: "faiss" (IndexFlatIP), "torch" (chunked exact top-k) or "auto" (faiss when it is
    installed). Both are exact, so they agree up to ties. binarize: "clean" (every kept entry
    1) or "reference" (kept positive cosines 1, other kept values as they are, zeros dropped).
    """
    if binarize not in BINARIZE:
        raise ParamError(f"mmhcl.model.binarize: {binarize!r} is not allowed; choose one of "
                         f"{BINARIZE}")
    x = _l2_rows(features)  # (n, f)
    n = x.shape[0]
    if sp.issparse(x):
        backend = "sparse"
    elif backend == "auto":
        try:
            import faiss  # noqa: F401
            backend = "faiss"
        except ImportError:
            backend = "torch"
    search = {"faiss": _topk_faiss, "torch": _topk_torch, "sparse": _topk_sparse}[backend]
    sim, idx = search(x, k)
    if binarize == "clean":
        val = np.ones_like(sim)
    else:
        val = np.where(sim > 0, np.float32(1.0), sim)
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    out = sp.csr_matrix((val.ravel(), (rows, idx.ravel())), shape=(n, n), dtype=np.float32)
    out.eliminate_zeros()  # "reference": a kept cosine of exactly 0 is no entry
    out.sort_indices()
    return out


def check_modalities(modalities: list, k: int, n_items: int,
                     names: list[str] | None = None) -> None:
    """ParamError, naming the param, for an unusable modality list or top-k."""
    if not modalities:
        raise ParamError("mmhcl.modalities: no item feature modality given; the item "
                         "hypergraph needs at least one (e.g. [image, text] or [attributes])")
    for m, f in enumerate(modalities):
        name = f"mmhcl.modalities[{m}]" + (f" ({names[m]})" if names else "")
        shape = getattr(f, "shape", ())
        if len(shape) != 2:
            raise ParamError(f"{name}: features must be 2-D (n_items, dim), got shape {shape}")
        if shape[0] != n_items:
            raise ParamError(f"{name}: {shape[0]} feature rows but n_items = {n_items}; "
                             f"one row per item id is needed")
    if not isinstance(k, (int, np.integer)) or k < 1 or k > n_items:
        raise ParamError(f"mmhcl.model.topk: {k!r} must be an integer in [1, n_items = {n_items}] "
                         f"(the kNN keeps k neighbours per item, itself included)")


def i2i(modalities: list, k: int, n_items: int, binarize: str = "clean",
        names: list[str] | None = None, backend: str = "auto") -> sp.csr_matrix:
    """Item hypergraph D^-1/2 H Hᵀ D^-1/2 with H = [K_1 | K_2 | ...], (I, I) float32 CSR.

    H Hᵀ = Σ_m K_m K_mᵀ: the incidence is (I, m·I) sparse with m·k entries per row, and the
    product has one entry per pair of items sharing a kNN hyperedge. `names` only labels errors.
    """
    check_modalities(modalities, k, n_items, names)
    h = sp.hstack([knn(f, k, binarize, backend) for f in modalities], format="csr")  # (I, m·I)
    a = (h @ h.T).tocsr()  # (I, I) shared-hyperedge counts (weighted in "reference")
    a.eliminate_zeros()
    d = _inv_pow(np.asarray(a.sum(axis=1)).ravel(), -0.5)  # (I,)
    a = _scale_rows(a, d)
    a.data *= d[a.indices].astype(np.float32)  # column scaling: D^-1/2 on the right
    a.sort_indices()
    return a.astype(np.float32)
