"""Texts -> vectors with a causal LM (recpipe.llm.scoring) and ranking through the evaluator."""

from __future__ import annotations

import numpy as np
import pytest

from recpipe.llm import smollm2
from recpipe.llm.backbone import load_backbone
from recpipe.llm.scoring import encode_texts

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = ["a", "the user liked this product a lot", "JSON", "books, games and businesses",
         "You help a recommender system describe products"]



@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
@pytest.mark.parametrize("pool", ["last", "mean"])
def test_batched_encoding_keeps_order_and_ignores_padding(name, pool):
    model, tok = load_backbone(name, device="cpu", seed=1)
    side = tok.padding_side
    batched = encode_texts(model, tok, TEXTS, batch_size=3, pool=pool, progress=False)
    alone = np.stack([encode_texts(model, tok, [t], batch_size=1, pool=pool, progress=False)[0]
                      for t in TEXTS])
    assert batched.shape == (5, 64) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    assert not np.allclose(batched[0], batched[1])  # different texts, different vectors
    assert tok.padding_side == side  # the caller's tokenizer is left as it was


def test_bad_input_is_refused():
    model, tok = load_backbone("tiny-llama", device="cpu")
    with pytest.raises(ValueError, match="pool 'max' is not allowed"):
        encode_texts(model, tok, TEXTS, pool="max")
    with pytest.raises(ValueError, match="1 texts have no tokens .first at position 1."):
        encode_texts(model, tok, ["x", ""], progress=False)


def test_lora_model_vectors_rank_through_the_evaluator(small_processed):
    """Item titles and users' training titles, encoded by a LoRA-wrapped model, scored by the
    one evaluator on the validation part: the whole path, on a real split."""
    import polars as pl

    from recpipe.eval.data import load_split
    from recpipe.eval.evaluator import evaluate
    from recpipe.eval.protocol import resolve
    from recpipe.eval.scorers import EmbeddingScorer
    from recpipe.llm.lora import LoraParams, apply_lora

    data = load_split(small_processed)
    model, tok = load_backbone("tiny-llama", device="cpu")
    model = apply_lora(model, LoraParams(r=4))
    titles = pl.read_parquet(small_processed / "items.parquet").sort("iid")["title"].to_list()
    users = [", ".join(titles[i] for i in data.train[u].indices[:10]) or "nothing"
             for u in range(data.n_users)]
    items = encode_texts(model, tok, titles, batch_size=16, progress=False)
    res = evaluate(EmbeddingScorer(encode_texts(model, tok, users, progress=False), items),
                   data, resolve({"preset": "rlmrec"}), "valid")
    assert items.shape == (data.n_items, 64)
    assert 0 <= res.summary["recall@20"] <= 1 and res.summary["units"] > 100


@pytest.mark.skipif(not smollm2.installed(), reason=f"{smollm2.WHEEL} not installed: "
                                                     f"{smollm2.INSTALL}")
def test_smollm2_vectors_carry_meaning():
    model, tok = load_backbone("smollm2-135m", device="cpu")
    v = encode_texts(model, tok, ["a fantasy novel about dragons",
                                  "an epic fantasy book with dragons and wizards",
                                  "a stainless steel kitchen knife"], pool="mean", progress=False)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert v[0] @ v[1] > v[0] @ v[2]
