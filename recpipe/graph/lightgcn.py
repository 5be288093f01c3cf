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
from torch import nn

from recpipe.config import choice, rng
from recpipe.graph.losses import bpr, l2_all


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


class LightGCN(nn.Module):
    """Backbone API (shared by every backbone, used by the trainer and the alignment):

    ego() -> (N, d) layer-0 table; encode(ego, train) -> (N, out_dim) final embeddings;
    split(final) -> (users, items); backbone_loss(final, users, pos, neg) -> (loss, parts).
    """

    Config = LightGCNConfig

    def __init__(self, n_users: int, n_items: int, adj, cfg: LightGCNConfig, generator=None):
        super().__init__()
        self.n_users, self.n_items, self.cfg = n_users, n_items, cfg
        self.adj = adj  # recpipe.graph.adjacency.Graph, (N, N), N = U + I
        self.generator = generator  # edge-dropout draws (seeded by the trainer)
        self.user = nn.Parameter(torch.empty(n_users, cfg.embedding_size))
        self.item = nn.Parameter(torch.empty(n_items, cfg.embedding_size))
        nn.init.xavier_uniform_(self.user)
        nn.init.xavier_uniform_(self.item)
        self.out_dim = cfg.embedding_size

    def ego(self) -> torch.Tensor:
        return torch.cat([self.user, self.item], dim=0)  # (N, d)

    def encode(self, ego: torch.Tensor | None = None, train: bool = False) -> torch.Tensor:
        """Final node embeddings (N, d); edge dropout only while training."""
        e = self.ego() if ego is None else ego
        vals = self.adj.dropout_values(self.cfg.edge_keep, self.generator) if train else None
        a = self.adj.op(vals)
        acc = e
        for _ in range(self.cfg.layers):
            e = a.mm(e)  # (N, N) @ (N, d)
            acc = acc + e
        return acc / (self.cfg.layers + 1) if self.cfg.pooling == "mean" else acc

    def split(self, final: torch.Tensor):
        return final[: self.n_users], final[self.n_users:]

    def backbone_loss(self, final, users, pos, neg):
        """BPR on the batch + L2 over all parameters; returns (loss, parts)."""
        u, i = self.split(final)
        rec = bpr(u[users], i[pos], i[neg])
        reg = l2_all(self, self.cfg.reg_weight)
        return rec + reg, {"bpr": rec.detach(), "reg": torch.as_tensor(reg).detach()}
