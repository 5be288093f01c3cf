"""ID tokens and soft tokens: how users, items and outside vectors enter the LLM.

ID tokens (CLLM4Rec-style): every user and every item gets one new vocabulary entry,
`<user_12>`, `<item_3>`, added after the base vocabulary V in one contiguous block:

    ids [V, V+n_users)                      users 0..n_users-1   (user_base = V)
    ids [V+n_users, V+n_users+n_items)      items 0..n_items-1   (item_base = V+n_users)

so the id <-> index map is plain arithmetic (`IdTokens`), vectorised over numpy and torch, and
it holds for any V (a tiny 400-token BPE or Qwen2.5's 151,665). The tokens are special added
tokens, so the tokenizer never splits them and decode gives the text back; their embedding rows
are new (random, mean or given vectors), and so are the output rows when the head is untied.
Being special, they are dropped by `decode(..., skip_special_tokens=True)`: decode generated
ID tokens without that flag.

Soft tokens (HUM-style): a placeholder id such as `<|emb|>` marks where a computed vector goes;
`splice` swaps the placeholder rows of `inputs_embeds` for the vectors, differentiably, and
`position_ids` gives padded batches the positions of the unpadded sequences.
`special_id` finds such a placeholder by its text (ids differ between tokenizers), or adds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INITS = ("random", "mean")


def token_text(kind: str, i: int, prefix: str = "") -> str:
    """The text of an ID token: token_text("item", 3) == "<item_3>"."""
    return f"<{prefix}{kind}_{i}>"


def _lookup(tokenizer, texts: list[str]) -> list:
    """The id of each text, None where it is not a token (not the unk id: that is a miss)."""
    ids = tokenizer.convert_tokens_to_ids(texts)
    unk = tokenizer.unk_token_id
    return [None if i == unk and t != tokenizer.unk_token else i for t, i in zip(texts, ids)]


def _arr(x):
    """Lists become int64 numpy arrays; ints, numpy and torch arrays pass through."""
    return np.asarray(x, dtype=np.int64) if isinstance(x, list | tuple) else x


def _any(mask) -> bool:  # for a python bool, a numpy or a torch bool array alike
    return bool(mask.any()) if hasattr(mask, "any") else bool(mask)


def _check(i, n: int, what: str):
    """i as an array (or int), or an IndexError unless every i is in [0, n)."""
    i = _arr(i)
    if _any((i < 0) | (i >= n)):
        raise IndexError(f"{what} index out of range [0, {n})")
    return i


@dataclass(frozen=True)
class IdTokens:
    """Where the ID tokens live: users at user_base+i, items right after at item_base+i."""
    user_base: int
    item_base: int
    n_users: int
    n_items: int
    prefix: str = ""

    @property
    def end(self) -> int:  # one past the last ID token
        return self.item_base + self.n_items

    def user(self, i):  # int -> int, array -> array of the same kind
        return _check(i, self.n_users, "user") + self.user_base

    def item(self, i):
        return _check(i, self.n_items, "item") + self.item_base

    def user_text(self, i: int) -> str:
        return token_text("user", i, self.prefix)

    def item_text(self, i: int) -> str:
        return token_text("item", i, self.prefix)

    def is_user(self, ids):
        return (ids >= self.user_base) & (ids < self.item_base)

    def is_item(self, ids):
        return (ids >= self.item_base) & (ids < self.end)

    def to_index(self, ids):
        """The user or item index of ID-token ids (use is_item to tell which); any other id is
        a ValueError."""
        ids = _arr(ids)
        if _any((ids < self.user_base) | (ids >= self.end)):
            raise ValueError(f"not an ID token: ids must be in [{self.user_base}, {self.end})")
        # items follow users, so subtract n_users more for them (bool * int is 0 or n_users)
        return ids - self.user_base - self.is_item(ids) * self.n_users


def _grow(model, first: int, n: int, init, seed: int = 0) -> None:
    """Fill rows [first, first+n) of the input (and an untied output) embeddings, from the
    statistics of rows [:first]. Resize only when too small: a model padded past its tokenizer
    (Qwen2.5: 151,936 rows, 151,665 tokens) keeps its size and its spare rows get overwritten."""
    import torch

    emb = model.get_input_embeddings()
    if emb.weight.shape[0] < first + n:
        devices = [emb.weight.device.index or 0] if emb.weight.is_cuda else []
        with torch.random.fork_rng(devices=devices):  # HF inits new rows from the global RNG
            model.resize_token_embeddings(first + n, mean_resizing=False)
    inp = model.get_input_embeddings().weight                      # [V', H]
    out = model.get_output_embeddings()
    heads = [inp]
    if out is not None and out.weight.data_ptr() != inp.data_ptr():  # untied: own rows to fill
        heads.append(out.weight)
    gen = torch.Generator().manual_seed(seed)  # CPU generator: same rows on any device
    with torch.no_grad():
        for w in heads:
            old = w[:first].float()                                # [first, H] the real tokens
            if isinstance(init, str) and init == "random":
                new = torch.randn(n, w.shape[1], generator=gen) * old.std().item()
            elif isinstance(init, str):
                new = old.mean(0, keepdim=True).expand(n, -1).cpu()
            else:
                new = init
            w[first:first + n] = new.to(w.device, w.dtype)
        if out is not None and getattr(out, "bias", None) is not None:
            out.bias[first:first + n] = 0


def _as_vectors(init, n: int, hidden: int):
    """init as a float tensor [n, hidden], or a ValueError naming both shapes."""
    import torch

    if isinstance(init, str):
        if init not in INITS:
            raise ValueError(f"init {init!r} is not allowed; choose {', '.join(INITS)} or "
                             f"give vectors of shape [{n}, {hidden}]")
        return init
    vec = torch.as_tensor(init).detach().float().cpu()
    if tuple(vec.shape) != (n, hidden):
        raise ValueError(f"init vectors have shape {list(vec.shape)}; expected [{n}, {hidden}] "
                         f"(n_users + n_items, hidden)")
    return vec


def add_id_tokens(model, tokenizer, n_users: int, n_items: int, init="random", seed: int = 0,
                  prefix: str = "") -> IdTokens:
    """Add `<{prefix}user_i>` and `<{prefix}item_j>` to tokenizer and model (see the module doc).
    init: "random" (normal, std of the existing rows, seeded), "mean" (their mean) or vectors
    [n_users + n_items, hidden] (array or tensor), users first. model None: the tokenizer only
    (a model that keeps its ID embeddings in tables of its own, as CLLM4Rec's two sets)."""
    from transformers import AddedToken

    if n_users < 0 or n_items < 0:
        raise ValueError(f"n_users={n_users} and n_items={n_items} must be >= 0")
    n = n_users + n_items
    # every check before any change, so a refused call leaves tokenizer and model as they were
    if model is not None:
        init = _as_vectors(init, n, model.get_input_embeddings().weight.shape[1])
    texts = ([token_text("user", i, prefix) for i in range(n_users)]
             + [token_text("item", j, prefix) for j in range(n_items)])
    clash = [t for t, i in zip(texts, _lookup(tokenizer, texts)) if i is not None]
    if clash:
        raise ValueError(f"{clash[0]} is already in the vocabulary; ID tokens were added before "
                         f"(use another prefix)")
    # One add_tokens call: ~0.03 s for 20,000 tokens (one call per token grows quadratically).
    # special + not normalized: matched before BPE, so never split, and decode writes them back.
    base = len(tokenizer)
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in texts],
                         special_tokens=True)
    # read the ids back rather than trust len(tokenizer): a vocabulary with holes would shift them
    first, last = _lookup(tokenizer, [texts[0], texts[-1]]) if n else (base, base - 1)
    if last - first != n - 1:
        raise RuntimeError(f"the tokenizer put the {n} ID tokens at {first}..{last}: not a "
                           f"contiguous block")
    if model is not None:
        _grow(model, first, n, init, seed)
    return IdTokens(first, first + n_users, n_users, n_items, prefix)


