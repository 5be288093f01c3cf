"""LightGCN: He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020. Reference code: https://github.com/gusye1234/LightGCN-PyTorch;
the RLMRec variant: https://github.com/HKUDS/RLMRec (encoder/models/general_cf/lightgcn.py).

E = pool_{l=0..L} Â^l E0 over the normalised bipartite graph. RLMRec's "LightGCN" differs from
the paper (rlmrec.md section 8, quirk 3): training uses edge dropout (keep 0.8, no rescale,
redrawn per batch) and *sum* pooling; the paper's model is `pooling: mean, edge_keep: 1.0`.

Imported lazily through `recpipe.graph.BACKBONES` (torch at module level is fine here).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from recpipe.config import choice, rng
from recpipe.graph.base import Backbone


@dataclass
class LightGCNConfig:
    # embedding size d
    embedding_size: int = field(default=32, metadata=rng(1))
    # propagation layers L
    layers: int = field(default=3, metadata=rng(0))
    # sum (RLMRec) | mean (the LightGCN paper, weights 1/(L+1))
    pooling: str = field(default="sum", metadata=choice("sum", "mean"))
    # training edge keep probability (RLMRec 0.8, no rescaling); 1.0 = no dropout
    edge_keep: float = field(default=0.8, metadata=rng(0.0, 1.0, lo_open=True))
    # L2 weight over every parameter, every batch
    reg_weight: float = field(default=1e-6, metadata=rng(0.0))


def propagate(a, e: torch.Tensor, layers: int, pooling: str = "sum") -> torch.Tensor:
    """pool_{l=0..L} A^l e for a Propagator `a` (e: (N, d)); sum or mean over the L+1 terms.

    The same A in every layer makes the sum a polynomial in A: `power_sum` evaluates it by
    Horner's rule without keeping the layer outputs (same value, a different summation order).
    """
    acc = a.power_sum(e, layers)  # (N, d)
    return acc / (layers + 1) if pooling == "mean" else acc


class LightGCN(Backbone):
    Config = LightGCNConfig

    def encode(self, ego: torch.Tensor | None = None, train: bool = False) -> torch.Tensor:
        """Final node embeddings (N, d); edge dropout only while training."""
        e = self.ego() if ego is None else ego
        vals = self.adj.dropout_values(self.cfg.edge_keep, self.generator) if train else None
        return propagate(self.adj.op(vals), e, self.cfg.layers, self.cfg.pooling)
