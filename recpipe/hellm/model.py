"""HeLLM: a LoRA-tuned causal LM reads a history of item soft tokens under a graph-enhanced
prefix and scores every item with a linear head.

Paper: Guo et al., "Multi-Modal Hypergraph Enhanced LLM Learning for Recommendation",
arXiv 2504.10541 (2025). Reference code: https://github.com/Xu107/HeLLM (`llama/HeLLM.py`).
Spec: ../shared/methods/hellm.md sections 5-6.

One forward, for histories hist [B, n] (item ids, -1 = left padding) of B users:

    tokens   [instruct][n soft tokens][response]      Alpaca prompt (recpipe.hellm.prompt)
    soft_t = W2 GELU(W1 [e_MMHCL(i_t) ; e_SASRec(i_t + 1)] + b1) + b2      [B, n, H]
    prefix = GraphPrefix(E_MMHCL(hist))               S key/value slots in every layer
    h      = decoder(...).last_hidden_state[:, -1]    [B, H] final-norm state, last token
    logits = head(h)                                  [B, n_items]  (frozen random by default)
    tied:   logits = h @ item_proj([E_MMHCL ; E_SASRec[1:]])^T             items as soft tokens
    loss   = CE(logits, next item)                    full softmax over all items

Padding: history rows are left-padded inside the item span ([instruct][pads][items][response]),
masked out of attention; positions count real tokens only, so a padded row computes what it
would alone. The padded rows hold item 0 (the reference pads with that real item); clean mode
masks them out of the Gram matrix, parity mode keeps them as the reference does (quirk 3).
The backbone, both embedding tables and (by default) the head are frozen; the trainable parts
are LoRA, the projector and the prefix, kept in float32 as the reference does.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recpipe.hellm.prefix import GraphPrefix, attention_modules, head_dim, keep_prefix_when_checkpointing
from recpipe.llm.scoring import decoder
from recpipe.llm.tokens import embed_with_soft_tokens, position_ids

SOFT = -1  # the placeholder id of a soft token in input_ids (never a vocabulary id)


class HeLLM(nn.Module):
    trainable_state_only = True  # checkpoints hold LoRA + projector + prefix (+ head), not the LM

    def __init__(self, lm, instruct_ids: list[int], response_ids: list[int], mmhcl: np.ndarray,
                 sasrec: np.ndarray, *, prefix_len: int = 10, prefix_dropout: float = 0.3,
                 mask_padding: bool = True, gram_mean: bool = False, item_head: str = "frozen"):
        super().__init__()
        cfg = lm.config
        hidden = getattr(cfg, "hidden_size", None) or cfg.n_embd
        n_items = mmhcl.shape[0]
        self.lm, self.mask_padding, self.hd = lm, mask_padding, head_dim(cfg)
        self.register_buffer("instruct", torch.tensor(instruct_ids, dtype=torch.long), persistent=False)
        self.register_buffer("response", torch.tensor(response_ids, dtype=torch.long), persistent=False)
        # frozen stage-1 tables: MMHCL [n_items, d1]; SASRec [n_items + 1, d2], row 0 = padding
        self.register_buffer("e_mmhcl", torch.as_tensor(mmhcl, dtype=torch.float32), persistent=False)
        self.register_buffer("e_sasrec", torch.as_tensor(sasrec, dtype=torch.float32), persistent=False)
        d_in = mmhcl.shape[1] + sasrec.shape[1]
        self.item_proj = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        n_layers = len(attention_modules(decoder(lm)))
        self.prefix = (GraphPrefix(n_layers, prefix_len, hidden, mmhcl.shape[1], prefix_dropout,
                                   gram_mean) if prefix_len else None)
        if prefix_len:
            keep_prefix_when_checkpointing(decoder(lm))
        # tied: an item's output row is its own soft token, as an LM with tied embeddings
        # scores the next word against its input table; items then share the projector's
        # parameters, where a free row learns only from the samples that target it
        self.head = None if item_head == "tied" else nn.Linear(hidden, n_items, bias=False)
        if self.head is not None:
            self.head.requires_grad_(item_head == "trained")
        self.flops_per_token = self.peak_flops = None  # set by recpipe.hellm.run when measured

    # -- the forward ---------------------------------------------------------------------------
    def hidden(self, hist: torch.Tensor) -> torch.Tensor:
        """Last-token final-norm states [B, H] for histories hist [B, n] (-1 = padding)."""
        keep = hist >= 0                                               # [B, n]
        width = int(keep.sum(1).max())
        hist, keep = hist[:, hist.shape[1] - width:], keep[:, hist.shape[1] - width:]
        ids = hist.clamp(min=0)                                        # padding -> item 0
        B, dev = hist.shape[0], hist.device
        soft = self.item_proj(torch.cat([self.e_mmhcl[ids], self.e_sasrec[ids + 1]], -1))
        input_ids = torch.cat([self.instruct.expand(B, -1), torch.full_like(hist, SOFT),
                               self.response.expand(B, -1)], 1)        # [B, T]
        emb = embed_with_soft_tokens(self.lm, input_ids, SOFT, soft.reshape(-1, soft.shape[-1]))
        ones = lambda n: torch.ones(B, n, dtype=torch.long, device=dev)  # noqa: E731
        mask = torch.cat([ones(len(self.instruct)), keep.long(), ones(len(self.response))], 1)
        dec, kw = decoder(self.lm), {}
        pos = position_ids(mask)                                       # [B, T]
        if self.prefix is not None:
            s = self.prefix.slots
            kw["past_key_values"] = self.prefix(self.e_mmhcl[ids], keep if self.mask_padding
                                                else None, attention_modules(dec), self.hd)
            mask, pos = torch.cat([ones(s), mask], 1), pos + s         # the prefix is always seen
        # use_cache=True keeps the prefix cache on GPT-2 (it drops a cache otherwise); PrefixCache
        # stores nothing, so it costs nothing
        out = dec(inputs_embeds=emb, attention_mask=mask, position_ids=pos,
                  use_cache=self.prefix is not None, **kw)
        return out.last_hidden_state[:, -1]

    def item_table(self) -> torch.Tensor:
        """Every item's soft token [n_items, H] (SASRec row 0 is padding, so item i is row i+1)."""
        return self.item_proj(torch.cat([self.e_mmhcl, self.e_sasrec[1:]], -1))

    def scores(self, hist: torch.Tensor) -> torch.Tensor:
        h = self.hidden(hist)
        if self.head is None:
            table = self.item_table()
            return h.to(table.dtype) @ table.T                         # [B, n_items]
        return self.head(h.to(self.head.weight.dtype))                 # [B, n_items]

    def loss(self, hist: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(self.scores(hist).float(), target)

    def batch_tokens(self, hist, target) -> int:
        """Real tokens of a batch (prefix slots are not tokens): the throughput columns."""
        n = len(self.instruct) + len(self.response)
        return int((hist >= 0).sum()) + n * hist.shape[0]
