"""RLMRec's semantic alignment around any backbone: none, Con (contrastive), Gen (generative).

Ren et al., "Representation Learning with Large Language Models for Recommendation",
WWW 2024. Reference code: https://github.com/HKUDS/RLMRec (`*_plus.py`, `*_gene.py`).

- `none`: the backbone alone.
- `con` (rlmrec.md 5.3): an MLP projects the semantic vectors s (S-d, from LLM profiles) to
  the CF space; InfoNCE pulls each batch node's CF embedding towards its projected s. Users
  use all users as candidates, items the batch's items.
- `gen` (rlmrec.md 5.4): a fraction of nodes get a learnable mask token as layer-0 input; the
  backbone loss sees that masked graph, and an MLP decodes each masked node's final embedding
  back to its s (contrastive reconstruction over the masked nodes).
Every variant adds the L2 term over its own parameters too (the reference regularises all).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from recpipe.config import rng
from recpipe.graph.losses import info_nce_by_id, l2_all, scl


@dataclass
class AlignConfig:
    # Con: weight and temperature of the InfoNCE alignment (RLMRec typical 1e-2 / 0.1-1.0)
    kd_weight: float = field(default=1e-2, metadata=rng(0.0))
    kd_temperature: float = field(default=0.2, metadata=rng(0.0, None, lo_open=True))
    # Gen: share of nodes masked per batch, reconstruction weight and temperature
    mask_ratio: float = field(default=0.1, metadata=rng(0.0, 1.0))
    recon_weight: float = field(default=0.1, metadata=rng(0.0))
    re_temperature: float = field(default=0.2, metadata=rng(0.0, None, lo_open=True))
    # drop duplicate in-batch items from the item-side InfoNCE denominator (parity: false)
    mask_duplicates: bool = True


def mlp(d_in: int, d_out: int) -> nn.Sequential:
    """Linear(d_in -> (d_in+d_out)//2) -> LeakyReLU -> Linear(-> d_out), xavier weights."""
    net = nn.Sequential(nn.Linear(d_in, (d_in + d_out) // 2), nn.LeakyReLU(), nn.Linear((d_in + d_out) // 2, d_out))
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
    return net


class Plain(nn.Module):
    """The backbone alone (graph.align = none)."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def loss(self, users, pos, neg):
        final = self.backbone.encode(train=True)
        return self.backbone.backbone_loss(final, users, pos, neg)

    def on_epoch_start(self) -> None:
        """The training loop's per-epoch hook, passed on to a backbone with per-epoch state
        (AutoCF's batch counter)."""
        hook = getattr(self.backbone, "on_epoch_start", None)
        if hook is not None:
            hook()

    def embeddings(self):
        """(users (U, out), items (I, out)) for the evaluator: the backbone's cached ones (the
        alignment's projection, decoder and mask token take no part in scoring)."""
        return self.backbone.user_embeddings(), self.backbone.item_embeddings()


class Con(Plain):
    def __init__(self, backbone, sem_user, sem_item, cfg: AlignConfig):
        super().__init__(backbone)
        self.cfg = cfg
        self.register_buffer("s_user", torch.as_tensor(sem_user, dtype=torch.float32))  # (U, S)
        self.register_buffer("s_item", torch.as_tensor(sem_item, dtype=torch.float32))  # (I, S)
        self.proj = mlp(self.s_user.shape[1], backbone.out_dim)

    def loss(self, users, pos, neg):
        final = self.backbone.encode(train=True)
        loss, parts = self.backbone.backbone_loss(final, users, pos, neg)
        u, i = self.backbone.split(final)
        su, si = self.proj(self.s_user), self.proj(self.s_item)  # (U, d), (I, d)
        tau = self.cfg.kd_temperature
        # users: all users are candidates; items: the batch's items, copies included (with
        # mask_duplicates an item's other copies are no negatives of it). Each term runs once
        # per distinct node, weighted by its copies: the per-row sum's value and gradients.
        kd = info_nce_by_id(u, su, users, tau, candidates=su)
        for items in (pos, neg) if self.backbone.uses_negatives else (pos,):
            kd = kd + info_nce_by_id(i, si, items, tau, mask_duplicates=self.cfg.mask_duplicates)
        kd = self.cfg.kd_weight * kd / len(users)
        reg = l2_all(self.proj, self.backbone.cfg.reg_weight)
        parts.update(kd=kd.detach())
        return loss + kd + reg, parts


class Gen(Plain):
    def __init__(self, backbone, sem_user, sem_item, cfg: AlignConfig, seed: int):
        super().__init__(backbone)
        self.cfg = cfg
        sem = np.concatenate([np.asarray(sem_user), np.asarray(sem_item)]).astype(np.float32)
        self.register_buffer("sem", torch.from_numpy(sem))  # (U + I, S)
        d = backbone.ego().shape[1]
        self.mask_token = nn.Parameter(torch.zeros(1, d))
        self.decoder = mlp(backbone.out_dim, sem.shape[1])
        self.rng = np.random.default_rng(seed)

    def loss(self, users, pos, neg):
        ego = self.backbone.ego()
        n = ego.shape[0]
        masked = self.rng.choice(n, size=max(1, int(self.cfg.mask_ratio * n)), replace=False)
        m = torch.from_numpy(masked).to(ego.device)
        keep = torch.ones(n, 1, device=ego.device)
        keep[m] = 0.0
        ego = ego * keep + self.mask_token * (1 - keep)  # masked rows -> mask token
        final = self.backbone.encode(ego, train=True)
        loss, parts = self.backbone.backbone_loss(final, users, pos, neg, ego=ego)
        recon = self.cfg.recon_weight * scl(self.decoder(final[m]), self.sem[m], self.cfg.re_temperature)
        reg = l2_all(self.decoder, self.backbone.cfg.reg_weight) + self.backbone.cfg.reg_weight * self.mask_token.pow(2).sum()
        parts.update(recon=recon.detach())
        return loss + recon + reg, parts


def wrap(kind: str, backbone, sem_user=None, sem_item=None, cfg: AlignConfig | None = None, seed: int = 0):
    """Wrap `backbone` for graph.align = none | con | gen."""
    cfg = cfg or AlignConfig()
    if kind == "none":
        return Plain(backbone)
    if sem_user is None or sem_item is None:
        raise ValueError(f"graph.align={kind} needs semantic user and item embeddings")
    if len(sem_user) != backbone.n_users or len(sem_item) != backbone.n_items:
        raise ValueError(
            f"semantic tables have {len(sem_user)} users / {len(sem_item)} items, the graph "
            f"{backbone.n_users} / {backbone.n_items}: they must come from the same split"
        )
    return Con(backbone, sem_user, sem_item, cfg) if kind == "con" else Gen(backbone, sem_user, sem_item, cfg, seed)
