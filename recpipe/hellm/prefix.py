"""HeLLM's graph-enhanced prefix (hellm.md section 5.4), built for any HF decoder.

Reference: Xu107/HeLLM `llama/HeLLM.py` (`adapter_forward`, `PrefixEncoder`),
https://github.com/Xu107/HeLLM

For a batch of histories with MMHCL item embeddings E [B, n, d]:

    G   = E^T E                       [B, d, d]  (clean mode: padded rows masked out of E)
    k_g = MLP_k(flatten G)            [B, H]     Linear(d² -> H) GELU Dropout Linear GELU Dropout
    K   = RMSNorm(P_K + k_g)          [B, L, S, H]   P_K ~ N(0, 1), shared by the batch
    layer l's prefix keys   = W_k^l K[:, l]    (the layer's frozen projection, no RoPE)
    (and the same for V with MLP_v, P_V, W_v^l)

The prefix enters each attention layer as a key/value cache of S slots that every token sees.
HF rotates keys before it caches them, so unrotated prefix keys are exactly "no RoPE"; real
tokens then take positions cumsum(mask) - 1 + S. `PrefixCache` is the cache: its `update`
returns prefix + new keys without storing anything, so a forward can be recomputed (gradient
checkpointing) and gives the same keys, and gradients reach P_K, P_V and the MLPs through it.
transformers' checkpointed layers keep such a read-only cache once told so
(`keep_prefix_when_checkpointing`); GPT-2 drops it before its layers, so there the prefix and
gradient checkpointing exclude each other.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.cache_utils import Cache, DynamicLayer


class PrefixLayer(DynamicLayer):
    """One layer's fixed prefix keys and values [B, heads_kv, S, head_dim]."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.keys, self.values, self.is_initialized = keys, values, True

    def update(self, key_states, value_states, *args, **kwargs):
        # stateless: a recomputed forward sees the same prefix (never prefix + old tokens)
        return torch.cat([self.keys, key_states], -2), torch.cat([self.values, value_states], -2)


def prefix_cache(keys: list, values: list) -> Cache:
    return Cache(layers=[PrefixLayer(k, v) for k, v in zip(keys, values)])


def decoder_layers(decoder) -> list:
    layers = getattr(decoder, "layers", None) or getattr(decoder, "h", None)
    if layers is None:
        raise ValueError(f"{type(decoder).__name__}: no `layers` or `h` list of decoder layers")
    return list(layers)


def attention_modules(decoder) -> list:
    """Each decoder layer's attention module (LLaMA/Qwen2/Mistral: self_attn; GPT-2: attn)."""
    return [getattr(layer, "self_attn", None) or layer.attn for layer in decoder_layers(decoder)]


def keep_prefix_when_checkpointing(decoder) -> None:
    """transformers drops a layer's cache when it recomputes the layer (gradient checkpointing)
    unless the layer only reads it; PrefixLayer only reads, so say so per layer instance."""
    for layer in decoder_layers(decoder):
        layer._can_checkpoint_with_cache = True


def project_kv(attn, k_in: torch.Tensor, v_in: torch.Tensor, head_dim: int):
    """One attention module's frozen key projection of k_in and value projection of v_in
    ([B, S, H] each): keys, values [B, heads_kv, S, head_dim], with the per-head key norm where
    the model has one (Qwen3, Gemma3) and no rotary embedding."""
    B, S, H = k_in.shape
    if hasattr(attn, "k_proj"):
        dt = attn.k_proj.weight.dtype
        k, v = attn.k_proj(k_in.to(dt)), attn.v_proj(v_in.to(dt))
    elif hasattr(attn, "c_attn"):  # GPT-2: one fused q|k|v projection
        dt = attn.c_attn.weight.dtype
        k = attn.c_attn(k_in.to(dt)).split(H, dim=2)[1]
        v = attn.c_attn(v_in.to(dt)).split(H, dim=2)[2]
    else:
        raise ValueError(f"{type(attn).__name__}: no k_proj/v_proj or c_attn to project the prefix")
    k = k.view(B, S, -1, head_dim)
    if getattr(attn, "k_norm", None) is not None:
        k = attn.k_norm(k)
    return k.transpose(1, 2), v.view(B, S, -1, head_dim).transpose(1, 2)


def head_dim(config) -> int:
    hidden = getattr(config, "hidden_size", None) or config.n_embd
    heads = getattr(config, "num_attention_heads", None) or config.n_head
    return getattr(config, "head_dim", None) or hidden // heads


class GraphPrefix(nn.Module):
    """P_K, P_V and the two Gram MLPs; `forward(E, keep)` gives the per-layer caches."""

    def __init__(self, n_layers: int, slots: int, hidden: int, item_dim: int, dropout: float,
                 gram_mean: bool = False, eps: float = 1e-5):
        super().__init__()
        self.slots, self.gram_mean = slots, gram_mean

        def mlp():
            return nn.Sequential(nn.Linear(item_dim * item_dim, hidden), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Dropout(dropout))
        self.k_mlp, self.v_mlp = mlp(), mlp()
        self.p_k = nn.Parameter(torch.randn(n_layers, slots, hidden))  # N(0, 1) as the reference
        self.p_v = nn.Parameter(torch.randn(n_layers, slots, hidden))
        self.k_norm, self.v_norm = nn.RMSNorm(hidden, eps=eps), nn.RMSNorm(hidden, eps=eps)

    def gram(self, emb: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        """emb [B, n, d], keep [B, n] bool or None (parity: every row counts) -> [B, d*d]."""
        if keep is not None:
            emb = emb * keep.unsqueeze(-1).to(emb.dtype)
        g = emb.transpose(1, 2) @ emb  # [B, d, d]
        if self.gram_mean:
            n = keep.sum(1) if keep is not None else torch.full(emb.shape[:1], emb.shape[1])
            g = g / n.clamp(min=1).to(g.dtype).view(-1, 1, 1)
        return g.flatten(1)

    def forward(self, emb, keep, attns: list, hd: int) -> Cache:
        g = self.gram(emb, keep)                                    # [B, d²]
        k = self.k_norm(self.p_k + self.k_mlp(g)[:, None, None])    # [B, L, S, H]
        v = self.v_norm(self.p_v + self.v_mlp(g)[:, None, None])
        keys, values = zip(*(project_kv(a, k[:, i].contiguous(), v[:, i].contiguous(), hd)
                             for i, a in enumerate(attns)))
        return prefix_cache(list(keys), list(values))
