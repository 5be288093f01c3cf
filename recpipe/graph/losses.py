"""Loss terms shared by the backbones and the RLMRec alignment (rlmrec.md section 5.2)."""

from __future__ import annotations


def bpr(u, pos, neg):
    """mean softplus(u·neg - u·pos): u, pos, neg are (B, d)."""
    import torch.nn.functional as F

    return F.softplus((u * neg).sum(-1) - (u * pos).sum(-1)).mean()


def l2_all(module, weight: float):
    """weight * sum of squared entries of every parameter (reference: not divided by B)."""
    if weight == 0:
        return 0.0
    return weight * sum(p.pow(2).sum() for p in module.parameters())


def _normalize(x):
    import torch

    return x / torch.sqrt(1e-8 + x.pow(2).sum(-1, keepdim=True))


def info_nce_sum(anchor, positive, candidates, tau: float, mask=None):
    """Σ_b [ -cos(a_b, p_b)/τ + log Σ_c exp(cos(a_b, c)/τ) ] (a sum; callers divide by B).

    anchor, positive: (B, d); candidates: (C, d). `mask` (B, C) bool marks candidates to drop
    from the denominator (duplicate in-batch items in clean mode).
    """
    import torch

    a, p, c = _normalize(anchor), _normalize(positive), _normalize(candidates)
    pos = (a * p).sum(-1) / tau
    logits = (a / tau) @ c.T  # scale the (B, d) side, not the (B, C) product
    if mask is not None:
        logits = logits.masked_fill(mask, float("-inf"))
    return (-pos + torch.logsumexp(logits, dim=-1)).sum()


def scl(x, y, tau: float):
    """mean_b -log(exp(cos(x_b, y_b)/τ) / (Σ_c exp(cos(x_b, y_c)/τ) + 1e-8) + 1e-8)."""
    import torch

    xn, yn = _normalize(x), _normalize(y)
    sim = torch.exp(xn @ yn.T / tau)
    ratio = sim.diagonal() / (sim.sum(-1) + 1e-8)
    return -torch.log(ratio + 1e-8).mean()
