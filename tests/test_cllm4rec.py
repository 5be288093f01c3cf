"""CLLM4Rec (recpipe/cllm4rec): the ID-token scheme on two vocabularies, the item-restricted
collaborative LM against a softmax over the item slice of a full vocabulary, the mutual
regulariser's stop-gradient, the 20% masking and its targets, the chunked cross-entropy against
the direct one, and both stages end to end: pretrain, finetune, evaluate, resume after a kill."""

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
pytest.importorskip("transformers")

from conftest import ROOT, stage  # noqa: E402
from test_train_loop import _ckpt_loop  # noqa: E402

from recpipe.cllm4rec.data import Pieces, mask_items, rec_prompt  # noqa: E402
from recpipe.cllm4rec.params import CLLM4RecParams  # noqa: E402
from recpipe.config import ParamError, parse  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_model(name="tiny-gpt2", n_users=5, n_items=7, mode="clean", **kw):
    """(model, ids, pieces, tokenizer) on a random tiny backbone."""
    from recpipe.cllm4rec.model import CLLM4Rec
    from recpipe.llm.backbone import load_backbone
    from recpipe.llm.tokens import add_id_tokens

    lm, tok = load_backbone(name, device="cpu", dtype="float32")
    ids = add_id_tokens(None, tok, n_users, n_items)
    torch.manual_seed(0)
    return CLLM4Rec(lm, ids, mode=mode, **kw).eval(), ids, Pieces.of(tok), tok


def lm_batch_of(ids, pieces, rows):
    from recpipe.cllm4rec.data import lm_batch

    b = lm_batch([([int(ids.user(u)), *pieces.interacted], ids.item(np.array(it)).tolist())
                  for u, it in rows], "col", True, 1024)
    return {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in b.items()}


# -- tokens -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-qwen2"])
def test_id_tokens_follow_any_base_vocabulary_and_leave_the_model_alone(name):
    """Users right after the base vocabulary, then items; the backbone's tables keep their size
    (the ID rows live in the CLLM4Rec sets); prompts decode to the reference's wording."""
    model, ids, pieces, tok = small_model(name, n_users=4, n_items=6)
    base = len(tok) - 10
    assert (ids.user_base, ids.item_base, ids.end) == (base, base + 4, base + 10)
    assert tok.convert_tokens_to_ids("<user_3>") == base + 3
    assert tok.convert_tokens_to_ids("<item_0>") == base + 4
    assert model.lm.get_input_embeddings().weight.shape[0] < ids.user_base + 1 or name == "tiny-qwen2"
    text = tok.decode(rec_prompt(ids, pieces, 2, np.array([5, 1]), 64, True))
    assert text.replace(" ", "") == "<user_2>hasinteractedwith<item_5><item_1>,<user_2>willinteractwith"
    # an ID token reads its set's row; a word reads the frozen vocabulary
    x = torch.tensor([[ids.user(1), ids.item(2), 3]])
    e = model.embed("col", x)
    assert torch.equal(e[0, 0], model.sets["col"].weight[1])
    assert torch.equal(e[0, 1], model.sets["col"].weight[4 + 2])
    assert torch.equal(e[0, 2], model.lm.get_input_embeddings().weight[3])


def test_long_prompts_drop_items_in_clean_mode_and_lose_the_suffix_in_parity():
    _, ids, pieces, _ = small_model(n_users=2, n_items=50)
    items = np.arange(50)
    words = len(pieces.interacted) + len(pieces.comma) + len(pieces.will) + 2
    clean = rec_prompt(ids, pieces, 1, items, words + 10, keep_suffix=True)
    parity = rec_prompt(ids, pieces, 1, items, words + 10, keep_suffix=False)
    assert len(clean) == len(parity) == words + 10
    assert int(ids.is_item(np.array(clean)).sum()) == 10
    tail = [*pieces.comma, int(ids.user(1)), *pieces.will]
    assert clean[-len(tail):] == tail and parity[-len(tail):] != tail
    assert int(ids.is_item(np.array(parity)).sum()) > int(ids.is_item(np.array(clean)).sum())


