"""The two batch sources of CLLM4Rec's training loop (recpipe.train.loop's `data` protocol).

One epoch of the loop is one epoch of the reference's schedule (cllm4rec.md 4.5, 5):

    PretrainBatches   epoch e < content_warmup: content batches, unregularised
                      later epochs: every collaborative batch, then every content batch,
                      each regularised toward the other embedding set
    FinetuneBatches   every rec batch (a fresh 20% mask per user and epoch), then every
                      content batch regularised toward the rec set

The loop validates after the epoch's content batches, not between the two halves as the
reference does; the rec scores read only the rec set, which content batches never change, so
the validated state is the same. Batches are dicts: ids and mask [B, T] int64, start [B] (where
the main text begins), kind ("col" | "con" | "rec"), reg (regularise or not); rec batches also
hold target [B, n_items] float32 (multi-hot). The state a checkpoint keeps is the generator and
the epoch counter, so a resumed run draws the same masks and orders.
"""

from __future__ import annotations

import numpy as np

from recpipe.cllm4rec.data import lm_batch, mask_items, pad, rec_prompt


def _chunks(n: int, size: int, rng) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[s:s + size] for s in range(0, n, size)]


class _Source:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.e = 0  # epochs begun

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "e": self.e}

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.e = state["e"]

    def _content(self, reg: bool):
        for idx in _chunks(len(self.docs), self.batch_size, self.rng):
            yield lm_batch([self.docs[i] for i in idx], "con", reg, self.max_tokens)


class PretrainBatches(_Source):
    """users: [(uid, training items ascending)]; docs: [(prompt, main)] (empty: no content LM)."""

    def __init__(self, users, docs, ids, pieces, batch_size: int, seed: int, *, warmup: int,
                 reorder: bool, max_tokens: int):
        super().__init__(seed)
        self.users, self.docs, self.ids, self.pieces = users, docs, ids, pieces
        self.batch_size, self.warmup, self.reorder = batch_size, warmup if docs else 0, reorder
        self.max_tokens = max_tokens

    def __len__(self) -> int:  # an alternating epoch (warm-up epochs are shorter)
        return -(-len(self.users) // self.batch_size) + -(-len(self.docs) // self.batch_size)

    def epoch_len(self) -> int:
        """Batches the next epoch() yields: a warm-up epoch has no collaborative ones. The loop
        asks before each epoch, so data-parallel processes split exactly these."""
        col = -(-len(self.users) // self.batch_size) if self.e >= self.warmup else 0
        return col + -(-len(self.docs) // self.batch_size)

    def epoch(self):
        e, self.e = self.e, self.e + 1
        if e >= self.warmup:
            for idx in _chunks(len(self.users), self.batch_size, self.rng):
                pairs = []
                for i in idx:
                    u, items = self.users[i]
                    items = self.rng.permutation(items) if self.reorder else items
                    pairs.append(([int(self.ids.user(u)), *self.pieces.interacted],
                                  self.ids.item(items).tolist()))
                yield lm_batch(pairs, "col", bool(self.docs), self.max_tokens)
        yield from self._content(reg=e >= self.warmup)


class FinetuneBatches(_Source):
    """users: [(uid, training items ascending)]; docs as PretrainBatches (empty: rec only);
    target "masked" (clean: the hidden items) or "all" (parity: every training item)."""

    def __init__(self, users, docs, ids, pieces, n_items: int, batch_size: int, seed: int, *,
                 mask_ratio: float, target: str, max_tokens: int, keep_suffix: bool):
        super().__init__(seed)
        self.users, self.docs, self.ids, self.pieces = users, docs, ids, pieces
        self.n_items, self.batch_size, self.mask_ratio = n_items, batch_size, mask_ratio
        self.target, self.max_tokens, self.keep_suffix = target, max_tokens, keep_suffix

    def __len__(self) -> int:
        return -(-len(self.users) // self.batch_size) + -(-len(self.docs) // self.batch_size)

    def epoch(self):
        self.e += 1
        for idx in _chunks(len(self.users), self.batch_size, self.rng):
            rows, target = [], np.zeros((len(idx), self.n_items), dtype=np.float32)
            for b, i in enumerate(idx):
                u, items = self.users[i]
                visible, hidden = mask_items(items, self.mask_ratio, self.rng)
                rows.append(rec_prompt(self.ids, self.pieces, u, visible, self.max_tokens,
                                       self.keep_suffix))
                target[b, hidden if self.target == "masked" else items] = 1.0
            ids, mask = pad(rows)
            yield {"ids": ids, "mask": mask, "start": mask.sum(1), "kind": "rec",
                   "reg": bool(self.docs), "target": target}
        yield from self._content(reg=True)
