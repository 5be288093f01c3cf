"""MMHCL: Xu et al., "MMHCL: Multi-Modal Hypergraph Contrastive Learning for Recommendation",
ACM TOMM 2025, arXiv 2504.16576. Reference code: https://github.com/Xu107/MMHCL (HEAD 0ceaa26,
`codes/Models.py`, `codes/main.py`). Spec: hellm.md sections 3.1-3.6.

Encoder (shapes with U users, I items, d = dim):
    u_ui, i_ui = mean_{l=0..L} Â^l [E_ui_user; E_ui_item]          LightGCN, (U, d), (I, d)
    uu = A_u^{L_u} E_uu,  ii = A_i^{L_i} E_ii                       last layer only, no mean
    u = u_ui + l2norm(uu),  i = i_ui + l2norm(ii)                   score uᵀi
A hypergraph branch whose λ is 0 is skipped entirely (no propagation, no fusion term, no
gradient for its table), as in the reference. Loss per step:
    BPR + regs · ½(‖u_B‖² + ‖i⁺_B‖² + ‖i⁻_B‖²)/B + λ_i L_cl(i, ii) + λ_u L_cl(u, uu)
with L_cl the InfoNCE over all nodes of one side (recpipe.hypergraph.infonce).

The batch source is `recpipe.train.sampler.UserBatches`; `lr_lambda` is the reference schedule
for `recpipe.train.loop.fit(..., lr_lambda=lr_lambda)`.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recpipe.graph.adjacency import Graph, bipartite
from recpipe.graph.lightgcn import propagate
from recpipe.hypergraph.infonce import info_nce, info_nce_batch
# the config, presets and loop defaults are torch-free (params.py); re-exported here
from recpipe.hypergraph.params import PRESETS, TRAIN_DEFAULTS, MMHCLConfig  # noqa: F401


def lr_lambda(epoch: float) -> float:
    """The reference LambdaLR factor 0.96^(e/50), stepped once per epoch: e = floor(epoch)."""
    return 0.96 ** (math.floor(epoch) / 50)


class MMHCL(nn.Module):
    Config = MMHCLConfig

    def __init__(self, n_users: int, n_items: int, train: sp.spmatrix, item_graph: sp.spmatrix,
                 user_graph: sp.spmatrix, cfg: MMHCLConfig, seed: int = 2024, device="cpu"):
        """train (U, I) training matrix; item_graph (I, I) = build.i2i(...); user_graph (U, U)
        = build.u2u(train). The graphs are fixed, so they live on `device` outside the state."""
        super().__init__()
        self.n_users, self.n_items, self.cfg = n_users, n_items, cfg
        for name, m, n in (("train", train, (n_users, n_items)), ("item_graph", item_graph,
                           (n_items, n_items)), ("user_graph", user_graph, (n_users, n_users))):
            if m.shape != n:
                raise ValueError(f"MMHCL: {name} has shape {m.shape}, expected {n}")
        self.ui = Graph(bipartite(sp.csr_matrix(train)), device)  # Â, (U+I, U+I)
        # a skipped branch needs no graph (and the U2U one can be the largest object here)
        self.uu_graph = Graph(user_graph, device) if cfg.lambda_u else None
        self.ii_graph = Graph(item_graph, device) if cfg.lambda_i else None
        gen = torch.Generator().manual_seed(seed)

        def table(n: int) -> nn.Parameter:  # xavier-uniform (n, d), drawn on the CPU generator
            w = torch.empty(n, cfg.dim)
            nn.init.xavier_uniform_(w, generator=gen)
            return nn.Parameter(w.to(device))

        # all four tables exist whatever the λs, so an ablation starts from the same init
        self.user_ui, self.item_ui = table(n_users), table(n_items)
        self.uu, self.ii = table(n_users), table(n_items)
        self._eval_cache = None  # (parameter versions, (users, items))

    @staticmethod
    def _hyper(g: Graph, e: torch.Tensor, layers: int) -> torch.Tensor:
        """A^layers e (N, d): plain repeated propagation, only the last layer kept."""
        op = g.op()
        for _ in range(layers):
            e = op.mm(e)
        return e

    def encode(self):
        """(u, i, uu, ii): fused users (U, d), fused items (I, d) and the hypergraph branches
        (U, d) / (I, d), or None for a skipped branch."""
        ego = torch.cat([self.user_ui, self.item_ui])  # (U+I, d)
        ui = propagate(self.ui.op(), ego, self.cfg.ui_layers, "mean")
        u, i = ui[: self.n_users], ui[self.n_users:]
        uu = ii = None
        if self.cfg.lambda_u:
            uu = self._hyper(self.uu_graph, self.uu, self.cfg.u_layers)
            u = u + F.normalize(uu, dim=1)
        if self.cfg.lambda_i:
            ii = self._hyper(self.ii_graph, self.ii, self.cfg.i_layers)
            i = i + F.normalize(ii, dim=1)
        return u, i, uu, ii

    def forward(self):
        u, i, _, _ = self.encode()
        return u, i

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused (users (U, d), items (I, d)) without grad, cached until a parameter changes."""
        key = tuple(p._version for p in self.parameters())
        if self._eval_cache is None or self._eval_cache[0] != key:
            with torch.no_grad():
                self._eval_cache = (key, self.forward())
        return self._eval_cache[1]

    def user_embeddings(self) -> torch.Tensor:
        return self.embeddings()[0]

    def item_embeddings(self) -> torch.Tensor:
        return self.embeddings()[1]

    def _cl(self, z1, z2, idx):
        if self.cfg.infonce == "batch":
            return info_nce_batch(z1, z2, self.cfg.tau, idx)
        return info_nce(z1, z2, self.cfg.tau, self.cfg.infonce_chunk)

    def loss(self, users, pos, neg):
        """One step's loss for (B,) int64 users, positives, negatives; (loss, float parts)."""
        cfg = self.cfg
        u, i, uu, ii = self.encode()
        ub, pb, nb = u[users], i[pos], i[neg]  # (B, d) each, fused
        bpr = F.softplus((ub * nb).sum(1) - (ub * pb).sum(1)).mean()  # -mean log σ(x⁺ - x⁻)
        reg = cfg.regs * 0.5 * (ub.pow(2).sum() + pb.pow(2).sum() + nb.pow(2).sum()) / len(users)
        zero = torch.zeros((), device=u.device)
        cl_i = self._cl(i, ii, torch.cat([pos, neg])) if ii is not None else zero
        cl_u = self._cl(u, uu, users) if uu is not None else zero
        loss = bpr + reg + cfg.lambda_i * cl_i + cfg.lambda_u * cl_u
        parts = {"bpr": bpr, "reg": reg, "cl_item": cl_i, "cl_user": cl_u}
        return loss, {k: float(v.detach()) for k, v in parts.items()}

    @torch.no_grad()
    def export(self) -> dict[str, np.ndarray]:
        """{"user": (U, d), "item": (I, d)} float32 numpy, the tables `cfg.export` names."""
        if self.cfg.export == "ego":
            u, i = self.user_ui, self.item_ui
        elif self.cfg.export == "ui":
            ego = torch.cat([self.user_ui, self.item_ui])
            ui = propagate(self.ui.op(), ego, self.cfg.ui_layers, "mean")
            u, i = ui[: self.n_users], ui[self.n_users:]
        else:
            u, i = self.embeddings()
        return {"user": u.detach().float().cpu().numpy().astype(np.float32),
                "item": i.detach().float().cpu().numpy().astype(np.float32)}
