"""GCCF (LR-GCCF): Chen et al., "Revisiting Graph based Collaborative Filtering: A Linear
Residual Graph Convolutional Network Approach", AAAI 2020. Reference code:
https://github.com/newlei/LR-GCCF; the RLMRec variant: https://github.com/HKUDS/RLMRec
(encoder/models/general_cf/gccf.py).

E^{l+1} = Â E^l for l = 0..L-1, no nonlinearity; the final embedding *concatenates* the layers,
[E^0 | E^1 | ... | E^L], so scores are Σ_l e_u^l · e_i^l and out_dim = (L+1)·d (the Con
projector and the Gen decoder size themselves from `out_dim`).

As in RLMRec (rlmrec.md section 6): the per-layer weight matrices of the paper are created by
the reference but never used ("performs better without W"). We do not create them: their only
effect there is an L2 term that touches nothing else (its gradient is on W alone).
Self-loops (rlmrec.md section 8, quirk 1): the reference adds them only for the plain `gccf`
config, not for gccf_plus / gccf_gene; parity mode reproduces that, clean mode gives all three
the same graph (`self_loops: true`). The stage builds the adjacency from this config key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from recpipe.config import rng
from recpipe.graph.base import Backbone


@dataclass
class GCCFConfig:
    # embedding size d (the final embedding is (layers + 1) * d wide)
    embedding_size: int = field(default=32, metadata=rng(1))
    # propagation layers L (RLMRec: 2 on every dataset)
    layers: int = field(default=2, metadata=rng(0))
    # L2 weight over every parameter, every batch
    reg_weight: float = field(default=1e-6, metadata=rng(0.0))
    # add I to A before normalising (Â = D^-1/2 (A + I) D^-1/2)
    self_loops: bool = True


class GCCF(Backbone):
    Config = GCCFConfig

    def __init__(self, n_users: int, n_items: int, adj, cfg: GCCFConfig, generator=None):
        super().__init__(n_users, n_items, adj, cfg, generator)
        self.out_dim = (cfg.layers + 1) * cfg.embedding_size

    def encode(self, ego: torch.Tensor | None = None, train: bool = False) -> torch.Tensor:
        """(N, (L+1)·d): the layer outputs side by side; no randomness, so `train` is unused."""
        e = self.ego() if ego is None else ego
        a = self.adj.op()
        layers = [e]
        for _ in range(self.cfg.layers):
            e = a.mm(e)  # (N, N) @ (N, d)
            layers.append(e)
        return torch.cat(layers, dim=1)
