"""HUM: a causal LM with LoRA as a shared two-tower encoder of user histories and item titles.

Paper: H. Bao et al., "Heterogeneous User Modeling for LLM-based Recommendation", RecSys 2025
(arXiv 2507.04626). Reference code: https://github.com/Honghui-BAO/HUM (hum.py, HUM_Trainer.py,
data_sequential.py at 62db79b). Spec: ../shared/methods/hum.md sections 3-4.

A sequence's embedding is the last hidden state (after the final norm) at its <|emb|> token,
the compression token that ends the text (recpipe.hum.data). Users and items go through the
same decoder and adapters; the score is a dot product / temperature. Training: per sample,
cross-entropy of the target against its in-domain negatives, with items encoded in the same
step (with gradients); the batch's losses are combined by domain weights (recpipe.hum.domains)
or, without them, averaged. Only the decoder runs: the vocabulary head the reference computes
and discards (~2 GB of logits per step on Qwen2.5) is skipped; the hidden states are the same.
Shapes: B samples, N candidates per sample (target first, then negatives), M distinct items in
the batch, T tokens, H hidden.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recpipe.llm.scoring import decoder


class HUM(nn.Module):
    trainable_state_only = True  # checkpoints hold LoRA and the domain weights, not the base
    # buffers a checkpoint keeps (recpipe.train.checkpoint): the domain weights, the centres
    state_buffers = ("weights.", "means")

    def __init__(self, lm, emb_id: int, temperature: float = 1.0, weights: nn.Module | None = None,
                 score: str = "dot"):
        super().__init__()
        self.lm, self.emb_id, self.temperature = lm, emb_id, temperature
        # dot (the reference) | cosine: embeddings are L2-normalised, so a score is a cosine
        # and the temperature alone sets the logits' scale
        self.normalize = score == "cosine"
        self.weights = weights  # DomainWeights, or None: the plain mean (the ablation)
        # (2, H): the user (row 0) and item (row 1) centres subtracted before scoring; zeros
        # (subtracting nothing) unless fit_means sets them (hum.center: mean)
        cfg = lm.config
        self.register_buffer("means", torch.zeros(2, getattr(cfg, "hidden_size", None) or cfg.n_embd))
        self.flops_per_token = self.peak_flops = None  # set by recpipe.hum.run

    def encode(self, ids: torch.Tensor, mask: torch.Tensor, side: int) -> torch.Tensor:
        """(B, H) float32: the hidden state at <|emb|> of each right-padded row (B, T), less the
        centre of its side (0 users, 1 items), L2-normalised under the cosine score."""
        # use_cache=False: no key/value cache is built (nothing is generated)
        h = decoder(self.lm)(input_ids=ids, attention_mask=mask,
                             use_cache=False).last_hidden_state  # (B, T, H)
        at = mask.sum(-1) - 2  # <|emb|> is the last real token but one (eos closes the text)
        e = h[torch.arange(len(ids), device=ids.device), at].float() - self.means[side]
        return F.normalize(e, dim=-1) if self.normalize else e

    def loss(self, u_ids, u_mask, i_ids, i_mask, cand, domain):
        """u_*: (B, Tu) users; i_*: (M, Ti) the batch's distinct items; cand (B, N) indices
        into them, column 0 the target; domain (B,) the target's domain index."""
        u = self.encode(u_ids, u_mask, 0)  # (B, H)
        v = self.encode(i_ids, i_mask, 1)  # (M, H)
        logits = torch.einsum("bh,bnh->bn", u, v[cand]) / self.temperature  # (B, N)
        target = torch.zeros(len(u), dtype=torch.long, device=u.device)
        losses = F.cross_entropy(logits, target, reduction="none")  # (B,)
        if self.weights is None:
            return losses.mean()
        return self.weights.combine(losses, domain)

    def on_epoch_start(self) -> None:  # parity: the reference re-creates its weights per epoch
        if self.weights is not None and getattr(self, "reset_each_epoch", False):
            self.weights.reset()

    def on_step(self, steps: int) -> None:  # the training loop calls it after each step
        if self.weights is not None:
            self.weights.on_step(steps)

    def batch_tokens(self, u_ids, u_mask, i_ids, i_mask, cand, domain) -> int:
        return int(u_mask.sum()) + int(i_mask.sum())

    @torch.no_grad()
    def encode_all(self, seqs: list[list[int]], pad, batch_size: int, device,
                   side: int) -> torch.Tensor:
        """(len(seqs), H) float32 on `device`: every sequence once, sorted by length so a batch
        pads little, in the given order. `pad(list) -> (ids, mask)` numpy (recpipe.hum.data);
        side 0 = users, 1 = items (recpipe.hum.model.HUM.encode)."""
        order = np.argsort([len(s) for s in seqs], kind="stable")
        out = None
        for at in range(0, len(order), batch_size):
            rows = order[at:at + batch_size]
            ids, mask = pad([seqs[r] for r in rows])
            v = self.encode(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device),
                            side)
            if out is None:
                out = torch.empty(len(seqs), v.shape[1], dtype=torch.float32, device=device)
            out[torch.from_numpy(rows).to(device)] = v
        return out

    @torch.no_grad()
    def fit_means(self, users: list[list[int]], items: list[list[int]], pad, batch_size: int,
                  device) -> None:
        """Set the centres to the mean raw (uncentred, unnormalised) states of the token
        sequences `users` and `items`, encoded in eval mode (no dropout)."""
        was, norm = self.training, self.normalize
        self.eval()
        self.normalize = False
        self.means.zero_()
        try:
            mu = [self.encode_all(s, pad, batch_size, device, k).mean(0)
                  for k, s in enumerate((users, items))]
        finally:
            self.train(was)
            self.normalize = norm
        self.means.copy_(torch.stack(mu))
