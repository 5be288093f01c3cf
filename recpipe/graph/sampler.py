"""BPR training triples: every training pair once per epoch, one uniform negative each.

Negatives are redrawn every epoch and rejected when (u, j) is a training pair, as in the
reference (rlmrec.md section 5.1 and quirk 7), by the shared `recpipe.train.sampler`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recpipe.train.sampler import NegativeSampler


class BPRSampler:
    def __init__(self, train: sp.csr_matrix, batch_size: int, seed: int):
        coo = train.tocoo()
        self.users = coo.row.astype(np.int64)
        self.pos = coo.col.astype(np.int64)
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.negatives = NegativeSampler(train, self.rng)

    def __len__(self) -> int:
        return -(-len(self.users) // self.batch_size)

    def epoch(self):
        """Yield (users, pos, neg) int64 arrays of up to `batch_size` triples, shuffled."""
        order = self.rng.permutation(len(self.users))
        u, p = self.users[order], self.pos[order]
        n = self.negatives.draw(u)
        for s in range(0, len(u), self.batch_size):
            yield u[s:s + self.batch_size], p[s:s + self.batch_size], n[s:s + self.batch_size]

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state
