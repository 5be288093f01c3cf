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


GROUP = 50  # batches per length-sorted window (HF's LengthGroupedSampler uses 50 too)


def _chunks(n: int, size: int, rng, lengths: np.ndarray | None = None) -> list[np.ndarray]:
    """One epoch's index batches, in random order. With `lengths` [n], rows of similar length
    share a batch, since every row is padded to the batch's longest and padding costs as much
    compute as text: a random permutation is cut into windows of GROUP batches, each window is
    sorted by length and cut into batches, and the batches are shuffled. Batches still mix
    users at random within a window, and the last one is the only short one."""
    order = rng.permutation(n)
    if lengths is None:
        return [order[s:s + size] for s in range(0, n, size)]
    w = size * GROUP
    order = np.concatenate([o[np.argsort(-lengths[o], kind="stable")]
                            for o in np.split(order, range(w, n, w))])
    batches = [order[s:s + size] for s in range(0, n, size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class _Source:
    def __init__(self, seed: int, group: bool = False):
        self.rng = np.random.default_rng(seed)
        self.e = 0  # epochs begun
        self.group = group  # length-grouped batches (_chunks)

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "e": self.e}

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.e = state["e"]

    def _lengths(self, kind: str):
        """Row lengths for _chunks (None: plain random batches). Users: their item count (the
        prompt's other tokens are the same for all); documents: prompt + text tokens."""
        if not self.group:
            return None
        if kind == "users":
            return np.array([len(items) for _, items in self.users])
        return np.array([min(len(p) + len(m), self.max_tokens) for p, m in self.docs])

    def _content(self, reg: bool):
        for idx in _chunks(len(self.docs), self.batch_size, self.rng, self._lengths("docs")):
            yield lm_batch([self.docs[i] for i in idx], "con", reg, self.max_tokens)


class PretrainBatches(_Source):
    """users: [(uid, training items ascending)]; docs: [(prompt, main)] (empty: no content LM)."""

    def __init__(self, users, docs, ids, pieces, batch_size: int, seed: int, *, warmup: int,
                 reorder: bool, max_tokens: int, group: bool = False):
        super().__init__(seed, group)
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
            for idx in _chunks(len(self.users), self.batch_size, self.rng, self._lengths("users")):
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
                 mask_ratio: float, target: str, max_tokens: int, keep_suffix: bool,
                 group: bool = False):
        super().__init__(seed, group)
        self.users, self.docs, self.ids, self.pieces = users, docs, ids, pieces
        self.n_items, self.batch_size, self.mask_ratio = n_items, batch_size, mask_ratio
        self.target, self.max_tokens, self.keep_suffix = target, max_tokens, keep_suffix

    def __len__(self) -> int:
        return -(-len(self.users) // self.batch_size) + -(-len(self.docs) // self.batch_size)

    def epoch(self):
        self.e += 1
        for idx in _chunks(len(self.users), self.batch_size, self.rng, self._lengths("users")):
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
