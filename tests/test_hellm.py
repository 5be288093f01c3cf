"""HeLLM (recpipe/hellm): its samples and the no-leak rule on a real LOO split, the prompt, the
graph prefix (masked Gram matrix, every layer, no RoPE through the cache), batched scoring equal
to one user at a time, the trainable parts against the reference's decomposition, the schedule,
and the `hellm` stage end to end: train, export, evaluate, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from conftest import ROOT, shared_path, stage  # noqa: E402
from recpipe.config import ParamError, parse  # noqa: E402
from recpipe.hellm.data import INSTRUCT, SampleBatches, histories, prompt_ids, training_samples  # noqa: E402
from recpipe.hellm.params import HeLLMParams  # noqa: E402
from test_sasrec import SEQS, loo_split  # noqa: E402
from test_train_loop import _ckpt_loop  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing`:FutureWarning")]


def tables(n_items: int, d1: int = 6, d2: int = 5, seed: int = 0):
    g = np.random.default_rng(seed)
    return (g.normal(size=(n_items, d1)).astype(np.float32),
            g.normal(size=(n_items + 1, d2)).astype(np.float32))


def small_hellm(name="tiny-llama", n_items=10, mode="clean", prefix_len=3, **kw):
    from recpipe.hellm.run import build

    p = parse(HeLLMParams, {"model": name, "mode": mode, "prefix_len": prefix_len,
                            "prefix_dropout": 0.0, "lora": {"dropout": 0.0}, "device": "cpu", **kw},
              prefix="hellm")
    model, opt = build(p, *tables(n_items), seed=0)
    return model.eval(), opt


# -- data: samples, windows, no leak -----------------------------------------------------------

def test_training_samples_are_the_training_window_and_never_hold_valid_or_test(tmp_path):
    from recpipe.data.view import load_view

    data = load_view(loo_split(tmp_path))
    b = SampleBatches(data, 50, 1, 0)
    for i in range(len(b.user)):
        u = int(b.user[i])
        tr = data.sequence(u, ("train",)).items
        held = {*data.sequence(u, ("valid",)).items, *data.sequence(u, ("test",)).items}
        hist, target = b.rows(np.array([i]))
        h = hist[0][hist[0] >= 0]
        assert list(h) == list(tr[:b.end[i]]) and target[0] == tr[b.end[i]]  # w[:t] -> w[t]
        assert not held & {*h, *target}
    lengths = [len(s) - 2 if len(s) >= 3 else len(s) for s in SEQS.values()]
    assert len(b) == len(b.user) == sum(max(n - 1, 0) for n in lengths) == 18
    got = [tuple(t) for _, t in b.epoch()]
    assert len(got) == 18 and got != [tuple(t) for _, t in SampleBatches(data, 50, 1, 1).epoch()]


def test_validation_reads_the_training_window_and_test_adds_the_validation_item(tmp_path):
    from recpipe.data.view import load_view

    data = load_view(loo_split(tmp_path))
    users = np.arange(data.n_users)
    valid, test = histories(data, users, "valid", 50), histories(data, users, "test", 50)
    for u in users:
        tr, va = data.sequence(u, ("train",)).items, data.sequence(u, ("valid",)).items
        assert list(valid[u][valid[u] >= 0]) == list(tr)
        assert list(test[u][test[u] >= 0]) == [*tr, *va]


def test_max_len_keeps_the_newest_items_of_the_whole_sequence(tmp_path):
    """hellm.md 2.4: truncate to the last max_len items, then split: with max_len 5 a user with
    ten items trains on items 6..8 (two samples), validates after 6..8, tests after 6..9."""
    from recpipe.data.view import load_view

    data = load_view(loo_split(tmp_path))
    u = int(np.argmax(data.sequences(("train",)).lengths()))  # SEQS user 3: ten items
    tr = data.sequence(u, ("train",)).items
    user, end, start = training_samples(data, 5)
    assert list(end[user == u]) == [len(tr) - 2, len(tr) - 1] and set(start[user == u]) == {len(tr) - 3}
    v, t = histories(data, [u], "valid", 5)[0], histories(data, [u], "test", 5)[0]
    assert list(v[v >= 0]) == list(tr[-3:])
    assert list(t[t >= 0]) == [*tr[-3:], *data.sequence(u, ("valid",)).items]


def test_beauty_gives_hellms_127598_training_samples(tmp_path):
    beauty = shared_path("s3rec_seq", "Beauty.txt")
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "Beauty.txt").symlink_to(beauty)
    from recpipe.data.view import load_view

    data = load_view(loo_split(tmp_path, raw, user_core=5, item_core=5))
    assert len(training_samples(data, 50)[0]) == 127598
    assert len(SampleBatches(data, 50, 7, 0)) == 127598 // 7  # drop_last, as the reference


def test_prompt_is_the_alpaca_template_with_one_or_two_bos():
    """Quirk 4: the reference tokenises instruction and response with special tokens, so a
    LLaMA tokenizer puts a second BOS before the response (parity); clean mode has one."""
    from recpipe.llm.tiny import tiny_tokenizer

    tok = tiny_tokenizer(False)
    tok.add_special_tokens({"bos_token": "<|bos|>"})
    tok.add_bos_token = True  # as a LLaMA tokenizer
    bos = tok.bos_token_id
    assert "user’s purchase history" in INSTRUCT
    ins, resp = prompt_ids(tok, double_bos=False)
    _, resp2 = prompt_ids(tok, double_bos=True)
    assert ins[0] == bos and tok.decode(ins[1:]).startswith("Below is an instruction")
    assert bos not in resp and resp2 == [bos, *resp] and tok.decode(resp) == "\n### Response:\n"


# -- the model --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tiny-llama", "tiny-qwen2", "tiny-gpt2"])
def test_batched_scores_equal_one_user_at_a_time(name):
    """Left padding inside the item span, masked, with real-token positions and the masked
    Gram matrix: each row of a padded batch scores as it would alone (quirk 5)."""
    model, _ = small_hellm(name)
    hist = torch.tensor([[-1, -1, 3, 4], [1, 2, 5, 6], [-1, -1, -1, 7]])
    with torch.no_grad():
        batch = model.scores(hist)
        alone = torch.cat([model.scores(h[h >= 0][None]) for h in hist])
    assert torch.allclose(batch, alone, atol=1e-5)


def test_parity_mode_lets_padded_rows_into_the_gram_matrix():
    """Quirk 3: the reference's padded rows are item 0 and enter E^T E, so a padded row's
    scores depend on its batch; clean mode masks them."""
    hist = torch.tensor([[-1, -1, 3, 4], [1, 2, 5, 6]])
    got = {}
    for mode in ("clean", "parity"):
        model, _ = small_hellm(mode=mode)
        with torch.no_grad():
            got[mode] = (model.scores(hist)[0], model.scores(hist[:1, 2:])[0])
    assert torch.allclose(*got["clean"], atol=1e-5)
    assert not torch.allclose(*got["parity"], atol=1e-3)


def test_gram_matrix_sums_over_real_items_only():
    from recpipe.hellm.prefix import GraphPrefix

    pre = GraphPrefix(2, 3, 8, 4, 0.0)
    e = torch.randn(2, 5, 4)
    keep = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    g = pre.gram(e, keep).view(2, 4, 4)
    assert torch.allclose(g[0], e[0, 2:].T @ e[0, 2:], atol=1e-6)
    assert torch.allclose(g[1], e[1].T @ e[1], atol=1e-6)
    assert torch.allclose(pre.gram(e, None).view(2, 4, 4)[0], e[0].T @ e[0], atol=1e-6)
    mean = GraphPrefix(2, 3, 8, 4, 0.0, gram_mean=True).gram(e, keep).view(2, 4, 4)
    assert torch.allclose(mean[0], g[0] / 3, atol=1e-6)


def test_the_prefix_reaches_every_layer_and_only_the_new_parts_train():
    model, _ = small_hellm()
    hist = torch.tensor([[1, 2, 3], [-1, 4, 5]])
    model.loss(hist, torch.tensor([6, 7])).backward()
    g = model.prefix.p_k.grad  # [layers, slots, hidden]
    assert g is not None and all(float(g[i].abs().sum()) > 0 for i in range(g.shape[0]))
    trains = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trains == {"lm", "item_proj", "prefix"}  # the head stays frozen (the reference)
    lm = [n for n, p in model.named_parameters() if p.requires_grad and n.startswith("lm.")]
    assert lm and all("lora_" in n and "mlp" in n for n in lm)  # LoRA on the FFN only
    head, _ = small_hellm(item_head="trained")
    assert head.head.weight.requires_grad
    none, _ = small_hellm(prefix_len=0)
    assert none.prefix is None and none.scores(hist).shape == (2, 10)


def test_a_tied_head_scores_each_item_against_its_own_soft_token():
    """item_head=tied: no head weights; item i's output row is item_proj([e_MMHCL(i);
    e_SASRec(i + 1)]), the same vector that stands for i in a history, and the head's
    gradient reaches the projector."""
    model, opt = small_hellm(item_head="tied")
    assert model.head is None and not any(n.startswith("head") for n, _ in model.named_parameters())
    hist = torch.tensor([[1, 2, 3], [-1, 4, 5]])
    soft = model.item_proj(torch.cat([model.e_mmhcl[[6]], model.e_sasrec[[7]]], -1))  # item 6
    with torch.no_grad():
        s = model.scores(hist)
        assert torch.allclose(s[:, 6], (model.hidden(hist) @ soft.T)[:, 0], atol=1e-5)
    # the head side alone trains the projector: with the LM's state held fixed, one step on
    # targets 6 and 7 (in no history) raises their scores
    h = model.hidden(hist).detach()
    loss = torch.nn.functional.cross_entropy(h @ model.item_table().T, torch.tensor([6, 7]))
    loss.backward()
    assert float(model.item_proj[2].weight.grad.abs().sum()) > 0
    before = (h @ model.item_table().T).log_softmax(-1)[[0, 1], [6, 7]]
    for g in opt.param_groups:
        g["lr"] = 1e-2
    opt.step()
    after = (h @ model.item_table().T).log_softmax(-1)[[0, 1], [6, 7]]
    assert bool((after > before).all())
    with pytest.raises(ParamError, match="hellm.item_head"):
        small_hellm(item_head="shared")


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    """The prefix cache stores nothing, so recomputed layers see the same prefix keys."""
    hist, target = torch.tensor([[1, 2, 3], [-1, 4, 5]]), torch.tensor([6, 7])
    grads = []
    for ckpt in (False, True):
        model, _ = small_hellm(gradient_checkpointing=ckpt)
        model.train()
        loss = model.loss(hist, target)
        loss.backward()
        grads.append((loss.item(), model.prefix.p_v.grad.clone(), model.item_proj[0].weight.grad.clone()))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-5)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-6)
    assert torch.allclose(grads[0][2], grads[1][2], atol=1e-6)
    with pytest.raises(ParamError, match="hellm.gradient_checkpointing"):  # GPT-2 drops it
        small_hellm("tiny-gpt2", gradient_checkpointing=True)


def test_trainable_parts_match_the_references_llama2_7b_decomposition():
    """hellm.md 5.8, on a LLaMA-2-7B config built on the meta device (no weights): LoRA r 16 on
    the FFN 23,199,744; prefix 2,621,440; item projector 17,309,696; Gram MLPs 67,125,248; the
    two prefix RMSNorms 8,192. Clean mode registers none of the reference's unused parts."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from recpipe.hellm.model import HeLLM
    from recpipe.llm.lora import LoraParams, apply_lora

    cfg = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32, vocab_size=32000)
    with torch.device("meta"):
        lm = apply_lora(LlamaForCausalLM(cfg), LoraParams(r=16, alpha=16, targets="mlp"))
        m = HeLLM(lm, [1], [1], np.zeros((12101, 64), np.float32), np.zeros((12102, 64), np.float32))
    count = lambda mod: sum(p.numel() for p in mod.parameters() if p.requires_grad)  # noqa: E731
    assert count(m.lm) == 23_199_744
    assert m.prefix.p_k.numel() + m.prefix.p_v.numel() == 2_621_440
    assert count(m.item_proj) == 17_309_696
    assert count(m.prefix.k_mlp) + count(m.prefix.v_mlp) == 67_125_248
    assert count(m) == 23_199_744 + 2_621_440 + 17_309_696 + 67_125_248 + 8_192
    assert not m.head.weight.requires_grad and m.head.weight.shape == (12101, 4096)


