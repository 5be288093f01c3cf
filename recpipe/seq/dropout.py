"""Dropout whose mask costs a third of `torch.nn.Dropout`'s on a CPU.

SASRec drops half of everything, seven times a step (embeddings, attention weights, two FFN
outputs per block). torch's CPU dropout draws one Bernoulli per element, which took 45 % of a
training step on Beauty (benchmarks/README.md). Here one 64-bit draw of the global torch
generator (`torch.randint`, so `seed_everything` and checkpoints cover it) makes four 16-bit
uniforms, and an element is kept when its uniform is at least p: the keep probability is
1 - round(p * 65536) / 65536, exact for p = 0.5 and within 2e-5 of 1 - p otherwise. Kept
elements are scaled by 1 / (1 - p) as in torch, so evaluation (no dropout) needs no rescale.
"""

from __future__ import annotations

import torch

_LO, _HI = -(2 ** 63), 2 ** 63 - 1


def keep_mask(shape, p: float, device=None) -> torch.Tensor:
    """(shape) bool, True where an element is kept (probability ~ 1 - p)."""
    n = 1
    for s in shape:
        n *= s
    words = torch.randint(_LO, _HI, ((n + 3) // 4,), dtype=torch.int64, device=device)
    u = words.view(torch.int16)[:n]  # four signed 16-bit uniforms per word, [-32768, 32767]
    return (u >= round(p * 65536) - 32768).view(shape)


class FastDropout(torch.nn.Module):
    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p={p} must be in [0, 1)")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        scale = keep_mask(x.shape, self.p, x.device).to(x.dtype) * (1.0 / (1.0 - self.p))
        return x * scale

    def extra_repr(self) -> str:
        return f"p={self.p}"
