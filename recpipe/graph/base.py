"""What every graph backbone shares: the layer-0 tables and the API the trainer and the
RLMRec alignment call. One backbone per file subclasses `Backbone` (registry:
`recpipe.graph.BACKBONES`).

API (tensor shapes with N = U + I nodes, d = embedding size):
- `ego()` -> (N, d): layer-0 input (Gen replaces masked rows by its mask token);
- `encode(ego=None, train=False)` -> (N, out_dim): final embeddings. With `train=True` this
  is the view the alignment aligns (the *clean* view for SGL/SimGCL, rlmrec.md 5.3) and the
  one the BPR term scores; stochastic parts that belong to the backbone's loss (augmented
  views, masked subgraphs) are drawn in `backbone_loss`, not here;
- `split(final)` -> (users (U, out_dim), items (I, out_dim));
- `user_embeddings()` (U, out_dim) / `item_embeddings()` (I, out_dim): the evaluation-time
  embeddings the shared evaluator scores with, propagated once and cached until a parameter
  changes (an optimizer step or a loaded state bumps the parameters' version counters);
- `backbone_loss(final, users, pos, neg, ego=None)` -> (loss, parts dict): `final` is what
  `encode(ego, train=True)` returned, `ego` the (possibly masked) layer-0 input it came from.
Class attributes: `Config` (a typed dataclass), `uses_negatives` (False for AutoCF: Con then
drops its i- term), `self_loops` is read from the config when it has that key (GCCF).
"""

from __future__ import annotations

import torch
from torch import nn

from recpipe.graph.losses import bpr, l2_all


class Backbone(nn.Module):
    Config = None
    uses_negatives = True

    def __init__(self, n_users: int, n_items: int, adj, cfg, generator=None):
        super().__init__()
        self.n_users, self.n_items, self.cfg = n_users, n_items, cfg
        self.adj = adj  # recpipe.graph.adjacency.Graph, (N, N), N = U + I
        self.generator = generator  # torch RNG for dropout/noise draws (None: the global one)
        self.user = nn.Parameter(torch.empty(n_users, cfg.embedding_size))
        self.item = nn.Parameter(torch.empty(n_items, cfg.embedding_size))
        nn.init.xavier_uniform_(self.user)
        nn.init.xavier_uniform_(self.item)
        self.out_dim = cfg.embedding_size
        self._eval_cache = None  # (parameter versions, (users, items)); not part of the state

    def ego(self) -> torch.Tensor:
        return torch.cat([self.user, self.item], dim=0)  # (N, d)

    def split(self, final: torch.Tensor):
        return final[: self.n_users], final[self.n_users:]

    def encode(self, ego: torch.Tensor | None = None, train: bool = False) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(users (U, out_dim), items (I, out_dim)) on the full graph, without training noise."""
        key = tuple(p._version for p in self.parameters())
        if self._eval_cache is None or self._eval_cache[0] != key:
            self._eval_cache = (key, self.split(self.encode(train=False)))
        return self._eval_cache[1]

    def user_embeddings(self) -> torch.Tensor:
        return self.final_embeddings()[0]

    def item_embeddings(self) -> torch.Tensor:
        return self.final_embeddings()[1]

    def triples(self, final: torch.Tensor, users, pos, neg):
        """Rows of `final` for a batch: (users, positives, negatives), each (B, out_dim).

        One gather over `final` (and one scatter-add in backward) instead of three indexings
        of the user/item halves, each of which would allocate a full-size gradient."""
        idx = torch.cat([users, pos + self.n_users, neg + self.n_users])  # (3B,)
        return final.index_select(0, idx).chunk(3)

    def backbone_loss(self, final, users, pos, neg, ego=None):
        """BPR on the batch + L2 over all parameters (GCCF, LightGCN); returns (loss, parts)."""
        rec = bpr(*self.triples(final, users, pos, neg))
        reg = l2_all(self, self.cfg.reg_weight)
        return rec + reg, {"bpr": rec.detach(), "reg": torch.as_tensor(reg).detach()}
