"""recpipe.llm.lora on real tiny models: role mapping, params errors, what trains, save/load.

Tiny models are seeded, so a "fresh base" is the same model built again; `NEW` ID-token rows
are appended with resize_token_embeddings (mean_resizing=False: no covariance work, and the
trained rows' values come from the adapter anyway).
"""

from __future__ import annotations

import time

import pytest

from recpipe.config import ParamError
from recpipe.llm import lora
from recpipe.llm.lora import (LoraParams, apply_lora, load_adapter, lora_params, save_adapter,
                              trainable_summary)

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

# transformers' deprecation, raised from inside peft; and peft's note on a trained tied head
pytestmark = [pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing`:FutureWarning"),
              pytest.mark.filterwarnings("ignore:Model has `tie_word_embeddings=True`"),
              pytest.mark.usefixtures("one_torch_thread")]
NEW = 8  # ID tokens appended to the tiny vocab (400)
LLAMA = {"attention": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                       "self_attn.o_proj"],
         "mlp": ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]}
EXPECTED = {  # per layer, under the layer prefix
    "tiny-gpt2": ("transformer.h", {"attention": ["attn.c_attn", "attn.c_proj"],
                                    "mlp": ["mlp.c_fc", "mlp.c_proj"]}),
    "tiny-llama": ("model.layers", LLAMA),
    "tiny-qwen2": ("model.layers", LLAMA),
}



def tiny(name: str, new: int = NEW):
    from recpipe.llm.tiny import build_tiny

    model, _ = build_tiny(name, 0)
    vocab = model.get_input_embeddings().num_embeddings
    if new:
        model.resize_token_embeddings(vocab + new, mean_resizing=False)
    return model, list(range(vocab, vocab + new))


def batch(model, rows, n=2, t=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (n, t), generator=g)
    if rows:
        ids[:, ::4] = rows[0]  # the new tokens appear in the input, not only in the softmax
    return ids


def train(model, ids, steps=3, lr=1e-2):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()


@torch.no_grad()
def logits(model, ids):
    model.eval()
    return model(input_ids=ids).logits


@torch.no_grad()
def tables(model, dim):
    """The effective input embedding and output head weights, both (vocab, dim)."""
    emb = model.get_input_embeddings()(torch.arange(model.config.vocab_size)).clone()
    head = model.get_output_embeddings()(torch.eye(dim)).T.clone()  # x @ W.T with x = I
    return emb, head


def wrapped(model) -> set[str]:
    return {n.removeprefix("base_model.model.") for n, m in model.named_modules()
            if hasattr(m, "lora_A")}


def trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name", list(EXPECTED))
@pytest.mark.parametrize("role", ["attention", "mlp", "all-linear"])
def test_roles_wrap_exactly_the_expected_modules(name, role):
    model, _ = tiny(name, new=0)
    prefix, roles = EXPECTED[name]
    names = roles["attention"] + roles["mlp"] if role == "all-linear" else roles[role]
    pm = apply_lora(model, LoraParams(targets=role))
    assert wrapped(pm) == {f"{prefix}.{i}.{s}" for i in range(2) for s in names}
    if name == "tiny-gpt2":  # Conv1D stores (in, out): LoRA must know
        assert pm.peft_config["default"].fan_in_fan_out is True
    assert all("lm_head" not in n for n in wrapped(pm))


def test_explicit_list_targets():
    pm = apply_lora(tiny("tiny-llama", new=0)[0], LoraParams(targets=["q_proj", "mlp.down_proj"]))
    assert wrapped(pm) == {f"model.layers.{i}.{s}" for i in range(2)
                           for s in ("self_attn.q_proj", "mlp.down_proj")}


@pytest.mark.parametrize("data, message", [
    ({"targets": "mlpp"}, "hellm.lora.targets: 'mlpp' is not allowed; choose attention, mlp, "
                          "all-linear or a list of module names"),
    ({"targets": []}, "hellm.lora.targets: [] must be a non-empty list"),
    ({"targets": ["q_proj", ""]}, "hellm.lora.targets: ['q_proj', ''] must be a non-empty"),
    ({"targets": 3}, "hellm.lora.targets: 3 is not"),
    ({"r": 0}, "hellm.lora.r: 0 must be >= 1"),
    ({"r": 2.5}, "hellm.lora.r: 2.5 is not an integer"),
    ({"alpha": "x"}, "hellm.lora.alpha: 'x' is not an integer"),
    ({"dropout": 1.0}, "hellm.lora.dropout: 1.0 must be < 1"),
    ({"dropout": -0.1}, "hellm.lora.dropout: -0.1 must be >= 0.0"),
    ({"bias": "some"}, "hellm.lora.bias: 'some' is not allowed"),
    ({"rank": 8}, "hellm.lora: unknown key(s) rank"),
])
def test_bad_params_name_the_key(data, message):
    with pytest.raises(ParamError) as e:
        lora_params(data, key="hellm.lora")
    assert message in str(e.value)


def test_defaults_and_code_built_params_are_checked():
    p = lora_params(None)
    assert (p.r, p.alpha, p.dropout, p.targets, p.bias) == (8, 16, 0.05, "all-linear", "none")
    model, _ = tiny("tiny-llama", new=0)
    with pytest.raises(ParamError, match=r"^hellm\.lora\.targets: 'mlpp' is not allowed"):
        apply_lora(model, LoraParams(targets="mlpp"), key="hellm.lora")
    with pytest.raises(ParamError, match=r"^lora\.r: -1 must be >= 1"):
        apply_lora(model, LoraParams(r=-1))


def test_unknown_architecture_needs_all_linear_or_names(monkeypatch):
    monkeypatch.delitem(lora.ROLES, "llama")
    model, _ = tiny("tiny-llama", new=0)
    with pytest.raises(ParamError, match=r"x\.targets: role 'mlp' is not mapped for architecture "
                                         r"'llama'.*use all-linear or a list of module names"):
        apply_lora(model, LoraParams(targets="mlp"), key="x")
    assert len(wrapped(apply_lora(model, LoraParams(targets="all-linear")))) == 14


def test_names_must_match_modules():
    model, _ = tiny("tiny-gpt2", new=0)
    with pytest.raises(ParamError, match=r"^lora\.targets: q_proj match no module of this gpt2"):
        apply_lora(model, LoraParams(targets=["q_proj", "attn.c_attn"]))
    with pytest.raises(ValueError, match="modules_to_save: 'score' matches no module"):
        apply_lora(model, LoraParams(), modules_to_save=["score"])


def test_bad_token_rows_and_tied_head_conflict():
    model, rows = tiny("tiny-llama")
    with pytest.raises(ValueError, match=r"within the vocab \(0\.\.407\); resize"):
        apply_lora(model, LoraParams(), trainable_token_indices=[rows[-1] + 1])
    with pytest.raises(ValueError, match="within the vocab"):
        apply_lora(model, LoraParams(), trainable_token_indices=[])
    # peft would build it and then fail in forward: refused up front
    with pytest.raises(ValueError, match="tied to the input embeddings"):
        apply_lora(model, LoraParams(), trainable_token_indices=rows, modules_to_save=["lm_head"])


@pytest.mark.parametrize("name", list(EXPECTED))
def test_only_lora_and_new_token_rows_train(name):
    model, rows = tiny(name)
    dim = model.config.hidden_size
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # tied
    pm = apply_lora(model, LoraParams(r=4, targets="all-linear"), trainable_token_indices=rows)
    names = trainable(pm)
    delta = {n for n in names if n.endswith("trainable_tokens_delta.default")}
    assert len(delta) == 1 and "lm_head" not in next(iter(delta))  # the head shares the rows
    assert names - delta == {f"base_model.model.{m}.lora_{ab}.default.weight"
                             for m in wrapped(pm) for ab in "AB"}
    frozen = {n: p.detach().clone() for n, p in pm.named_parameters() if not p.requires_grad}
    emb0, head0 = tables(pm, dim)
    train(pm, batch(pm, rows))
    for n, p in pm.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen[n]), n
    assert all(p.abs().sum() > 0 for n, p in pm.named_parameters() if "lora_B" in n)
    emb1, head1 = tables(pm, dim)
    assert (emb1 != emb0).any(1).nonzero().flatten().tolist() == rows  # other rows bit-identical
    assert torch.equal(emb1, head1)  # the tied head sees the trained rows
    s = trainable_summary(pm)
    lora_n = sum(p.numel() for n, p in pm.named_parameters() if "lora_" in n)
    assert s["trainable"] == lora_n + len(rows) * dim
    assert 0 < s["percent"] < 100 and s["total"] > s["trainable"]


def test_untied_model_trains_the_head_rows_too():
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(vocab_size=408, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    rows = list(range(400, 408))
    pm = apply_lora(model, LoraParams(r=4, targets="mlp"), trainable_token_indices=rows)
    assert sum("trainable_tokens_delta" in n for n in trainable(pm)) == 2
    emb0, head0 = tables(pm, 64)
    train(pm, batch(pm, rows))
    emb1, head1 = tables(pm, 64)
    assert (emb1 != emb0).any(1).nonzero().flatten().tolist() == rows
    assert (head1 != head0).any(1).nonzero().flatten().tolist() == rows


def test_head_trains_whole_through_modules_to_save(tmp_path):
    model, _ = tiny("tiny-gpt2", new=0)
    pm = apply_lora(model, LoraParams(r=4, targets="attention"), modules_to_save=["lm_head"])
    assert "base_model.model.lm_head.modules_to_save.default.weight" in trainable(pm)
    ids = batch(pm, [])
    train(pm, ids)
    before = logits(pm, ids)
    file = save_adapter(pm, tmp_path)
    assert file.stat().st_size > 400 * 64 * 4  # the whole head is in the adapter
    assert torch.equal(load_adapter(tiny("tiny-gpt2", new=0)[0], tmp_path)(input_ids=ids).logits,
                       before)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_save_load_gives_identical_logits(name, tmp_path):
    from safetensors import safe_open

    model, rows = tiny(name)
    pm = apply_lora(model, LoraParams(r=4, targets="all-linear"), trainable_token_indices=rows)
    ids = batch(pm, rows)
    train(pm, ids)
    before = logits(pm, ids)
    file = save_adapter(pm, tmp_path)
    assert file == tmp_path / "adapter_model.safetensors" and file.is_file()
    assert not [f for f in tmp_path.iterdir() if f.suffix in (".bin", ".pt", ".pth", ".pkl")]
    with safe_open(str(file), "pt") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
    extra = {k: s for k, s in shapes.items() if "lora_" not in k}
    assert list(extra.values()) == [[NEW, 64]]  # the new rows only, no embedding or head
    n = sum(p.numel() for p in pm.parameters() if p.requires_grad)
    assert file.stat().st_size < n * 4 + 16_384  # trainable float32 + header
    base, _ = tiny(name)  # resized the same way
    loaded = load_adapter(base, tmp_path)
    assert not trainable(loaded) and not loaded.training
    assert torch.equal(logits(loaded, ids), before)
    with pytest.raises(ValueError, match="resize_token_embeddings as before training"):
        load_adapter(tiny(name, new=0)[0], tmp_path)
    with pytest.raises(FileNotFoundError, match="save_adapter"):
        load_adapter(base, tmp_path / "none")


def test_resized_folder_base_saves_rows_not_the_embedding(tmp_path):
    # peft's save_embedding_layers="auto" saves the whole (input and output) embedding when
    # the base on disk has another vocab size: save_adapter turns that off
    from transformers import AutoModelForCausalLM

    tiny("tiny-llama", new=0)[0].save_pretrained(tmp_path / "base")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "base")
    model.resize_token_embeddings(400 + NEW, mean_resizing=False)
    pm = apply_lora(model, LoraParams(r=4, targets=["q_proj"]),
                    trainable_token_indices=range(400, 400 + NEW))
    file = save_adapter(pm, tmp_path / "adapter")
    assert file.stat().st_size < 16_384  # the full table would be 408 x 64 x 4 = 104 kB


def test_smollm2_lora_with_new_tokens(tmp_path):
    from recpipe.llm import smollm2
    from recpipe.llm.backbone import load_backbone

    if not smollm2.installed():
        pytest.skip(f"smollm2-135m is not installed; {smollm2.INSTALL}")
    smollm2.folder()  # convert once outside the timing (~15 s on first use)
    t0 = time.perf_counter()
    model, tok = load_backbone("smollm2-135m", device="cpu")
    vocab = len(tok)
    rows = list(range(vocab, vocab + 100))
    model.resize_token_embeddings(vocab + 100, mean_resizing=False)
    pm = apply_lora(model, LoraParams(r=8, targets="all-linear"), trainable_token_indices=rows)
    s = trainable_summary(pm)
    assert s["percent"] < 2 and s["trainable"] == sum(
        p.numel() for n, p in pm.named_parameters() if "lora_" in n) + 100 * 576
    ids = batch(pm, rows, n=2, t=32)
    train(pm, ids, steps=1, lr=1e-3)
    before = logits(pm, ids)
    file = save_adapter(pm, tmp_path)
    assert file.stat().st_size < 25e6  # the embedding alone would be 49,252 x 576 x 4 = 113 MB
    base, _ = load_backbone("smollm2-135m", device="cpu")
    base.resize_token_embeddings(vocab + 100, mean_resizing=False)
    assert torch.equal(logits(load_adapter(base, tmp_path), ids), before)
    print(f"smollm2 adapter {file.stat().st_size / 1e6:.2f} MB, {s}, "
          f"{time.perf_counter() - t0:.1f} s")
