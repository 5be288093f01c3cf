"""CLLM4Rec's token sequences: review documents, collaborative item lists, finetuning prompts.

Every sequence is built from token ids directly: the ID tokens come from `IdTokens` (one per
user and item, recpipe.llm.tokens) and the fixed words are tokenised once (`Pieces`), so no
tokenizer runs per sample (the reference runs the slow Python BPE twice per batch, quirk 12).
Wording follows the reference (cllm4rec.md sections 4-6), with `<user_u>` for `user_u`:

    collaborative  <user_u> has interacted with | <item_a> <item_b> ...
    content        <user_u> wrote the following review for <item_i>: | <review tokens>
    finetuning     <user_u> has interacted with <item_c> <item_d>, <user_u> will interact with

("|" separates the prompt from the main text that is language-modelled.) Documents come from
training pairs only (the split's `train` rows of interactions.parquet), so no validation or
test review is ever read. A row is (prompt ids, main ids); batches are right-padded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SOURCES = ("review", "item")  # where a document's text came from (fallback: item texts)


@dataclass(frozen=True)
class Pieces:
    """The fixed words of the three prompts, as token ids of one tokenizer."""
    interacted: list[int]   # " has interacted with"
    wrote: list[int]        # " wrote the following review for"
    colon: list[int]        # ":"
    comma: list[int]        # ","
    will: list[int]         # " will interact with"

    @classmethod
    def of(cls, tokenizer) -> Pieces:
        enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
        return cls(enc(" has interacted with"), enc(" wrote the following review for"),
                   enc(":"), enc(","), enc(" will interact with"))


def col_prompt(ids, pieces: Pieces, u: int) -> list[int]:
    return [int(ids.user(u)), *pieces.interacted]


def doc_prompt(ids, pieces: Pieces, u: int, i: int) -> list[int]:
    return [int(ids.user(u)), *pieces.wrote, int(ids.item(i)), *pieces.colon]


def rec_prompt(ids, pieces: Pieces, u: int, items: np.ndarray, max_tokens: int,
               keep_suffix: bool) -> list[int]:
    """The finetuning/prediction prompt over `items` (in the order given). Too long for
    max_tokens: keep_suffix drops items from the end (clean), else the end is cut (parity:
    the reference loses ", <user_u> will interact with", quirk 9)."""
    head, tail = [int(ids.user(u)), *pieces.interacted], [*pieces.comma, int(ids.user(u)),
                                                          *pieces.will]
    if keep_suffix:
        items = items[:max(max_tokens - len(head) - len(tail), 0)]
    return ([*head, *ids.item(np.asarray(items, dtype=np.int64)).tolist(), *tail])[:max_tokens]


def documents(processed: Path, users: np.ndarray | None, fallback: str):
    """(table, source): the training pairs' texts as a polars frame (uid, iid, text), ordered
    by (uid, iid), and "review", "item" (titles and descriptions of each pair's item, when the
    data has no review text and fallback="item") or None (no text at all)."""
    import polars as pl

    rows = (pl.scan_parquet(processed / "interactions.parquet")
            .filter(pl.col("split") == "train").select("uid", "iid", "review"))
    if users is not None:
        rows = rows.filter(pl.col("uid").is_in(users.tolist()))
    rows = rows.unique(["uid", "iid"], keep="first").sort("uid", "iid").collect()
    text = pl.col("review").fill_null("").str.strip_chars()
    reviews = rows.filter(text != "").select("uid", "iid", text.alias("text"))
    if reviews.height or fallback == "none":
        return (reviews, "review") if reviews.height else (reviews, None)
    items = pl.read_parquet(processed / "items.parquet")
    parts = [pl.col(c).fill_null("") for c in ("title", "description") if c in items.columns]
    if not parts:
        return reviews, None
    items = items.select("iid", pl.concat_str(parts, separator=". ").str.strip_chars(". ")
                         .alias("text")).filter(pl.col("text") != "")
    docs = rows.select("uid", "iid").join(items, on="iid", how="inner").sort("uid", "iid")
    return docs, ("item" if docs.height else None)


def tokenize_documents(docs, tokenizer, ids, pieces: Pieces, doc_tokens: int):
    """[(prompt ids, main ids)] per document; the text is cut to doc_tokens tokens."""
    texts = [" " + t for t in docs["text"].to_list()]
    mains = tokenizer(texts, add_special_tokens=False, truncation=True,
                      max_length=doc_tokens)["input_ids"] if texts else []
    return [(doc_prompt(ids, pieces, u, i), m)
            for (u, i), m in zip(docs.select("uid", "iid").iter_rows(), mains) if m]


def pad(rows: list[list[int]], pad_id: int = 0):
    """(ids [B, T], mask [B, T]) int64 numpy arrays, right-padded with pad_id."""
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for b, r in enumerate(rows):
        out[b, :len(r)], mask[b, :len(r)] = r, 1
    return out, mask


def lm_batch(pairs, kind: str, reg: bool, max_tokens: int) -> dict:
    """A language-modelling batch: prompt and main joined and cut to max_tokens (the end of the
    main text goes first); `start` [B] is where each row's main text begins."""
    rows = [(p + m)[:max_tokens] for p, m in pairs]
    ids, mask = pad(rows)
    start = np.array([min(len(p), max_tokens) for p, _ in pairs], dtype=np.int64)
    return {"ids": ids, "mask": mask, "start": start, "kind": kind, "reg": reg}


def mask_items(items: np.ndarray, ratio: float, rng: np.random.Generator):
    """(visible, hidden): max(1, floor(ratio * n)) of `items` hidden at random, the rest shuffled
    (the reference: random.sample, then random.shuffle; finetuning.py)."""
    n = len(items)
    k = max(1, int(np.floor(ratio * n)))
    order = rng.permutation(n)
    hidden = np.sort(items[order[:k]])
    visible = items[order[k:]]
    return visible, hidden
