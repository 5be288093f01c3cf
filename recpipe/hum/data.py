"""HUM's texts as token ids (hum.md section 3) and its training samples (section 6.3).

    prompt  P tokens    "Compress the following description ... into the last token:"
    title   <= C tokens  `title + "; "`, or "None; " for an item without one (C = title_tokens)
    item    [prompt][title][<|emb|>][eos]; longer than F = C + P: the first F - 2, then emb, eos
    user    [prompt][title of each history item, oldest first][<|emb|>][eos] (no truncation)
Sequences are right-padded with eos under mask 0, so <|emb|> sits at mask.sum(-1) - 2: the
position whose last hidden state is the embedding. Texts are tokenised once per run.

Training samples are the reference's: every training interaction after a user's first, the
target, with the last `history` items before it as its history. They are read from the train
part only, so no sample sees a validation or test item (under the temporal split every item
before a training target is a training item anyway).
"""

from __future__ import annotations

import numpy as np

from recpipe.hum.params import PROMPT


class Texts:
    """Token ids of the prompt and every item's title piece, and the sequences built of them."""

    def __init__(self, tokenizer, titles: list[str], title_tokens: int, emb_id: int):
        self.prompt = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
        pieces = [f"{t}; " if t and t.strip() else "None; " for t in titles]
        ids = tokenizer(pieces, add_special_tokens=False)["input_ids"]
        self.titles = [x[:title_tokens] for x in ids]
        self.emb = emb_id
        # the text's closing token: EOS, or an encoder's [SEP]
        self.eos = next(t for t in (tokenizer.eos_token_id, tokenizer.sep_token_id,
                                    tokenizer.pad_token_id) if t is not None)
        self.item_len = title_tokens + len(self.prompt)  # F: the fixed item length

    def item(self, i: int) -> list[int]:
        seq = self.prompt + self.titles[i]
        if len(seq) + 2 > self.item_len:  # a long title: keep F - 2, as the reference does
            seq = seq[: self.item_len - 2]
        return seq + [self.emb, self.eos]

    def user(self, history) -> list[int]:
        seq = list(self.prompt)
        for i in history:
            seq += self.titles[i]
        return seq + [self.emb, self.eos]

    def pad(self, seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, mask), each (B, T) int64, right-padded with eos under mask 0."""
        width = max(len(s) for s in seqs)
        ids = np.full((len(seqs), width), self.eos, dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int64)
        for r, s in enumerate(seqs):
            ids[r, : len(s)], mask[r, : len(s)] = s, 1
        return ids, mask


def training_samples(data) -> tuple[np.ndarray, np.ndarray]:
    """(uid, pos), (n,) each: one sample per training interaction after the user's first;
    `pos` is the target's row in data.sequences(("train",))."""
    seqs = data.sequences(("train",))
    first = np.zeros(len(seqs.items), dtype=bool)
    first[seqs.indptr[:-1][np.diff(seqs.indptr) > 0]] = True
    uid = np.repeat(np.arange(seqs.n_users), np.diff(seqs.indptr))
    pos = np.flatnonzero(~first).astype(np.int64)
    return uid[pos].astype(np.int64), pos


def histories(seqs, uid: np.ndarray, pos: np.ndarray, n: int) -> list[np.ndarray]:
    """The last `n` items before row `pos[k]` of user `uid[k]`'s sequence, oldest first."""
    start = seqs.indptr[uid]
    return [seqs.items[max(s, p - n):p] for s, p in zip(start, pos)]


def mask_history(hist: np.ndarray, hist_dom: np.ndarray, target_dom: int, ratio: float,
                 rng: np.random.Generator) -> np.ndarray:
    """The masking enhancer: when the history spans several domains, drop each item of the
    target's domain with probability `ratio` (training only)."""
    if ratio <= 0 or len(np.unique(hist_dom)) < 2:
        return hist
    drop = (hist_dom == target_dom) & (rng.random(len(hist)) < ratio)
    return hist[~drop]
