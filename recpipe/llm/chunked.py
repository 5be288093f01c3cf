"""Cross-entropy over a large output table without materialising every position's logits.

    loss = chunked_cross_entropy(h, W, target, chunk=1024)     # == F.cross_entropy(h @ W.T, target)

h [N, H] are hidden states at the N predicting positions, W [C, H] the output rows (CLLM4Rec:
the item embeddings, C = n_items; or the LM head, C = vocabulary), target [N] in [0, C). The
direct form holds N x C logits for the backward pass (CLLM4Rec's collaborative LM on Beauty:
20 x 1020 x 6,086 floats, ~0.5 GB). Here each chunk of `chunk` positions is computed under
activation checkpointing: its logits are freed after the forward and recomputed in the
backward, so at most chunk x C logits live at once. Gradients reach h and W (and `bias`).
"""

from __future__ import annotations


def _chunk_loss(h, w, t, bias):
    import torch.nn.functional as F

    logits = (h @ w.T).float()                                       # [n, C]
    if bias is not None:
        logits = logits + bias.float()
    return F.cross_entropy(logits, t, reduction="sum")


def chunked_cross_entropy(h, w, target, chunk: int = 1024, bias=None, reduction: str = "mean"):
    """Mean (or "sum") cross-entropy of softmax(h @ w.T + bias) at `target`, chunk positions
    at a time (module docstring). h [N, H], w [C, H], target [N] int64, bias [C] or None."""
    import torch
    from torch.utils.checkpoint import checkpoint

    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction {reduction!r}: choose mean or sum")
    n = h.shape[0]
    if n == 0:
        return h.sum() * 0.0  # no position: a zero that keeps the graph
    total = h.new_zeros((), dtype=torch.float32)
    grad = torch.is_grad_enabled() and (h.requires_grad or w.requires_grad)
    for s in range(0, n, chunk):
        hs, ts = h[s:s + chunk], target[s:s + chunk]
        if grad and n > chunk:
            total = total + checkpoint(_chunk_loss, hs, w, ts, bias, use_reentrant=False)
        else:  # one chunk: nothing to save by recomputing
            total = total + _chunk_loss(hs, w, ts, bias)
    return total / n if reduction == "mean" else total