# -- losses -----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["clean", "parity"])
def test_item_restricted_lm_is_a_softmax_over_the_item_slice_of_the_full_vocabulary(mode):
    """The collaborative CE equals -log softmax over the item columns of full logits whose
    rows are [vocabulary; users; items]; parity never predicts the first item of the list."""
    model, ids, pieces, _ = small_model(mode=mode, n_users=3, n_items=9)
    b = lm_batch_of(ids, pieces, [(0, [4, 1, 7]), (2, [0, 8, 3, 5, 2])])
    ce, _ = model.lm_loss("col", b["ids"], b["mask"], b["start"], reg=False)
    h = model.hidden("col", b["ids"], b["mask"])                         # [2, T, H]
    full = torch.cat([model.lm.get_output_embeddings().weight, model.sets["col"].weight])
    logits = h @ full.T                                                   # [2, T, V + U + I]
    want = []
    for row in range(2):
        n, start = int(b["mask"][row].sum()), int(b["start"][row])
        for t in range(start - 1 + (mode == "parity"), n - 1):
            tgt = int(b["ids"][row, t + 1])
            item_slice = logits[row, t, ids.item_base:ids.end]
            want.append(-torch.log_softmax(item_slice, -1)[tgt - ids.item_base])
    assert len(want) == (3 + 5) - 2 * (mode == "parity")
    assert ce.item() == pytest.approx(torch.stack(want).mean().item(), rel=1e-5)


def test_regulariser_has_a_stop_gradient_on_the_other_set():
    """Training the collaborative set leaves no gradient on the content set (and the reverse);
    parity's gradient is 2 lambda (a - b) summed per token occurrence."""
    model, ids, pieces, _ = small_model(mode="parity", lambda_v=0.5)
    with torch.no_grad():
        model.sets["con"].weight.normal_()
    b = lm_batch_of(ids, pieces, [(1, [2, 2, 3])])
    model.zero_grad()
    model.lm_loss("col", b["ids"], b["mask"], b["start"], reg=True)[0].backward()
    assert model.sets["con"].weight.grad is None and model.sets["col"].weight.grad is not None
    model.zero_grad()
    model.regularizer("col", "con", model.rows(b["ids"])[b["ids"] >= ids.user_base]).backward()
    assert model.sets["con"].weight.grad is None
    a, c = model.sets["col"].weight.detach(), model.sets["con"].weight
    grad = model.sets["col"].weight.grad
    row = 5 + 2  # item 2 appears twice in the list
    assert torch.allclose(grad[row], 2 * 0.5 * 2 * (a[row] - c[row].detach()), atol=1e-6)
    assert torch.count_nonzero(grad.abs().sum(1)) == 3  # user 1, items 2 and 3
    from recpipe.cllm4rec.data import doc_prompt, lm_batch

    doc = lm_batch([(doc_prompt(ids, pieces, 1, 2), [5, 6, 7])], "con", True, 64)
    doc = {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in doc.items()}
    model.zero_grad()
    model.lm_loss("con", doc["ids"], doc["mask"], doc["start"], reg=True)[0].backward()
    assert model.sets["col"].weight.grad is None and model.sets["con"].weight.grad is not None


def test_clean_regulariser_is_a_mean_over_unique_rows():
    model, *_ = small_model(mode="clean", lambda_v=2.0)
    with torch.no_grad():
        model.sets["con"].weight.normal_()
    rows = torch.tensor([0, 6, 6, 6])
    a, c = model.sets["col"].weight, model.sets["con"].weight
    want = 2.0 * ((a[[0, 6]] - c[[0, 6]]) ** 2).sum(-1).mean()
    assert model.regularizer("col", "con", rows).item() == pytest.approx(want.item(), rel=1e-6)


def test_chunked_cross_entropy_equals_the_direct_one_in_value_and_gradients():
    from recpipe.llm.chunked import chunked_cross_entropy

    g = torch.Generator().manual_seed(0)
    h = torch.randn(37, 8, generator=g, requires_grad=True)
    w = torch.randn(11, 8, generator=g, requires_grad=True)
    bias = torch.randn(11, generator=g)
    t = torch.randint(0, 11, (37,), generator=g)
    direct = torch.nn.functional.cross_entropy(h @ w.T + bias, t)
    gh, gw = torch.autograd.grad(direct, (h, w))
    for chunk in (1, 5, 37, 100):
        got = chunked_cross_entropy(h, w, t, chunk=chunk, bias=bias)
        ch, cw = torch.autograd.grad(got, (h, w))
        assert got.item() == pytest.approx(direct.item(), rel=1e-6)
        assert torch.allclose(ch, gh, atol=1e-6) and torch.allclose(cw, gw, atol=1e-6)
    assert chunked_cross_entropy(h[:0], w, t[:0]).item() == 0.0


