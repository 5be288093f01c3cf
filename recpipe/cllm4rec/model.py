"""CLLM4Rec: a frozen causal LM whose only trained weights are user and item ID embeddings.

Paper: Y. Zhu, L. Wu, Q. Guo, L. Hong, J. Li, "Collaborative Large Language Model for
Recommender Systems", WWW 2024 (arXiv 2311.01343).
Reference code: https://github.com/yaochenzhu/LLM4Rec (src/libs/model.py, src/training.py,
src/finetuning.py). Spec: ../shared/methods/cllm4rec.md sections 3-6.

Two embedding sets sit on the same frozen backbone, each one table of n_users + n_items rows
laid out as the ID tokens (users first; recpipe.llm.tokens.IdTokens):

    "col"   collaborative LM over item lists, output restricted to items through a head tied
            to its item rows; after finetuning this is the *rec* set
    "con"   content LM over ID-prompted reviews, through the backbone's own vocabulary head

A token id below user_base reads the frozen vocabulary table; an ID token reads the set's row.
The mutual regulariser pulls one set toward the other, whose rows are detached (stop-gradient):
parity sums ||a - sg(b)||^2 over batch x tokens x hidden (the reference's MSELoss(sum));
clean takes the mean of ||a_r - sg(b_r)||^2 over the batch's unique rows r.
Shapes: B batch, T tokens, H hidden, I items, V vocabulary.
"""

from __future__ import annotations

import torch
from torch import nn

from recpipe.llm.chunked import chunked_cross_entropy
from recpipe.llm.scoring import decoder
from recpipe.llm.tokens import position_ids

SETS = ("col", "con")


class CLLM4Rec(nn.Module):
    trainable_state_only = True  # checkpoints hold the embedding sets, not the frozen LM
    # a collaborative batch leaves the content set without a gradient and the reverse (the
    # regulariser stops it): data-parallel training must expect unused parameters
    ddp_unused_parameters = True

    def __init__(self, lm, ids, mode: str = "clean", lambda_v: float = 1.0, ce_chunk: int = 1024,
                 content: bool = True):
        super().__init__()
        self.lm, self.ids, self.mode = lm, ids, mode
        self.lambda_v, self.ce_chunk = lambda_v, ce_chunk
        lm.requires_grad_(False)
        hidden = lm.get_input_embeddings().weight.shape[1]
        n = ids.n_users + ids.n_items
        # N(0, 0.02), the reference's init; float32 whatever the backbone's dtype
        self.sets = nn.ModuleDict({s: nn.Embedding(n, hidden) for s in SETS[:1 + content]})
        for table in self.sets.values():
            nn.init.normal_(table.weight, std=0.02)
        self.flops_per_token = self.peak_flops = None  # set by recpipe.cllm4rec.run

    # -- inputs -----------------------------------------------------------------------------
    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Table rows of the ID tokens in ids (any shape), -1 elsewhere."""
        is_id = (ids >= self.ids.user_base) & (ids < self.ids.end)
        return torch.where(is_id, ids - self.ids.user_base, -1)

    def embed(self, name: str, ids: torch.Tensor) -> torch.Tensor:
        """[B, T, H] inputs: vocabulary rows for words, set `name`'s rows for ID tokens."""
        wte = self.lm.get_input_embeddings()
        r = self.rows(ids)
        emb = wte(ids.masked_fill(r >= 0, 0))                                # [B, T, H]
        at = (r >= 0).nonzero(as_tuple=True)
        return emb.index_put(at, self.sets[name](r[at]).to(emb.dtype))

    def hidden(self, name: str, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Final-norm hidden states [B, T, H] of right-padded ids [B, T]."""
        out = decoder(self.lm)(inputs_embeds=self.embed(name, ids), attention_mask=mask,
                               position_ids=position_ids(mask), use_cache=False)
        return out.last_hidden_state

    def item_rows(self, name: str) -> torch.Tensor:
        return self.sets[name].weight[self.ids.n_users:]                     # [I, H]

    # -- losses -----------------------------------------------------------------------------
    def _targets(self, mask, start):
        """(b, t) of the positions whose next token is a main-text target: t + 1 inside the
        main text; parity skips the first main token (the reference's quirk 4)."""
        first = start + (1 if self.mode == "parity" else 0)                  # [B]
        nxt = torch.arange(1, mask.shape[1] + 1, device=mask.device)          # t + 1
        keep = (nxt >= first[:, None]) & torch.cat([mask[:, 1:], mask[:, :1] * 0], 1).bool()
        return keep.nonzero(as_tuple=True)

    def regularizer(self, name: str, other: str, rows: torch.Tensor) -> torch.Tensor:
        """lambda_V x the distance of set `name` to the detached set `other` over table rows
        `rows` (1-D, repeats allowed: one per token); module docstring for the two forms."""
        if self.mode == "clean":
            rows = rows.unique()
        a, b = self.sets[name](rows), self.sets[other](rows).detach()           # [n, H]
        sq = (a - b).pow(2).sum(-1)                                          # [n]
        d = sq.sum() if self.mode == "parity" else sq.mean() if len(rows) else sq.sum()
        return self.lambda_v * d

    def lm_loss(self, name: str, ids, mask, start, reg: bool):
        """Collaborative (name "col": next item over item rows) or content ("con": next token
        over the vocabulary) language-modelling loss, plus the regulariser when reg."""
        h = self.hidden(name, ids, mask)                                     # [B, T, H]
        b, t = self._targets(mask, start)
        target = ids[b, t + 1]
        if name == "col":
            w, bias, target = self.item_rows(name), None, target - self.ids.item_base
        else:
            head = self.lm.get_output_embeddings()
            w, bias = head.weight, getattr(head, "bias", None)
        ce = chunked_cross_entropy(h[b, t], w.to(h.dtype), target, self.ce_chunk,
                                   None if bias is None else bias)
        if not reg:
            return ce, {f"{name}_ce": ce.detach()}
        r = self.rows(ids)[mask.bool()]
        penalty = self.regularizer(name, "con" if name == "col" else "col", r[r >= 0])
        return ce + penalty, {f"{name}_ce": ce.detach(), f"{name}_reg": penalty.detach()}

    def scores(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, I] item logits of the rec ("col") set at each row's last real token."""
        h = self.hidden("col", ids, mask)
        last = h[torch.arange(len(h), device=h.device), mask.sum(1) - 1]      # [B, H]
        return last.float() @ self.item_rows("col").T

    def rec_loss(self, ids, mask, target, reg: bool):
        """Multinomial NLL of the multi-hot target [B, I] (mean over rows), plus the regulariser
        over the prompt's ID tokens and the target items."""
        nll = -(torch.log_softmax(self.scores(ids, mask), -1) * target).sum(-1).mean()
        if not reg:
            return nll, {"rec_nll": nll.detach()}
        r = self.rows(ids)[mask.bool()]
        items = target.nonzero(as_tuple=True)[1] + self.ids.n_users
        penalty = self.regularizer("col", "con", torch.cat([r[r >= 0], items]))
        return nll + penalty, {"rec_nll": nll.detach(), "rec_reg": penalty.detach()}

    def loss(self, ids, mask, start, kind: str, reg: bool, target=None):
        """The loop's entry point: one batch of recpipe.cllm4rec.batches."""
        if kind == "rec":
            return self.rec_loss(ids, mask, target, reg)
        return self.lm_loss(kind, ids, mask, start, reg)

    def batch_tokens(self, ids, mask, start, kind, reg, target=None) -> int:
        return int(mask.sum())
