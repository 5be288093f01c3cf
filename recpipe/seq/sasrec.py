"""SASRec: W.-C. Kang, J. McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018.

Trained with the E4SRec recipe (HeLLM's stage 1b, hellm.md section 4): HestiaSky/E4SRec,
`baseline/{model,main_sequential,data_utils}.py` (https://github.com/HestiaSky/E4SRec).

Ids: the model works in the E4SRec/HeLLM id space, item iid -> row iid + 1 of `item`, row 0 =
padding. So the exported table `item.weight` is `[n_items + 1, d]` and is looked up with
`ids + 1`, exactly as HeLLM reads `SASRec_item_embedding.pt`. Row 0 never receives a gradient
(padding inputs are zeroed, padding targets are left out of the loss), so it keeps its init.

    x = dropout(E[seq] * sqrt(d) + P[0..T))        seq: (B, T) shifted ids, left-padded with 0
    x = x * keep                                    keep: (B, T, 1), 0 at padding
    per block:  q = LN(x); x = q + MHA(q, x, x, causal); x = LN(x); x = x + FFN(x); x = x * keep
    h = LN(x)                                       (B, T, d); h_t scores the item after seq[:t+1]
    score(t, j) = h_t . E[j + 1]

Loss `bce` (the reference's): BCE(pos logit, 1) + BCE(neg logit, 0), each a mean over the
non-padding positions of the batch, one sampled negative per position. `ce` (option):
softmax cross-entropy over all items at every non-padding position.

Parameter names follow the reference (`embedding`, `pos_embedding`, `attention_layers`, ...), so
a reference state_dict loads into this class: benchmarks/bench_sasrec.py uses that to score the
reference's trained model with our evaluator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from recpipe.seq.dropout import FastDropout
from recpipe.seq.params import SASRecConfig


class PointwiseFFN(torch.nn.Sequential):
    """The reference's Conv1d(k=1) -> Dropout -> ReLU -> Conv1d(k=1) -> Dropout, with its
    parameter names and init, run as two matmuls on (B, T, d): a k=1 convolution is a Linear,
    and CPU conv kernels (mkldnn) made the backward ~5x slower than the matmul."""

    def __init__(self, d: int, dropout: float):
        nn = torch.nn
        super().__init__(nn.Conv1d(d, d, 1), FastDropout(dropout), nn.ReLU(), nn.Conv1d(d, d, 1),
                         FastDropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, T, d)
        c1, drop1, relu, c2, drop2 = self
        x = relu(drop1(F.linear(x, c1.weight[:, :, 0], c1.bias)))
        return drop2(F.linear(x, c2.weight[:, :, 0], c2.bias))


def attend(mha: torch.nn.MultiheadAttention, q_in: torch.Tensor, kv: torch.Tensor,
           blocked: torch.Tensor, drop: FastDropout) -> torch.Tensor:
    """`mha(q_in, kv, kv, attn_mask=blocked)` with `mha`'s own weights, written out so the
    attention weights go through FastDropout. q_in, kv: (B, T, d); blocked: (T, T) bool."""
    b, t, d = q_in.shape
    h = mha.num_heads
    w, bias = mha.in_proj_weight, mha.in_proj_bias  # (3d, d), (3d,): q, k, v stacked
    q = F.linear(q_in, w[:d], bias[:d]).view(b, t, h, d // h).transpose(1, 2)  # (B, h, T, dh)
    k = F.linear(kv, w[d:2 * d], bias[d:2 * d]).view(b, t, h, d // h).transpose(1, 2)
    v = F.linear(kv, w[2 * d:], bias[2 * d:]).view(b, t, h, d // h).transpose(1, 2)
    att = (q @ k.transpose(-1, -2)) * (d // h) ** -0.5  # (B, h, T, T)
    att = drop(att.masked_fill(blocked, float("-inf")).softmax(-1))
    y = (att @ v).transpose(1, 2).reshape(b, t, d)  # (B, T, d)
    return mha.out_proj(y)


class SASRec(torch.nn.Module):
    def __init__(self, n_items: int, cfg: SASRecConfig, seed: int = 0):
        super().__init__()
        if cfg.dim % cfg.heads:
            raise ValueError(f"sasrec.model.dim={cfg.dim} is not divisible by heads={cfg.heads}")
        nn, d = torch.nn, cfg.dim
        self.cfg, self.n_items = cfg, n_items
        self.embedding = nn.Embedding(n_items + 1, d)  # row 0 = padding
        self.pos_embedding = nn.Embedding(cfg.maxlen, d)
        self.emb_dropout = FastDropout(cfg.dropout)
        self.attn_dropout = FastDropout(cfg.dropout)  # on the attention weights, as MHA's own
        self.attention_layernorms = nn.ModuleList(nn.LayerNorm(d, eps=1e-8) for _ in range(cfg.layers))
        self.attention_layers = nn.ModuleList(
            nn.MultiheadAttention(d, cfg.heads, cfg.dropout, batch_first=True) for _ in range(cfg.layers))
        self.forward_layernorms = nn.ModuleList(nn.LayerNorm(d, eps=1e-8) for _ in range(cfg.layers))
        self.forward_layers = nn.ModuleList(PointwiseFFN(d, cfg.dropout) for _ in range(cfg.layers))
        self.last_layernorm = nn.LayerNorm(d, eps=1e-8)
        # the reference: xavier-normal for every parameter of >= 2 dims (embeddings included),
        # torch defaults for the rest; drawn from one seeded generator, in parameter order
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                if p.dim() >= 2:
                    fan_out, fan_in = p.shape[0], p[0].numel()
                    std = math.sqrt(2.0 / (fan_in + fan_out))
                    p.copy_(torch.randn(p.shape, generator=g) * std)
        self.register_buffer("causal", ~torch.tril(torch.ones(cfg.maxlen, cfg.maxlen, dtype=torch.bool)),
                             persistent=False)  # (T, T) True = may not attend

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """seq (B, T) shifted ids, 0 = padding, newest last -> h (B, T, d)."""
        t = seq.shape[1]
        x = self.embedding(seq) * self.cfg.dim ** 0.5 + self.pos_embedding.weight[:t]
        x = self.emb_dropout(x)
        keep = (seq != 0).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        x = x * keep
        mask = self.causal[:t, :t]
        for norm_a, attn, norm_f, ffn in zip(self.attention_layernorms, self.attention_layers,
                                             self.forward_layernorms, self.forward_layers):
            q = norm_a(x)
            a = attend(attn, q, x, mask, self.attn_dropout)
            x = norm_f(q + a)
            x = (x + ffn(x)) * keep
        return self.last_layernorm(x)

    def loss(self, seq, pos, neg):
        """seq, pos, neg: (B, T) shifted ids; pos = 0 where a position has no target."""
        h = self.encode(seq)
        at = pos != 0  # (B, T) positions with a target
        h = h[at]  # (N, d)
        p = pos[at]  # (N,)
        if self.cfg.loss == "ce":
            logits = h @ self.embedding.weight[1:].T  # (N, n_items)
            return F.cross_entropy(logits, p - 1)
        pl = (h * self.embedding(p)).sum(-1)  # (N,)
        nl = (h * self.embedding(neg[at])).sum(-1)  # (N,)
        return (F.binary_cross_entropy_with_logits(pl, torch.ones_like(pl))
                + F.binary_cross_entropy_with_logits(nl, torch.zeros_like(nl)))

    @torch.no_grad()
    def scores(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, n_items) scores of every item after the whole of `seq` (its last position)."""
        h = self.encode(seq)[:, -1]  # (B, d)
        return h @ self.embedding.weight[1:].T

    def item_table(self) -> torch.Tensor:
        """[n_items + 1, d], row 0 = padding: the export HeLLM reads with ids + 1."""
        return self.embedding.weight.detach()
