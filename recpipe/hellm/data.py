"""HeLLM's prompt, its training samples and the histories it is evaluated on (hellm.md 2.4, 5.2).

Windows. HeLLM truncates each user's *whole* sequence to its last `max_len` items before the
leave-one-out split, so on LOO the training part is the last max_len - 2 training items
(Beauty: 127,598 samples). On any split the same rule reads: a user's training window is the
last max_len - (valid + test items) of the training sequence, at least one item. Then

    training samples   (w[:t] -> w[t]) for t = 1 .. len(w) - 1    (t = 0 has no history)
    validation input   w                                          (LOO: items[:-2] -> items[-2])
    test input         the last max_len - (test items) of train + valid   (items[:-1] -> items[-1])

so no training sample holds a validation or test item. Histories are left-padded with -1.
"""

from __future__ import annotations

import numpy as np

# templates/alpaca.json of the reference, task_type 'sequential'; note the typographic
# apostrophe in "user’s", kept as published
INSTRUCT = ("Below is an instruction that describes a task, paired with an input that provides "
            "further context. Write a response that appropriately completes the request.\n\n"
            "### Instruction:\nGiven the user’s purchase history, predict next possible item to "
            "be purchased.\n\n### Input:\n")
RESPONSE = "\n### Response:\n"
PARTS = {"valid": ("train",), "test": ("train", "valid")}  # the input of each evaluated part


def prompt_ids(tokenizer, double_bos: bool) -> tuple[list[int], list[int]]:
    """Token ids of the instruction and the response piece. The reference tokenises both with
    special tokens (a second BOS before the response: double_bos, parity mode); clean mode
    tokenises the response without them."""
    instruct = tokenizer(INSTRUCT, add_special_tokens=True)["input_ids"]
    response = tokenizer(RESPONSE, add_special_tokens=double_bos)["input_ids"]
    return list(instruct), list(response)


def _caps(data, max_len: int, part: str) -> np.ndarray:
    """Per user, how many of the newest items of PARTS[part] (or of train, part="train") the
    max_len window keeps: max_len minus the items after them, at least 1."""
    after = {"train": ("valid", "test"), "valid": ("valid", "test"), "test": ("test",)}[part]
    n_after = sum(np.diff(data.part(p).indptr) for p in after)
    return np.maximum(max_len - n_after, 1)


def histories(data, users: np.ndarray, part: str, max_len: int) -> np.ndarray:
    """The evaluation input of `users` for `part` (valid | test): [B, max_len] item ids, left
    padding -1."""
    seqs = data.sequences(PARTS[part])
    users = np.asarray(users, np.int64)
    w = seqs.window(users, max_len).astype(np.int64)  # [B, max_len], padded with seqs.pad
    keep = np.arange(max_len)[None, :] >= max_len - _caps(data, max_len, part)[users][:, None]
    return np.where(keep & (w != seqs.pad), w, -1)


def training_samples(data, max_len: int, users: np.ndarray | None = None):
    """(user, end) of every training sample: the target is train[end], the history the window
    items before it. `users`: only these users (a subsample)."""
    lengths = data.sequences(("train",)).lengths()
    first = lengths - np.minimum(lengths, _caps(data, max_len, "train"))  # window start
    n = np.maximum(lengths - first - 1, 0)                                # samples per user
    if users is not None:
        keep = np.zeros(len(n), bool)
        keep[users] = True
        n = np.where(keep, n, 0)
    user = np.repeat(np.arange(len(n)), n)
    # ends run first+1 .. length-1 within each user
    offset = np.arange(len(user)) - np.repeat(np.cumsum(n) - n, n)
    return user, first[user] + 1 + offset, first[user]


class SampleBatches:
    """Shuffled batches (hist [B, max_len] int64, -1 padded; target [B] int64) of the training
    samples, drop_last as the reference's loader, for recpipe.train.loop.fit."""

    def __init__(self, data, max_len: int, batch_size: int, seed: int, users=None):
        self.seqs = data.sequences(("train",))
        self.max_len, self.batch_size = max_len, batch_size
        self.user, self.end, self.start = training_samples(data, max_len, users)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.user) // self.batch_size

    def rows(self, idx: np.ndarray):
        u, end = self.user[idx], self.end[idx]
        w = self.seqs.window(u, self.max_len, end=end).astype(np.int64)  # items before end
        n = np.minimum(end - self.start[idx], self.max_len)              # history inside the window
        w[np.arange(self.max_len)[None, :] < self.max_len - n[:, None]] = -1
        target = self.seqs.items[self.seqs.indptr[u] + end].astype(np.int64)
        return w, target

    def epoch(self):
        order = self.rng.permutation(len(self.user))
        for b in range(len(self)):
            yield self.rows(order[b * self.batch_size:(b + 1) * self.batch_size])

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state
