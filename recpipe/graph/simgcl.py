"""SimGCL: Yu et al., "Are Graph Augmentations Necessary? Simple Graph Contrastive Learning
for Recommendation", SIGIR 2022. Reference code: https://github.com/Coder-Yu/SELFRec; the
RLMRec variant this file follows: https://github.com/HKUDS/RLMRec
(encoder/models/general_cf/simgcl.py).

LightGCN encoder on the full graph (no edge dropout). A perturbed view adds uniform noise
after every propagation layer, and the noisy layer is what the next layer propagates:

    E^{l+1} = Â E^l + eps * sign(Â E^l) ⊙ normalize_row(U(0,1)),   view = Σ_{l=0..L} E^l

with the layer-0 term E^0 unperturbed (rlmrec.md section 6). Each noise row has L2 norm eps
and points into the orthant of the embedding, so it rotates the embedding by a bounded angle.

    loss = BPR(clean) + L2(all params) + cl_weight / B * [NCE(u¹, u²; U²) + NCE(i⁺¹, i⁺²; I²)]

Unlike SGL there is no term on the negative items.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from recpipe.config import rng
from recpipe.graph.base import Backbone
from recpipe.graph.lightgcn import propagate
from recpipe.graph.losses import bpr, info_nce_sum, l2_all


@dataclass
class SimGCLConfig:
    # embedding size d
    embedding_size: int = field(default=32, metadata=rng(1))
    # propagation layers L
    layers: int = field(default=3, metadata=rng(0))
    # L2 weight over every parameter, every batch (RLMRec: 1e-5)
    reg_weight: float = field(default=1e-5, metadata=rng(0.0))
    # weight of the view-contrastive InfoNCE term (RLMRec: 0.1)
    cl_weight: float = field(default=0.1, metadata=rng(0.0))
    # InfoNCE temperature τ (RLMRec: 0.2 / 0.2 / 0.5)
    temperature: float = field(default=0.2, metadata=rng(0.0, None, lo_open=True))
    # L2 norm of the noise added to every node after every layer (RLMRec: 0.9 / 0.9 / 0.2)
    eps: float = field(default=0.9, metadata=rng(0.0))


class SimGCL(Backbone):
    Config = SimGCLConfig

    def encode(self, ego: torch.Tensor | None = None, train: bool = False) -> torch.Tensor:
        """Clean view (N, d) on the full graph, in training and evaluation alike."""
        e = self.ego() if ego is None else ego
        return propagate(self.adj.op(), e, self.cfg.layers)

    def noise(self, e: torch.Tensor) -> torch.Tensor:
        """eps * sign(e) ⊙ (rows of U(0,1) scaled to unit L2 norm): (N, d), row norm eps."""
        r = torch.rand(e.shape, generator=self.generator, device=e.device, dtype=e.dtype)
        return self.cfg.eps * torch.sign(e) * F.normalize(r, p=2, dim=1)

    def view(self, ego: torch.Tensor) -> torch.Tensor:
        """One perturbed view (N, d): noise after each layer, fed on to the next one."""
        a = self.adj.op()
        acc, e = ego, ego  # layer 0 enters the sum without noise
        for _ in range(self.cfg.layers):
            e = a.mm(e)  # (N, N) @ (N, d)
            e = e + self.noise(e)
            acc = acc + e
        return acc

    def cl_loss(self, ego: torch.Tensor, users, pos) -> torch.Tensor:
        """(1/B) Σ of the user and positive-item InfoNCE sums between two views (unweighted)."""
        u1, i1 = self.split(self.view(ego))
        u2, i2 = self.split(self.view(ego))
        tau = self.cfg.temperature
        # candidates are all users / items of view 2: (B, U) and (B, I) logits
        cl = info_nce_sum(u1[users], u2[users], u2, tau) + info_nce_sum(i1[pos], i2[pos], i2, tau)
        return cl / len(users)

    def backbone_loss(self, final, users, pos, neg, ego=None):
        """BPR on the clean `final` + L2 + cl_weight * CL; returns (loss, parts)."""
        u, i = self.split(final)
        rec = bpr(u[users], i[pos], i[neg])
        reg = l2_all(self, self.cfg.reg_weight)
        loss = rec + reg
        cl = torch.zeros((), device=final.device)
        if self.cfg.cl_weight > 0:  # no views drawn when the term is off
            cl = self.cfg.cl_weight * self.cl_loss(self.ego() if ego is None else ego, users, pos)
            loss = loss + cl
        return loss, {"bpr": rec.detach(), "reg": torch.as_tensor(reg).detach(), "cl": cl.detach()}