# -- finetuning samples -----------------------------------------------------------------------

@pytest.mark.parametrize("n,k", [(1, 1), (4, 1), (5, 1), (10, 2), (19, 3), (20, 4)])
def test_masking_hides_max_1_floor_20_percent(n, k):
    items = np.arange(100, 100 + n)
    visible, hidden = mask_items(items, 0.2, np.random.default_rng(n))
    assert len(hidden) == k and len(visible) == n - k
    assert sorted([*visible, *hidden]) == items.tolist()


@pytest.mark.parametrize("mode", ["clean", "parity"])
def test_finetune_batches_show_visible_items_and_target_hidden_or_all(mode):
    from recpipe.cllm4rec.batches import FinetuneBatches

    _, ids, pieces, _ = small_model(n_users=3, n_items=30)
    users = [(0, np.arange(0, 10)), (1, np.arange(10, 30)), (2, np.array([7]))]
    src = FinetuneBatches(users, [], ids, pieces, 30, 8, seed=1, mask_ratio=0.2,
                          target="masked" if mode == "clean" else "all", max_tokens=1024,
                          keep_suffix=True)
    (b,) = list(src.epoch())
    for r in range(3):
        u = int(ids.to_index(b["ids"][r, 0]))
        items = dict(users)[u]
        shown = ids.to_index(b["ids"][r][ids.is_item(b["ids"][r])])
        target = np.flatnonzero(b["target"][r])
        hidden = sorted(set(items) - set(shown))
        assert len(hidden) == max(1, int(0.2 * len(items)))
        assert target.tolist() == (hidden if mode == "clean" else items.tolist())
    assert b["kind"] == "rec" and not b["reg"]  # no documents: nothing to regularise toward


def test_length_grouped_batches_cover_each_user_once_with_less_padding():
    """cllm4rec.group_by_length: every user once an epoch, batches of similar length (less
    padding than plain random batches), a random batch order, the same again for a seed."""
    from recpipe.cllm4rec.batches import PretrainBatches

    _, ids, pieces, _ = small_model(n_users=400, n_items=60)
    rng = np.random.default_rng(0)
    users = [(u, np.sort(rng.choice(60, size=int(rng.integers(1, 50)), replace=False)))
             for u in range(400)]

    def epoch(group, seed=3):
        src = PretrainBatches(users, [], ids, pieces, 8, seed, warmup=0, reorder=True,
                              max_tokens=1024, group=group)
        return list(src.epoch())

    grouped, plain = epoch(True), epoch(False)
    for batches in (grouped, plain):
        seen = [int(ids.to_index(u)) for b in batches for u in b["ids"][:, 0]]
        assert sorted(seen) == list(range(400)) and len(batches) == 50
    pad = lambda batches: sum(int((1 - b["mask"]).sum()) for b in batches)
    assert pad(grouped) < pad(plain) / 4
    widths = [b["mask"].shape[1] for b in grouped]
    assert widths != sorted(widths) and widths != sorted(widths, reverse=True)  # order shuffled
    again = epoch(True)
    assert all((a["ids"] == b["ids"]).all() for a, b in zip(grouped, again))
    assert any(a["ids"].shape != b["ids"].shape or (a["ids"] != b["ids"]).any()
               for a, b in zip(grouped, epoch(True, seed=4)))


# -- params -----------------------------------------------------------------------------------

@pytest.mark.parametrize("bad,key", [
    ({"mode": "exact"}, "cllm4rec.mode"),
    ({"model": "nope"}, "cllm4rec.model"),
    ({"fallback": "titles"}, "cllm4rec.fallback"),
    ({"pretrain": {"content_init": "zero"}}, "cllm4rec.pretrain.content_init"),
    ({"pretrain": {"train": {"epochs": 0}}}, "cllm4rec.pretrain.train.epochs"),
    ({"finetune": {"mask_ratio": 1.0}}, "cllm4rec.finetune.mask_ratio"),
    ({"finetune": {"epochs": 3}}, "cllm4rec.finetune: unknown key"),
])
def test_bad_params_name_the_key(bad, key):
    with pytest.raises(ParamError, match=key.replace(".", r"\.")):
        parse(CLLM4RecParams, bad, prefix="cllm4rec")


