"""Texts -> vectors with a causal LM, in batches, for ranking through the one evaluator.

    items = encode_texts(model, tok, item_texts, pool="last")     # [n_items, H] float32
    users = encode_texts(model, tok, user_texts, pool="last")     # [n_users, H]
    evaluate(EmbeddingScorer(users, items), data, cfg, "test")   # faiss when configured

Each text is encoded once. Texts are sorted by token length so a batch pads little, run
left-padded with padding-aware positions (tokens.position_ids), and put back in their order.
Only the decoder runs: the vocabulary head (49k x H per token on SmolLM2) is skipped.

    pool "last"   hidden state of the last real token: what a causal LM has read everything
                  by (HUM's compression token, when the text ends with `<|emb|>`)
    pool "mean"   mean over the real tokens
"""

from __future__ import annotations

import numpy as np

POOLS = ("last", "mean")


def decoder(model):
    """The transformer under a causal LM (and under a peft wrapper): hidden states, no head."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(inner, inner.base_model_prefix, inner)  # an encoder (AutoModel) is its own


def encode_texts(model, tokenizer, texts: list[str], batch_size: int = 32, pool: str = "last",
                 max_length: int = 512, progress: bool = True) -> np.ndarray:
    """[len(texts), hidden] float32: one vector per text, in the given order."""
    import torch
    from tqdm import tqdm

    from recpipe.llm.tokens import position_ids

    if pool not in POOLS:
        raise ValueError(f"pool {pool!r} is not allowed; choose {', '.join(POOLS)}")
    ids = tokenizer(list(texts), add_special_tokens=False, truncation=True,
                    max_length=max_length)["input_ids"]
    empty = [i for i, x in enumerate(ids) if not x]
    if empty:  # a row of padding only would get some vector: refuse instead
        raise ValueError(f"{len(empty)} texts have no tokens (first at position {empty[0]})")
    order = np.argsort([len(x) for x in ids], kind="stable")
    dec, device = decoder(model), next(model.parameters()).device
    hidden = getattr(model.config, "hidden_size", None) or model.config.n_embd
    out = np.zeros((len(ids), hidden), dtype=np.float32)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        starts = range(0, len(ids), batch_size)
        for s in tqdm(starts, desc="encode", leave=False, disable=not progress):
            rows = order[s:s + batch_size]
            enc = tokenizer.pad({"input_ids": [ids[i] for i in rows]}, return_tensors="pt")
            mask = enc["attention_mask"].to(device)                       # [B, T]
            with torch.inference_mode():
                h = dec(input_ids=enc["input_ids"].to(device), attention_mask=mask,
                        position_ids=position_ids(mask)).last_hidden_state  # [B, T, H]
                if pool == "last":  # left padding: every row's last real token is at -1
                    v = h[:, -1]
                else:
                    m = mask.unsqueeze(-1).to(h.dtype)
                    v = (h * m).sum(1) / m.sum(1).clamp_min(1)
            out[rows] = v.float().cpu().numpy()
    finally:
        tokenizer.padding_side = side
    return out
