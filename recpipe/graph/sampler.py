"""BPR training triples: every training pair once per epoch, one uniform negative each.

Negatives are redrawn every epoch and rejected when (u, j) is a training pair, as in the
reference, but vectorised: membership is a binary search in the sorted pair keys, and only
the rejected draws are redrawn (rlmrec.md section 5.1 and quirk 7).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class BPRSampler:
    def __init__(self, train: sp.csr_matrix, batch_size: int, seed: int):
        coo = train.tocoo()
        self.users = coo.row.astype(np.int64)
        self.pos = coo.col.astype(np.int64)
        self.n_items = train.shape[1]
        self.keys = np.sort(self.users * self.n_items + self.pos)
        # a user with every item in train has no negative: never redraw for them (the loop
        # below would spin forever); they keep their uniform draw, a positive
        self.full = np.diff(train.indptr) >= self.n_items
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return -(-len(self.users) // self.batch_size)

    def _negatives(self, users: np.ndarray) -> np.ndarray:
        neg = self.rng.integers(0, self.n_items, size=len(users))
        bad = np.arange(len(users))
        if self.full.any():
            bad = bad[~self.full[users]]
        while len(bad):
            keys = users[bad] * self.n_items + neg[bad]
            hit = np.searchsorted(self.keys, keys)
            hit = np.minimum(hit, len(self.keys) - 1)
            bad = bad[self.keys[hit] == keys]
            neg[bad] = self.rng.integers(0, self.n_items, size=len(bad))
        return neg

    def epoch(self):
        """Yield (users, pos, neg) int64 arrays of up to `batch_size` triples, shuffled."""
        order = self.rng.permutation(len(self.users))
        u, p = self.users[order], self.pos[order]
        n = self._negatives(u)
        for s in range(0, len(u), self.batch_size):
            yield u[s:s + self.batch_size], p[s:s + self.batch_size], n[s:s + self.batch_size]

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state
