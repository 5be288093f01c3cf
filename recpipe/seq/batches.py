"""SASRec's batch source (E4SRec recipe, hellm.md section 4), for recpipe.train.loop.fit.

One training row per user, built from the user's *training* sequence s (LOO: items[:-2], so no
row ever holds a validation or test item):

    seq = the last T items of s[:-1], left-padded       (T,)  input
    pos = the item after each input position: s[1:]     (T,)  0 where seq is padding
    neg = one item per non-padding position, uniform over the catalogue, redrawn while it is
          one of the user's training items (recpipe.train.sampler.NegativeSampler)

All three are in the model's shifted id space (iid + 1, 0 = padding). Each epoch visits every
user with at least two training items once, in a fresh seeded order, in batches of
`batch_size`; the whole epoch's windows and negatives are built in one vectorised pass, where
the reference draws them per user in Python.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recpipe.data.sequences import Sequences


def shift(window: np.ndarray, pad: int) -> np.ndarray:
    """Sequences.window output (pad = n_items) -> model ids (iid + 1, padding 0), int64."""
    w = window.astype(np.int64) + 1
    w[window == pad] = 0
    return w


class SeqBatches:
    def __init__(self, seqs: Sequences, train: sp.csr_matrix, maxlen: int, batch_size: int,
                 seed: int, negatives: bool = True):
        from recpipe.train.sampler import NegativeSampler

        self.seqs, self.maxlen, self.batch_size = seqs, maxlen, batch_size
        self.users = np.flatnonzero(seqs.lengths() >= 2)  # a row needs an input and a target
        self.rng = np.random.default_rng(seed)
        self.negatives = NegativeSampler(train, self.rng) if negatives else None

    def __len__(self) -> int:
        return -(-len(self.users) // self.batch_size)

    def rows(self, users: np.ndarray):
        """(seq, pos, neg) int64 (B, T) for `users`, in model ids."""
        pad = self.seqs.pad
        seq = shift(self.seqs.window(users, self.maxlen, end=-1), pad)  # s[:-1], newest last
        pos = shift(self.seqs.window(users, self.maxlen), pad)  # s[1:] aligned with seq
        pos[seq == 0] = 0  # the window of s keeps one item more on the left: no input for it
        neg = np.zeros_like(pos)
        at = np.nonzero(pos)
        if self.negatives is not None and len(at[0]):
            neg[at] = self.negatives.draw(np.asarray(users, np.int64)[at[0]]) + 1
        return seq, pos, neg

    def epoch(self):
        order = self.users[self.rng.permutation(len(self.users))]
        seq, pos, neg = self.rows(order)
        for s in range(0, len(order), self.batch_size):
            b = slice(s, s + self.batch_size)
            yield seq[b], pos[b], neg[b]

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state
