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
from recpipe.graph.losses import info_nce_by_id
from recpipe.graph.sgl import SGL, ViewCLConfig


@dataclass
class SimGCLConfig(ViewCLConfig):
    # L2 norm of the noise added to every node after every layer (RLMRec: 0.9 / 0.9 / 0.2)
    eps: float = field(default=0.9, metadata=rng(0.0))


class SimGCL(SGL):
    """SGL's clean encoder and loss; views perturbed by noise instead of edge dropout."""

    Config = SimGCLConfig

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

    def cl_loss(self, ego: torch.Tensor, users, pos, neg=None) -> torch.Tensor:
        """(1/B) Σ of the user and positive-item InfoNCE sums between two views (unweighted)."""
        u1, i1 = self.split(self.view(ego))
        u2, i2 = self.split(self.view(ego))
        tau = self.cfg.temperature
        # candidates are all users / items of view 2: (M, U) and (M, I) logits, M <= B
        # once per distinct node, weighted by its copies in the batch (losses.info_nce_by_id)
        cl = info_nce_by_id(u1, u2, users, tau, candidates=u2) + info_nce_by_id(i1, i2, pos, tau, candidates=i2)
        return cl / len(users)