def special_id(tokenizer, text: str, add: bool = False, model=None) -> int:
    """The id of a special token by its text, e.g. "<|emb|>". Absent: a KeyError, or with
    add=True a new special token (and a new mean-initialised row in `model` when given)."""
    from transformers import AddedToken

    tid = _lookup(tokenizer, [text])[0]
    if tid is not None:
        return tid
    if not add:
        raise KeyError(f"{text!r} is not a token of this tokenizer ({len(tokenizer)} tokens); "
                       f"pass add=True to add it")
    tokenizer.add_tokens([AddedToken(text, special=True, normalized=False)], special_tokens=True)
    tid = tokenizer.convert_tokens_to_ids(text)
    if model is not None:
        _grow(model, tid, 1, "mean")
    return tid


def splice(inputs_embeds, input_ids, placeholder_id: int, vectors):
    """inputs_embeds [B, T, H] with the rows where input_ids [B, T] == placeholder_id replaced,
    in row-major order, by vectors [N, H]. Out of place, so gradients reach `vectors`."""
    mask = input_ids == placeholder_id                             # [B, T]
    n = int(mask.sum())
    if vectors.ndim != 2 or vectors.shape[0] != n or vectors.shape[1] != inputs_embeds.shape[-1]:
        raise ValueError(f"{n} placeholder tokens (id {placeholder_id}) but vectors of shape "
                         f"{list(vectors.shape)}; expected [{n}, {inputs_embeds.shape[-1]}]")
    # nonzero() lists (b, t) in row-major order: the i-th placeholder gets vectors[i]
    return inputs_embeds.index_put(mask.nonzero(as_tuple=True), vectors.to(inputs_embeds.dtype))


def embed_with_soft_tokens(model, input_ids, placeholder_id: int, vectors):
    """The model's input embeddings [B, T, H] for input_ids [B, T], with vectors [N, H] spliced
    in at the placeholders; pass the result as `inputs_embeds`."""
    # the placeholder may be a virtual id (-1, or past the vocab): look up id 0 there instead
    safe = input_ids.masked_fill(input_ids == placeholder_id, 0)
    return splice(model.get_input_embeddings()(safe), input_ids, placeholder_id, vectors)


def position_ids(attention_mask):
    """Positions [B, T] counting real tokens only, so a left-padded row gets 0, 1, ... from its
    first real token, as it would alone (pads get 0, or the last position when right-padded)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
