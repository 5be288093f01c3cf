"""MMHCL's contrastive term (hellm.md 3.3): one-directional GRACE-style InfoNCE.

For the cosine s and z1, z2 of N nodes each:

    ℓ_n = -log[ e^{s(z1_n, z2_n)/τ} / ( Σ_j e^{s(z1_n, z1_j)/τ} - e^{s(z1_n, z1_n)/τ}
                                         + Σ_j e^{s(z1_n, z2_j)/τ} ) ],   L = mean_n ℓ_n.

With a = z1/|z1|, b = z2/|z2| the denominator is Σ over the 2N keys [a; b] without the key n of
the a block, so ℓ_n = LSE_{j ≠ n}([a; b]_j · a_n / τ) - a_n·b_n / τ: a masked log-sum-exp instead
of exponentials that overflow at small τ, and a masked key instead of subtracting e^{1/τ}.

The reference (`Models.batched_contrastive_loss`) evaluates the same thing in 4096-row chunks, but
autograd keeps every chunk's (4096, N) exponentials for the backward pass, so its memory is
O(N²) after all. Here `_MaskedLSE` stores only its inputs and output and recomputes each
(chunk, 2N) block in backward: memory O(chunk x N), for twice the matrix products.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _MaskedLSE(torch.autograd.Function):
    """out_n = log Σ_{j ≠ n} exp(q_n · k_j) for q (N, d), k (M, d), M >= N: (N,).

    Row n never sees key n (the self-similarity of the first block)."""

    @staticmethod
    def forward(ctx, q, k, chunk: int):
        out = torch.empty(len(q), dtype=q.dtype, device=q.device)
        for s in range(0, len(q), chunk):
            blk = q[s:s + chunk] @ k.T  # (c, M)
            blk.diagonal(s).fill_(float("-inf"))  # entries (r, s + r): the node itself
            out[s:s + chunk] = torch.logsumexp(blk, dim=1)
        ctx.save_for_backward(q, k, out)
        ctx.chunk = chunk
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        q, k, out = ctx.saved_tensors
        dq, dk = torch.empty_like(q), torch.zeros_like(k)
        for s in range(0, len(q), ctx.chunk):
            qc = q[s:s + ctx.chunk]  # (c, d)
            blk = qc @ k.T  # (c, M), recomputed rather than stored
            blk.diagonal(s).fill_(float("-inf"))
            # softmax over the kept keys, times the incoming gradient: (c, M); exp(-inf) = 0
            p = blk.sub_(out[s:s + ctx.chunk, None]).exp_().mul_(g[s:s + ctx.chunk, None])
            dq[s:s + ctx.chunk] = p @ k
            dk.addmm_(p.T, qc)
        return dq, dk, None


def info_nce(z1: torch.Tensor, z2: torch.Tensor, tau: float, chunk: int = 4096) -> torch.Tensor:
    """Mean over all N nodes of ℓ_n (module docstring); z1, z2 (N, d); differentiable in both.

    Memory O(chunk x N); the value does not depend on `chunk` (up to float rounding)."""
    a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)  # (N, d) unit rows (zero rows stay 0)
    pos = (a * b).sum(1) / tau  # (N,) s(z1_n, z2_n)/τ
    keys = torch.cat([a, b])  # (2N, d): the z1 block first, so key n is node n's own
    lse = _MaskedLSE.apply(a / tau, keys, max(1, int(chunk)))  # (N,) log-denominator
    return (lse - pos).mean()


def info_nce_batch(z1: torch.Tensor, z2: torch.Tensor, tau: float,
                   idx: torch.Tensor) -> torch.Tensor:
    """The same loss restricted to the nodes `idx` (their negatives are the batch's nodes only):
    the optional fast variant (hellm.md section 7, quirk 10). Repeated ids count once, so a node
    is never its own negative."""
    idx = torch.unique(idx)  # (B',)
    return info_nce(z1.index_select(0, idx), z2.index_select(0, idx), tau, chunk=len(idx))
