"""The normalised user-item graph on native torch sparse CSR (no torch-sparse/torch-scatter).

Nodes are users 0..U-1 then items U..U+I-1. A = [[0, R], [R^T, 0]] with R the binary training
matrix; Â = D^-1/2 A D^-1/2 (isolated nodes keep zero rows). RLMRec's plain GCCF adds
self-loops before normalising (rlmrec.md section 8, quirk 1).

Why a `Graph` class and not `torch.sparse.mm` on a CSR tensor directly: autograd's backward
of `sparse.mm(A, X)` transposes A on every call, which made a LightGCN step ~10x slower than
its forward. `Graph` keeps A^T's structure and the permutation that maps A's values onto it
(for the structurally symmetric bipartite graph the structure is A's own), and runs the
backward as one more CSR product. Edge dropout reuses the
structure with zeroed values, so it needs no rebuild either.

CPU speed (benchmarks/bench_graph.py): `torch.sparse.mm` zero-fills its output, copies it
again inside `addmm` and converts int64 indices to int32 for MKL on every call, so a product
cost 3-4x the MKL kernel. `spmm` calls `addmm` into an uninitialised output (MKL ignores it
when beta = 0) with int32 indices kept from construction; `power_sum` runs a LightGCN sum of
powers as Horner steps `h <- x + A h`, one fused product-and-add per layer, forward and back.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

# CSR products are what this module is for; torch's "beta" notice is noise in every log
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")


def bipartite(train: sp.csr_matrix, self_loops: bool = False) -> sp.csr_matrix:
    """Symmetrically normalised (U+I) x (U+I) adjacency, float32 CSR with sorted indices."""
    n_u, n_i = train.shape
    r = train.copy().astype(np.float32)
    r.data[:] = 1.0
    a = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    if self_loops:
        a = (a + sp.eye(n_u + n_i, dtype=np.float32, format="csr")).tocsr()
    deg = np.asarray(a.sum(axis=1)).ravel()
    inv = np.zeros_like(deg)
    inv[deg > 0] = deg[deg > 0] ** -0.5
    d = sp.diags(inv)
    out = (d @ a @ d).tocsr()
    out.sort_indices()
    return out.astype(np.float32)


def edge_rows(crow: torch.Tensor) -> torch.Tensor:
    """Row index of every stored CSR entry: (nnz,) from crow (N+1,)."""
    n = len(crow) - 1
    return torch.repeat_interleave(torch.arange(n, device=crow.device), crow.diff())


def _mkl_cpu(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and torch.backends.mkl.is_available()


def spmm(a, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
    """a @ x (+ add) for a sparse CSR `a` (N, M) and dense x (M, d); no autograd."""
    if _mkl_cpu(x):
        out = torch.empty(a.shape[0], x.shape[1], dtype=x.dtype, device=x.device)
        # beta = 0: MKL never reads `out`, so it need not be zeroed
        torch.addmm(out, a, x, beta=0, out=out)
        return out if add is None else out.add_(add)
    out = torch.sparse.mm(a, x)
    return out if add is None else out + add


class _SpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, a_t, x):
        ctx.a_t = a_t
        return spmm(a, x)

    @staticmethod
    def backward(ctx, grad):
        return None, None, spmm(ctx.a_t, grad)


class _PowerSum(torch.autograd.Function):
    """Σ_{l=0..L} A^l x by Horner, h <- x + A h; backward Σ_l (A^T)^l g the same way."""

    @staticmethod
    def forward(ctx, a, a_t, x, layers):
        ctx.a_t, ctx.layers = a_t, layers
        h = x
        for _ in range(layers):
            h = spmm(a, h, add=x)  # (N, d)
        return h

    @staticmethod
    def backward(ctx, grad):
        h = grad
        for _ in range(ctx.layers):
            h = spmm(ctx.a_t, h, add=grad)
        return None, None, h, None


class _EdgeDot(torch.autograd.Function):
    """x_h · y_t for every stored entry (h, t) of a Graph, in CSR order: (nnz,).

    The gradient is a product with the pattern weighted by the incoming gradient g:
    dx = A_g @ y and dy = A_g^T @ x, two CSR products instead of two scatter-adds over nnz
    rows (10x faster on CPU)."""

    @staticmethod
    def forward(ctx, g, x, y):
        ctx.g = g
        ctx.save_for_backward(x, y)
        return g.edge_dot_values(x, y)

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        g, gx, gy = ctx.g, None, None
        if ctx.needs_input_grad[1]:
            gx = spmm(g._csr(grad), y)  # (N, d)
        if ctx.needs_input_grad[2]:
            gy = spmm(g._csr_t(grad), x)
        return None, gx, gy


class _WeightedSpMM(torch.autograd.Function):
    """A_w @ x for the Graph's pattern with edge weights w (nnz,), differentiable in w and x:
    dL/dw_e = grad[h_e] · x[t_e] (a sampled product) and dL/dx = A_w^T grad."""

    @staticmethod
    def forward(ctx, g, w, x):
        ctx.g = g
        ctx.save_for_backward(w, x)
        return spmm(g._csr(w), x)  # (N, N) @ (N, k)

    @staticmethod
    def backward(ctx, grad):
        w, x = ctx.saved_tensors
        g, gw, gx = ctx.g, None, None
        if ctx.needs_input_grad[1]:
            gw = g.edge_dot_values(grad, x)  # (nnz,)
        if ctx.needs_input_grad[2]:
            gx = spmm(g._csr_t(w), grad)  # (N, k)
        return None, gw, gx


class Propagator:
    """A sparse matrix and its transpose: `mm(x)` = A @ x, with backward A^T @ grad."""

    def __init__(self, a, a_t):
        self.a, self.a_t = a, a_t

    def mm(self, x: torch.Tensor) -> torch.Tensor:
        return _SpMM.apply(self.a, self.a_t, x)

    def power_sum(self, x: torch.Tensor, layers: int) -> torch.Tensor:
        """Σ_{l=0..layers} A^l x (N, d), differentiable in x; 2·layers products a step."""
        return _PowerSum.apply(self.a, self.a_t, x, layers)


class Graph:
    """A sparse (N, N) matrix in CSR with its transpose's structure; products with it are
    differentiable in the dense operand (and, through `weighted_mm` / `edge_dot`, in edge
    weights on its pattern). The bipartite graphs are structurally symmetric, so there the
    transpose shares the pattern and only its values are permuted."""

    def __init__(self, m: sp.csr_matrix, device="cpu"):
        m = m.tocsr()
        m.sort_indices()
        self.shape = m.shape
        self.device = torch.device(device)
        self.crow = torch.from_numpy(m.indptr.astype(np.int64)).to(self.device)
        self.col = torch.from_numpy(m.indices.astype(np.int64)).to(self.device)
        self.values = torch.from_numpy(m.data.astype(np.float32)).to(self.device)
        # position of entry (j, i) for every stored (i, j): values[perm] are A^T's values,
        # in the CSR order of A^T's structure (t_crow, t_col)
        coded = m.copy()
        coded.data = np.arange(1, m.nnz + 1, dtype=np.float64)
        t = coded.T.tocsr()
        t.sort_indices()
        self.perm = torch.from_numpy(t.data.astype(np.int64) - 1).to(self.device)
        self.symmetric = np.array_equal(t.indptr, m.indptr) and np.array_equal(t.indices, m.indices)
        # MKL takes int32 indices; passing int64 costs a conversion in every product
        small = self.device.type == "cpu" and m.nnz < 2**31 - 1
        idx = (lambda a: torch.from_numpy(a.astype(np.int32 if small else np.int64)).to(self.device))
        self._crow_mm, self._col_mm = idx(m.indptr), idx(m.indices)
        self._t_crow_mm, self._t_col_mm = ((self._crow_mm, self._col_mm) if self.symmetric
                                           else (idx(t.indptr), idx(t.indices)))
        self._full = None
        self._rows = None

    @classmethod
    def from_edges(cls, rows: torch.Tensor, cols: torch.Tensor, n: int) -> "Graph":
        """The (n, n) pattern of the edges rows -> cols on their device; values = how often each
        edge occurs (1 for edges without repeats)."""
        r, c = rows.cpu().numpy(), cols.cpu().numpy()
        m = sp.csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(n, n))
        return cls(m, rows.device)

    @property
    def nnz(self) -> int:
        return len(self.values)

    def _csr(self, values):
        return torch.sparse_csr_tensor(self._crow_mm, self._col_mm, values, size=self.shape,
                                       check_invariants=False)

    def _csr_t(self, values):
        """A^T for the entries `values` of A (given in A's order)."""
        return torch.sparse_csr_tensor(self._t_crow_mm, self._t_col_mm, values[self.perm],
                                       size=self.shape[::-1], check_invariants=False)

    def op(self, values: torch.Tensor | None = None) -> "Propagator":
        """The matrix with `values` (default: its own) as a differentiable operator.

        Build it once per training step: the transposed values are gathered here, not in
        every layer's product.
        """
        if values is None:
            if self._full is None:
                self._full = Propagator(self._csr(self.values), self._csr_t(self.values))
            return self._full
        return Propagator(self._csr(values), self._csr_t(values))

    def mm(self, x: torch.Tensor, values: torch.Tensor | None = None) -> torch.Tensor:
        return self.op(values).mm(x)

    @property
    def rows(self) -> torch.Tensor:
        """Head node of every stored entry, in CSR order: (nnz,)."""
        if self._rows is None:
            self._rows = edge_rows(self.crow)
        return self._rows

    def edge_dot_values(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x_h · y_t per stored entry (h, t), (nnz,), without autograd (see `edge_dot`)."""
        if x.device.type == "cpu":  # a sampled product: no (nnz, d) gathered copies
            pattern = self._csr(torch.zeros(self.nnz, dtype=x.dtype))
            return torch.sparse.sampled_addmm(pattern, x, y.T, beta=0).values()
        return (x[self.rows] * y[self.col]).sum(-1)

    def edge_dot(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x_h · y_t per stored entry (h, t), (nnz,), differentiable in x (N, d) and y (N, d)."""
        return _EdgeDot.apply(self, x, y)

    def weighted_mm(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """A_w @ x (N, k) with edge weights w (nnz,) in CSR order; differentiable in w and x."""
        return _WeightedSpMM.apply(self, w, x)

    def dropout_values(self, keep: float, generator=None) -> torch.Tensor:
        """Values with each stored entry kept with probability `keep`, not rescaled."""
        if keep >= 1.0:
            return self.values
        mask = torch.rand(self.values.shape, generator=generator, device=self.device) < keep
        return self.values * mask