def test_lr_is_linear_warmup_then_half_cosine_to_min_lr():
    p = parse(HeLLMParams, {"train": {"lr": 3e-4}}, prefix="hellm")
    f = p.lr_lambda(25)
    assert f(0.0) == 0.0 and f(0.5) == pytest.approx(0.5)
    assert f(1.0) == pytest.approx(1.0) and f(25.0) == pytest.approx(5e-6 / 3e-4)
    assert f(13.0) == pytest.approx(5e-6 / 3e-4 + (1 - 5e-6 / 3e-4) * 0.5)  # half-way
    assert all(f(a) >= f(b) for a, b in zip(np.arange(1, 25, 0.5), np.arange(1.5, 25.5, 0.5)))


@pytest.mark.parametrize("bad, key", [({"mode": "faithful"}, "hellm.mode"),
                                      ({"lora": {"targets": "ffn"}}, "hellm.lora.targets"),
                                      ({"model": "llama-7b-please"}, "hellm.model"),
                                      ({"train": {"batch_size": 0}}, "hellm.train.batch_size"),
                                      ({"prefix_dropout": 1.0}, "hellm.prefix_dropout")])
def test_bad_params_name_the_key(bad, key):
    with pytest.raises(ParamError, match=key.replace(".", r"\.")):
        p = parse(HeLLMParams, bad, prefix="hellm")
        p.validate()