# -- the stages -------------------------------------------------------------------------------

def stage_args(tmp_path, processed, name="run", **cllm4rec):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    c = params["cllm4rec"]
    c.update({"model": "tiny-gpt2", "device": "cpu", "users": 30, "eval_users": 40,
              "doc_tokens": 16, **cllm4rec})
    c["pretrain"]["train"].update({"epochs": 2, "batch_size": 8, "save_every": 2})
    c["finetune"]["train"].update({"epochs": 2, "batch_size": 8, "save_every": 2})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    common = ["--params", str(tmp_path / "params.yaml"), "--processed", str(processed)]
    pre = [*common, "--out", str(tmp_path / f"{name}_pre"), "--plots", str(tmp_path / f"plots_{name}_pre")]
    fine = [*common, "--pretrain", str(tmp_path / f"{name}_pre"), "--out", str(tmp_path / name),
            "--metrics", str(tmp_path / f"{name}.json"), "--plots", str(tmp_path / f"plots_{name}")]
    return pre, fine


def test_stages_pretrain_finetune_and_evaluate_with_the_one_evaluator(small_processed, tmp_path, capsys):
    pre, fine = stage_args(tmp_path, small_processed)
    assert stage("cllm4rec_pretrain").main(pre) == 0
    pm = json.loads((tmp_path / "run_pre" / "metrics.json").read_text())
    assert pm["text_source"] == "review" and pm["documents"] > 100 and pm["train_users"] == 30
    assert pm["epochs"] == 2 and pm["steps"] > 0
    assert stage("cllm4rec_finetune").main(fine) == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["model"] == "cllm4rec" and m["backbone"] == "tiny-gpt2" and m["content_lm"]
    assert m["test/units"] <= 40 and 0 <= m["test/recall@20"] <= 1 and m["preset"] == "unified"
    assert "valid/recall@40" in m and "test/ndcg@100" in m
    head = json.loads((tmp_path / "run.json").read_text())
    assert set(head) == {"test/recall@20", "test/ndcg@20", "selected_epoch"}
    from safetensors.torch import load_file

    sets = load_file(str(tmp_path / "run" / "sets.safetensors"))
    assert set(sets) == {"rec.user", "rec.item", "con.user", "con.item"}
    pre_sets = load_file(str(tmp_path / "run_pre" / "sets.safetensors"))
    assert not torch.equal(sets["rec.item"], pre_sets["col.item"])  # finetuning moved it
    curve = tmp_path / "plots_run" / "plots" / "metrics" / "valid"
    assert any("recall@20+recall@40+ndcg@100" in p.name for p in curve.iterdir())
    # finetuning on sets of another split is refused, naming the file
    from safetensors.torch import save_file

    save_file({k: v[:3] for k, v in pre_sets.items()}, str(tmp_path / "run_pre" / "sets.safetensors"))
    capsys.readouterr()
    assert stage("cllm4rec_finetune").main(fine) == 2
    assert "run_pre/sets.safetensors: col has 3 users" in capsys.readouterr().err


def test_collaborative_only_pretraining_when_asked_or_without_text(small_processed, tmp_path):
    from recpipe.cllm4rec.run import pretrain, setup
    from recpipe.data.view import load_view

    p = parse(CLLM4RecParams, {"model": "tiny-gpt2", "users": 10, "fallback": "none",
                               "pretrain": {"content": False, "train": {"epochs": 1}}}, "cllm4rec")
    data = load_view(small_processed)
    s = setup(p, small_processed, data, 0, "cpu")
    assert s.docs == [] and s.text_source is None
    model, res = pretrain(s, progress=False)
    assert list(model.sets) == ["col"] and res.steps == 1  # 10 users: one batch of 20


