"""MMHCL's contrastive term (hellm.md 3.3): one-directional GRACE-style InfoNCE.

For the cosine s and z1, z2 of N nodes each:

    ℓ_n = -log[ e^{s(z1_n, z2_n)/τ} / ( Σ_j e^{s(z1_n, z1_j)/τ} - e^{s(z1_n, z1_n)/τ}
                                         + Σ_j e^{s(z1_n, z2_j)/τ} ) ],   L = mean_n ℓ_n.

With a = z1/|z1|, b = z2/|z2| the denominator is Σ over the 2N keys [a; b] without the key n of
the a block, so ℓ_n = LSE_{j ≠ n}([a; b]_j · a_n / τ) - a_n·b_n / τ: a masked log-sum-exp instead
of exponentials that overflow at small τ, and a masked key instead of subtracting e^{1/τ}.

The reference (`Models.batched_contrastive_loss`) evaluates the same thing in 4096-row chunks, but
autograd keeps every chunk's (4096, N) exponentials for the backward pass, so its memory is
O(N²) after all. Here the graph losses' chunked log-sum-exp (`recpipe.graph.losses.
row_logsumexp`, with `skip_self`) stores only its inputs and output and recomputes each
(chunk, 2N) block in backward: memory O(chunk x N), for twice the matrix products. Its
default blocks (~2 MB on a CPU) keep memory small: 4096-row blocks of Beauty's 2 x 22k user
keys were 730 MB each, for the same time (about 10 s for the user side of one step on 2 CPU
cores, forward and backward: the 2 x 22k^2 exponentials dominate).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recpipe.graph.losses import row_logsumexp


def info_nce(z1: torch.Tensor, z2: torch.Tensor, tau: float, chunk: int = 0) -> torch.Tensor:
    """Mean over all N nodes of ℓ_n (module docstring); z1, z2 (N, d); differentiable in both.

    Memory O(chunk x N), chunk 0 = row_logsumexp's choice; the value does not depend on
    `chunk` (up to float rounding)."""
    a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)  # (N, d) unit rows (zero rows stay 0)
    pos = (a * b).sum(1) / tau  # (N,) s(z1_n, z2_n)/τ
    keys = torch.cat([a, b])  # (2N, d): the z1 block first, so key n is node n's own
    lse = row_logsumexp(a / tau, keys, int(chunk), skip_self=True)  # (N,) log-denominator
    return (lse - pos).mean()


def info_nce_batch(z1: torch.Tensor, z2: torch.Tensor, tau: float,
                   idx: torch.Tensor) -> torch.Tensor:
    """The same loss restricted to the nodes `idx` (their negatives are the batch's nodes only):
    the optional fast variant (hellm.md section 7, quirk 10). Repeated ids count once, so a node
    is never its own negative."""
    idx = torch.unique(idx)  # (B',)
    return info_nce(z1.index_select(0, idx), z2.index_select(0, idx), tau, chunk=len(idx))