# -- the stage --------------------------------------------------------------------------------

def stage_files(tmp_path, processed, n_items, **hellm):
    from recpipe.io import write_npy

    mm, sa = tables(n_items, 8, 8)
    write_npy(tmp_path / "mmhcl" / "item_emb.npy", mm)
    write_npy(tmp_path / "sasrec" / "item_emb.npy", sa)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["hellm"].update({"model": "tiny-llama", "device": "cpu", "users": 40, "eval_users": 30,
                            **hellm})
    params["hellm"]["train"].update({"epochs": 2, "batch_size": 4, "save_every": 2})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return ["--params", str(tmp_path / "params.yaml"), "--processed", str(processed),
            "--mmhcl", str(tmp_path / "mmhcl"), "--sasrec", str(tmp_path / "sasrec")]


def outs(tmp_path, name):
    return ["--out", str(tmp_path / name), "--metrics", str(tmp_path / f"{name}.json"),
            "--plots", str(tmp_path / f"plots_{name}")]


def test_hellm_stage_trains_exports_and_names_a_bad_export(small_processed, tmp_path, capsys):
    from recpipe.data.view import load_view
    from recpipe.llm.backbone import load_backbone
    from recpipe.llm.lora import load_adapter

    n_items = load_view(small_processed).n_items
    args = stage_files(tmp_path, small_processed, n_items)
    assert stage("hellm").main(args + outs(tmp_path, "run")) == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["model"] == "hellm" and m["backbone"] == "tiny-llama" and m["train_users"] == 40
    assert m["test/units"] <= 30 and 0 <= m["test/ndcg@10"] <= 1 and m["steps"] > 0
    assert m["preset"] == "unified" and {"valid/ndcg@10", "train_samples", "trainable"} <= set(m)
    head = json.loads((tmp_path / "run.json").read_text())
    assert set(head) == {"test/recall@20", "test/ndcg@20", "selected_epoch"}
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "run" / "trainable.safetensors").is_file()
    hist = (tmp_path / "plots_run" / "plots" / "metrics" / "train" / "tokens_per_s.tsv")
    assert hist.is_file()
    # the saved adapter reloads into a fresh backbone: the LoRA weights round-trip
    base, _ = load_backbone("tiny-llama", device="cpu")
    lm = load_adapter(base, tmp_path / "run" / "adapter")
    assert any("lora_B" in n and float(p.abs().sum()) > 0 for n, p in lm.named_parameters())
    # a SASRec export without its padding row is refused, naming the file
    from recpipe.io import write_npy

    write_npy(tmp_path / "sasrec" / "item_emb.npy", np.zeros((n_items, 8), np.float32))
    capsys.readouterr()
    assert stage("hellm").main(args + outs(tmp_path, "bad")) == 2
    err = capsys.readouterr().err
    assert "sasrec/item_emb.npy" in err and f"[{n_items + 1}, d]" in err


