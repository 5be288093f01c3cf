"""SGL: Wu et al., "Self-supervised Graph Learning for Recommendation", SIGIR 2021.
Reference code: https://github.com/wujcan/SGL-Torch; the RLMRec variant this file follows:
https://github.com/HKUDS/RLMRec (encoder/models/general_cf/sgl.py).

LightGCN encoder (sum over layers 0..L of Â^l E0) plus a contrastive term between two
edge-dropped views of the graph (rlmrec.md section 6):

    loss = BPR(clean) + L2(all params)
         + cl_weight / B * [NCE(u¹, u²; U²) + NCE(i⁺¹, i⁺²; I²) + NCE(i⁻¹, i⁻²; I²)]

Views 1 and 2 keep each stored entry of Â with probability `edge_keep` (no rescaling), drawn
independently per batch; the BPR term and the alignment use the clean full-graph view. The
reference reads the layer count from the top-level config (quirk 2): the parity preset sets
`layers: 3`, so this file just uses `layers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from recpipe.config import rng
from recpipe.graph.base import Backbone
from recpipe.graph.lightgcn import propagate
from recpipe.graph.losses import bpr, info_nce_by_id, l2_all


@dataclass
class ViewCLConfig:
    """Keys shared by the two-view contrastive backbones (SGL, SimGCL)."""

    # embedding size d
    embedding_size: int = field(default=32, metadata=rng(1))
    # propagation layers L (RLMRec always runs 3, quirk 2)
    layers: int = field(default=3, metadata=rng(0))
    # L2 weight over every parameter, every batch (RLMRec: 1e-5 / 1e-6 / 1e-5)
    reg_weight: float = field(default=1e-5, metadata=rng(0.0))
    # weight of the view-contrastive InfoNCE term (RLMRec: 0.1, Yelp 1e-3)
    cl_weight: float = field(default=0.1, metadata=rng(0.0))
    # InfoNCE temperature τ (RLMRec: 0.2 / 0.1 / 0.5)
    temperature: float = field(default=0.2, metadata=rng(0.0, None, lo_open=True))


@dataclass
class SGLConfig(ViewCLConfig):
    # keep probability of each stored adjacency entry in the two augmented views
    edge_keep: float = field(default=0.8, metadata=rng(0.0, 1.0, lo_open=True))


class SGL(Backbone):
    Config = SGLConfig

    def encode(self, ego: torch.Tensor | None = None, train: bool = False) -> torch.Tensor:
        """Clean view (N, d) on the full graph, in training and evaluation alike."""
        e = self.ego() if ego is None else ego
        return propagate(self.adj.op(), e, self.cfg.layers)

    def view(self, ego: torch.Tensor) -> torch.Tensor:
        """One augmented view (N, d): a fresh edge-dropout mask, propagated from `ego`."""
        vals = self.adj.dropout_values(self.cfg.edge_keep, self.generator)  # (nnz,)
        return propagate(self.adj.op(vals), ego, self.cfg.layers)

    def cl_loss(self, ego: torch.Tensor, users, pos, neg) -> torch.Tensor:
        """(1/B) Σ of the three InfoNCE sums between two fresh views (unweighted)."""
        u1, i1 = self.split(self.view(ego))
        u2, i2 = self.split(self.view(ego))
        tau = self.cfg.temperature
        # candidates are *all* users / items of view 2: (M, U) and (M, I) logits, M <= B
        # once per distinct node, weighted by its copies in the batch (losses.info_nce_by_id)
        cl = info_nce_by_id(u1, u2, users, tau, candidates=u2)
        cl = cl + info_nce_by_id(i1, i2, pos, tau, candidates=i2)
        cl = cl + info_nce_by_id(i1, i2, neg, tau, candidates=i2)
        return cl / len(users)

    def backbone_loss(self, final, users, pos, neg, ego=None):
        """BPR on the clean `final` + L2 + cl_weight * CL; returns (loss, parts).
        Shared with SimGCL, which brings its own `view` and `cl_loss`."""
        rec = bpr(*self.triples(final, users, pos, neg))
        reg = l2_all(self, self.cfg.reg_weight)
        loss = rec + reg
        cl = torch.zeros((), device=final.device)
        if self.cfg.cl_weight > 0:  # no views drawn when the term is off
            cl = self.cfg.cl_weight * self.cl_loss(self.ego() if ego is None else ego, users, pos, neg)
            loss = loss + cl
        return loss, {"bpr": rec.detach(), "reg": torch.as_tensor(reg).detach(), "cl": cl.detach()}