def test_a_killed_pretrain_stage_resumes_mid_epoch_to_the_uninterrupted_result(small_processed, tmp_path):
    """Sets, optimizer, RNG, epoch counter and batch position come back: the resumed
    pretraining writes the same sets as an uninterrupted one."""
    from safetensors.torch import load_file

    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    script = str(ROOT / "stages" / "cllm4rec_pretrain.py")
    full, _ = stage_args(tmp_path, small_processed, "full", users=12)
    subprocess.run([sys.executable, script, *full], env=env, check=True, timeout=300,
                   capture_output=True)
    killed, _ = stage_args(tmp_path, small_processed, "killed", users=12)
    ckpt = tmp_path / "killed_pre" / "ckpt"
    proc = subprocess.Popen([sys.executable, script, *killed], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    # inside the second (alternating) epoch: past the warm-up's content-only epoch
    while not (_ckpt_loop(ckpt).get("epoch") == 1 and _ckpt_loop(ckpt).get("pos", 0) >= 4) \
            and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the stage ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at = _ckpt_loop(ckpt)
    assert at["epoch"] == 1 and at["pos"] >= 4, at
    done = subprocess.run([sys.executable, script, *killed], env=env, check=True, timeout=300,
                          capture_output=True, text=True)
    assert f"resumed from {ckpt}" in done.stdout
    a, b = (load_file(str(tmp_path / n / "sets.safetensors")) for n in ("full_pre", "killed_pre"))
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    ma, mb = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("full_pre", "killed_pre"))
    assert ma["steps"] == mb["steps"] and ma["train/loss"] == pytest.approx(mb["train/loss"], rel=1e-6)


def test_documents_are_training_reviews_or_item_texts_or_nothing(small_processed, tmp_path):
    """Reviews of training pairs only; without reviews, each pair's item title and description
    (labelled "item"); without either, no documents (the content LM is off)."""
    import shutil

    import polars as pl

    from recpipe.cllm4rec.data import documents

    docs, source = documents(small_processed, None, "item")
    rows = pl.read_parquet(small_processed / "interactions.parquet")
    train = rows.filter(pl.col("split") == "train")
    assert source == "review" and docs.height == train.unique(["uid", "iid"]).height
    held_out = set(rows.filter(pl.col("split") != "train").select("uid", "iid").iter_rows())
    assert not held_out & set(docs.select("uid", "iid").iter_rows())
    assert set(docs["text"]) <= set(train["review"].str.strip_chars())
    folder = tmp_path / "processed"
    shutil.copytree(small_processed, folder)
    rows.with_columns(pl.lit(None, pl.String).alias("review")).write_parquet(folder / "interactions.parquet")
    docs, source = documents(folder, np.array([0, 1]), "item")
    titles = dict(pl.read_parquet(folder / "items.parquet").select("iid", "title").iter_rows())
    assert source == "item" and set(docs["uid"]) == {0, 1}
    assert all(text.startswith(titles[i]) for i, text in docs.select("iid", "text").iter_rows())
    assert documents(folder, None, "none")[1] is None
    items = pl.read_parquet(folder / "items.parquet")
    items.with_columns(pl.lit(None, pl.String).alias("title"),
                       pl.lit(None, pl.String).alias("description")).write_parquet(folder / "items.parquet")
    assert documents(folder, None, "item")[1] is None


def test_selection_reads_r20_r40_n100_under_any_preset(small_processed):
    """The hellm preset computes K = 5, 10, 20 only; finetuning still selects on R@20 + R@40 +
    N@100 (validation adds those cut-offs) and reports test under the preset's own."""
    from recpipe.cllm4rec.finetune import finetune
    from recpipe.cllm4rec.run import setup
    from recpipe.data.view import load_view
    from recpipe.eval.protocol import resolve

    p = parse(CLLM4RecParams, {"model": "tiny-gpt2", "users": 8, "eval_users": 10,
                               "finetune": {"train": {"epochs": 1}}}, "cllm4rec")
    s = setup(p, small_processed, load_view(small_processed), 0, "cpu")
    out = finetune(s, {}, resolve({"preset": "hellm"}), progress=False)
    assert "valid/recall@20+recall@40+ndcg@100" in out["fit"].history[0]
    assert "recall@20" in out["test"].summary and "recall@40" not in out["test"].summary