def test_a_killed_hellm_stage_resumes_mid_epoch_to_the_uninterrupted_result(small_processed, tmp_path):
    """Adapter, projector, prefix, optimizer, schedule, RNG and data position all come back:
    the resumed run's metrics equal an uninterrupted run's."""
    from recpipe.data.view import load_view

    args = stage_files(tmp_path, small_processed, load_view(small_processed).n_items, users=12)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    cmd = lambda name: [sys.executable, str(ROOT / "stages" / "hellm.py"), *args, *outs(tmp_path, name)]  # noqa: E731
    subprocess.run(cmd("full"), env=env, check=True, timeout=300, capture_output=True)
    ckpt = tmp_path / "killed" / "ckpt"
    proc = subprocess.Popen(cmd("killed"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    # in the second epoch: its batch order is the data source's state, not the seed's
    while not (_ckpt_loop(ckpt).get("epoch") == 1 and _ckpt_loop(ckpt).get("pos", 0) >= 4) \
            and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the stage ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at = _ckpt_loop(ckpt)
    assert at["epoch"] == 1 and at["pos"] >= 4, at
    done = subprocess.run(cmd("killed"), env=env, check=True, timeout=300, capture_output=True, text=True)
    assert f"resumed from {ckpt}" in done.stdout
    full, resumed = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("full", "killed"))
    assert resumed["steps"] == full["steps"] and resumed["selected_epoch"] == full["selected_epoch"]
    for k in ("test/ndcg@10", "test/recall@20", "valid/ndcg@10"):
        assert resumed[k] == pytest.approx(full[k], abs=1e-6), k
    # the kept state may be epoch 0's: the second epoch's loss shows that it trained the same
    curve = lambda n: np.loadtxt(tmp_path / f"plots_{n}" / "plots" / "metrics" / "train" / "loss.tsv",  # noqa: E731
                                 skiprows=1)[:, 1]
    assert len(curve("full")) == 2 and curve("killed") == pytest.approx(curve("full"), rel=1e-6)


def test_smollm2_hellm_learns_a_batch(tmp_path):
    """The real offline backbone: a few steps on one batch lower its loss."""
    from recpipe.llm import smollm2

    if not smollm2.installed():
        pytest.skip(f"smollm2-135m is not installed; {smollm2.INSTALL}")
    model, opt = small_hellm("smollm2-135m", n_items=30, prefix_len=10)
    model.train()
    hist, target = torch.tensor([[1, 2, 3, 4], [-1, 5, 6, 7]]), torch.tensor([8, 9])
    losses = []
    for _ in range(4):
        loss = model.loss(hist, target)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
