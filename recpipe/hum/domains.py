"""Domain-importance weights: HUM's robustness enhancer (hum.md section 4.2-4.3).

    L = sum_d w_d * mean_{s in batch, dom(s) = d} l_s          (w detached; an absent domain adds 0)
    every `interval` optimiser steps:  w_d <- w_d * exp(eta * Lbar_d / T),  w <- w / sum(w)

where Lbar_d is the mean loss of domain d's samples since the last update (0 for a domain not
seen). Exponentiated-gradient (Group-DRO style) reweighting toward the domains that lag.

The weights and the window's per-domain sums and counts are buffers, so a checkpoint holds
them (`state_buffers`) and a resumed run updates exactly as an uninterrupted one. `sync`: the
sums and counts are all-reduced before an update under data parallelism, so every process
keeps the same weights, equal to a 1-process run with the processes' batches accumulated.
Parity (the reference): `start="ones"` (sum K), reset every epoch, `sync=False`.
"""

from __future__ import annotations

import torch
from torch import nn


class DomainWeights(nn.Module):
    def __init__(self, n_domains: int, eta: float = 0.001, temperature: float = 1.0,
                 interval: int = 50, start: str = "uniform", sync: bool = True):
        super().__init__()
        if start not in ("uniform", "ones"):
            raise ValueError(f"start {start!r}: choose uniform (1/K each) or ones (the reference)")
        self.k, self.eta, self.temperature, self.interval = n_domains, eta, temperature, interval
        self.start, self.sync = start, sync
        self.register_buffer("w", torch.empty(n_domains, dtype=torch.float64))
        self.register_buffer("loss_sum", torch.zeros(n_domains, dtype=torch.float64))
        self.register_buffer("count", torch.zeros(n_domains, dtype=torch.float64))
        self.reset()

    def reset(self) -> None:
        self.w.fill_(1.0 / self.k if self.start == "uniform" else 1.0)
        self.loss_sum.zero_()
        self.count.zero_()

    def combine(self, losses: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        """sum_d w_d * mean of `losses` (B,) over the rows of domain d (`domain` (B,) long)."""
        sums = torch.zeros(self.k, dtype=losses.dtype, device=losses.device)
        sums = sums.index_add(0, domain, losses)  # (K,), differentiable
        count = torch.bincount(domain, minlength=self.k).to(losses.dtype)  # (K,)
        if self.training:  # the update's statistics: each sample once, no graph kept
            self.loss_sum += sums.detach().double()
            self.count += count.double()
        means = sums / count.clamp(min=1)
        return (self.w.to(losses.dtype) * means).sum()

    def on_step(self, steps: int) -> None:
        """After optimiser step number `steps` (1-based): update every `interval` steps."""
        if steps % self.interval:
            return
        sums, count = self.loss_sum.clone(), self.count.clone()
        if self.sync and torch.distributed.is_available() and torch.distributed.is_initialized():
            both = torch.cat([sums, count])
            torch.distributed.all_reduce(both)
            sums, count = both[: self.k], both[self.k:]
        mean = sums / count.clamp(min=1)  # 0 for a domain not seen in the window
        w = self.w * torch.exp(self.eta * mean / self.temperature)
        self.w.copy_(w / w.sum())
        self.loss_sum.zero_()
        self.count.zero_()
