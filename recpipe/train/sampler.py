"""Negative sampling for every model: vectorised, seeded, positives (and targets) excluded.

One draw per row of `users`, from one of three distributions:
- uniform over the catalogue (RLMRec's BPR, rlmrec.md 5.1: redraw while (u, j) is a training pair);
- popularity, proportional to training counts ** `alpha`;
- uniform within an item set per row (HUM's in-domain negatives: the target's domain).

Rejection is vectorised: membership is a binary search in the sorted keys u * n_items + i of
the training pairs, and only the rejected rows are redrawn, so a round costs one numpy pass.
The uniform draw consumes the generator exactly as the graph and BPR-MF samplers did before
this module existed (`integers(0, n_items, size)` for all rows, then for the rejected ones),
so results under a seed did not move.

A row that has no valid negative (a user who has every item, or every item of its set) would
be redrawn forever; after `CHECK_AFTER` rounds the rows still rejected are checked, and the
exhausted ones keep their last draw (a positive: a zero-gradient BPR term) instead.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

CHECK_AFTER = 20  # rounds before looking for rows that cannot be satisfied


def pair_keys(train: sp.csr_matrix) -> np.ndarray:
    """Sorted int64 keys u * n_items + i of the nonzero (user, item) pairs of `train`."""
    coo = train.tocoo()
    return np.sort(coo.row.astype(np.int64) * train.shape[1] + coo.col.astype(np.int64))


class NegativeSampler:
    """`draw(users, targets=None, sets=None) -> (len(users),) int64 item ids`.

    train: (n_users, n_items) CSR of training pairs (never drawn for that user).
    dist: "uniform" | "popularity" (counts of `train` ** alpha) | "set" (uniform within
    `item_sets[sets[r]]` for row r). `rng`: a numpy Generator owned by the caller, whose state
    the caller checkpoints.
    """

    def __init__(self, train: sp.csr_matrix, rng: np.random.Generator, dist: str = "uniform",
                 alpha: float = 1.0, item_sets: list[np.ndarray] | None = None):
        if dist not in ("uniform", "popularity", "set"):
            raise ValueError(f"negative sampling {dist!r}: choose uniform, popularity or set")
        if dist == "set" and not item_sets:
            raise ValueError("dist='set' needs item_sets (one array of item ids per set)")
        self.train = train.tocsr()
        self.n_items = train.shape[1]
        self.keys = pair_keys(self.train)
        self.rng = rng
        self.dist = dist
        if dist == "popularity":
            counts = np.asarray(self.train.sum(0)).ravel().astype(np.float64) ** alpha
            self.cdf = np.cumsum(counts) / counts.sum()  # (n_items,) for inverse-CDF draws
        self.sets = [np.asarray(s, dtype=np.int64) for s in item_sets] if item_sets else None

    def _sample(self, rows: np.ndarray, sets: np.ndarray | None) -> np.ndarray:
        """Fresh candidates for `rows` (indices into the batch)."""
        if self.dist == "uniform":
            return self.rng.integers(0, self.n_items, size=len(rows))
        if self.dist == "popularity":
            u = self.rng.random(len(rows))
            return np.minimum(np.searchsorted(self.cdf, u, side="right"), self.n_items - 1)
        out = np.empty(len(rows), dtype=np.int64)
        sid = sets[rows]
        for s in np.unique(sid):  # one vectorised draw per set (a handful of domains)
            at = np.flatnonzero(sid == s)
            pool = self.sets[s]
            out[at] = pool[self.rng.integers(0, len(pool), size=len(at))]
        return out

    def _rejected(self, users: np.ndarray, neg: np.ndarray, targets) -> np.ndarray:
        """(len(users),) bool: the draw is a training pair of that user, or its target."""
        keys = users * self.n_items + neg
        at = np.minimum(np.searchsorted(self.keys, keys), max(len(self.keys) - 1, 0))
        bad = self.keys[at] == keys if len(self.keys) else np.zeros(len(keys), dtype=bool)
        if targets is not None:
            bad |= neg == targets
        return bad

    def _exhausted(self, users: np.ndarray, sets: np.ndarray | None, targets) -> np.ndarray:
        """(len(users),) bool: no item can be drawn for the row (all positives or the target)."""
        if self.dist == "set":
            out = np.empty(len(users), dtype=bool)
            for r, (u, s) in enumerate(zip(users, sets)):
                allowed = np.setdiff1d(self.sets[s], self.train.indices[self.train.indptr[u]:self.train.indptr[u + 1]])
                out[r] = len(allowed) == 0 or (targets is not None and np.array_equal(allowed, [targets[r]]))
            return out
        deg = np.diff(self.train.indptr)[users]
        if self.dist == "popularity":  # only items with a training count can be drawn
            pos = self.cdf > np.concatenate([[0.0], self.cdf[:-1]])
            deg = np.array([pos[self.train.indices[self.train.indptr[u]:self.train.indptr[u + 1]]].sum()
                            for u in users])
            return deg + (targets is not None) >= int(pos.sum())
        return deg + (targets is not None) >= self.n_items

    def draw(self, users: np.ndarray, targets: np.ndarray | None = None,
             sets: np.ndarray | None = None) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        if self.dist == "set" and sets is None:
            raise ValueError("dist='set': pass `sets`, the item set of each row")
        neg = self._sample(np.arange(len(users)), sets)
        todo = np.arange(len(users))
        rounds = 0
        while len(todo):
            t = None if targets is None else targets[todo]
            todo = todo[self._rejected(users[todo], neg[todo], t)]
            rounds += 1
            if rounds == CHECK_AFTER and len(todo):
                t = None if targets is None else targets[todo]
                todo = todo[~self._exhausted(users[todo], None if sets is None else sets[todo], t)]
            neg[todo] = self._sample(todo, sets)
        return neg


class BPRBatches:
    """The batch source of every BPR-trained model (graph backbones, BPR-MF): each epoch, every
    training pair (u, i) once in a fresh shuffled order, with one negative j per pair, drawn
    by `NegativeSampler` (uniform, redrawn while (u, j) is a training pair: rlmrec.md 5.1).

    epoch() yields (users, pos, neg) int64 arrays of up to `batch_size` triples; `state()` /
    `load_state()` give the generator state a checkpoint keeps.
    """

    def __init__(self, train: sp.csr_matrix, batch_size: int, seed: int):
        coo = train.tocoo()
        self.users = coo.row.astype(np.int64)  # (nnz,)
        self.pos = coo.col.astype(np.int64)  # (nnz,)
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.negatives = NegativeSampler(train, self.rng)

    def __len__(self) -> int:
        return -(-len(self.users) // self.batch_size)

    def epoch(self):
        order = self.rng.permutation(len(self.users))
        u, p = self.users[order], self.pos[order]
        n = self.negatives.draw(u)  # the whole epoch's negatives in one vectorised draw
        for s in range(0, len(u), self.batch_size):
            yield u[s:s + self.batch_size], p[s:s + self.batch_size], n[s:s + self.batch_size]

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


class UserBatches:
    """MMHCL's batch source (hellm.md 3.3, reference `load_data.Data.sample`): each step draws
    `batch_size` users uniformly without replacement among the users with a training item
    (with replacement when there are fewer such users, as the reference), one positive per
    user uniform over its training items and one negative by `NegativeSampler` (uniform,
    redrawn while it is a training item). An epoch is `steps` such draws, by default the
    reference's `n_train_interactions // batch_size + 1`; draws are independent, so a user
    can come back in the next step of the same epoch.

    epoch() yields (users, pos, neg) int64 arrays of `batch_size`; `state()` / `load_state()`
    give the generator state a checkpoint keeps.
    """

    def __init__(self, train: sp.csr_matrix, batch_size: int, seed: int, steps: int | None = None):
        t = sp.csr_matrix(train, copy=True)
        t.sum_duplicates()
        t.eliminate_zeros()  # an explicit zero is not a training item
        self.indptr, self.indices = t.indptr.astype(np.int64), t.indices.astype(np.int64)
        self.deg = np.diff(self.indptr)  # (U,) training items per user
        self.active = np.flatnonzero(self.deg > 0)  # users that can be drawn
        if not len(self.active):
            raise ValueError("UserBatches: the training matrix has no interactions")
        self.batch_size = batch_size
        self.steps = t.nnz // batch_size + 1 if steps is None else steps
        self.rng = np.random.default_rng(seed)
        self.negatives = NegativeSampler(t, self.rng)

    def __len__(self) -> int:
        return self.steps

    def draw(self):
        """One batch: (users, pos, neg), each (batch_size,) int64."""
        replace = self.batch_size > len(self.active)
        users = self.rng.choice(self.active, size=self.batch_size, replace=replace)
        # a uniform offset into each user's CSR row: integers() broadcasts over the highs
        pos = self.indices[self.indptr[users] + self.rng.integers(0, self.deg[users])]
        return users, pos, self.negatives.draw(users)

    def epoch(self):
        for _ in range(self.steps):
            yield self.draw()

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


class ListBatches:
    """Precomputed batches (an LLM stage's tokenised rows, a benchmark's fixed work): a tuple
    is yielded as it is (the arguments of model.loss), anything else as a 1-tuple; in a seeded
    new order every epoch, or as given when `seed` is None.
    The order's generator is the state a checkpoint keeps."""

    def __init__(self, batches: list, seed: int | None = None):
        self.batches = list(batches)
        self.rng = None if seed is None else np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.batches)

    def epoch(self):
        order = range(len(self.batches)) if self.rng is None else \
            self.rng.permutation(len(self.batches))
        for i in order:
            b = self.batches[i]
            yield b if isinstance(b, tuple) else (b,)

    def state(self) -> dict:
        return {} if self.rng is None else self.rng.bit_generator.state

    def load_state(self, state: dict) -> None:
        if self.rng is not None:
            self.rng.bit_generator.state = state
