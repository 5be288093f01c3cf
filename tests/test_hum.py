"""HUM (recpipe/hum, stage `hum`): texts and the <|emb|> layout, samples and the split rules,
negatives, the domain-weight update against a hand-computed step, the masking enhancer,
pooling at <|emb|>, the stage end to end under the `hum` preset and a resume after a kill."""

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

from recpipe.config import ParamError, parse  # noqa: E402
from recpipe.hum.params import PROMPT, HUMParams  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def temporal(tmp_path_factory):
    """The synthetic three-domain sample (200 users, 150 items, titles), split by HUM's
    global temporal protocol: a processed folder and its view."""
    from recpipe.data.ingest import ingest
    from recpipe.data.processed import build
    from recpipe.data.sample import SampleConfig, generate
    from recpipe.data.view import load_view
    from recpipe.params import DatasetParams, IngestParams, SplitParams

    d = tmp_path_factory.mktemp("hum")
    generate(SampleConfig(n_users=200, n_items=150, reviews_per_user_mean=10.0, seed=3), d / "raw")
    ingest(DatasetParams(path=str(d / "raw")), IngestParams(), d / "interim")
    split = {"protocol": "temporal", "user_core": 0, "item_core": 0}
    build(d / "interim", d / "processed", parse(SplitParams, split, prefix="split"), 3)
    return d / "processed", load_view(d / "processed")


def tiny(name="tiny-qwen2"):
    from recpipe.hum.params import EMB_TOKEN
    from recpipe.llm.backbone import load_backbone
    from recpipe.llm.tokens import special_id

    lm, tok = load_backbone(name, device="cpu", dtype="float32", seed=0)
    n = len(tok)
    emb = special_id(tok, EMB_TOKEN, add=True, model=lm)
    return lm, tok, emb, n


def test_the_emb_token_is_looked_up_and_sequences_follow_the_reference_layout():
    from recpipe.hum.data import Texts

    lm, tok, emb, n = tiny()
    assert emb == n and lm.get_input_embeddings().num_embeddings == n + 1  # added, not assumed
    t = Texts(tok, ["Red Kettle", "", "word " * 80], title_tokens=20, emb_id=emb)
    prompt = tok(PROMPT, add_special_tokens=False)["input_ids"]
    assert t.prompt == prompt and t.item_len == 20 + len(prompt)
    assert t.item(0) == prompt + tok("Red Kettle; ", add_special_tokens=False)["input_ids"] + [emb, t.eos]
    assert t.titles[1] == tok("None; ", add_special_tokens=False)["input_ids"]  # the "None; " rule
    long = t.item(2)  # F - 2 tokens, then <|emb|> and eos: the fixed length F
    assert len(long) == t.item_len and long[-2:] == [emb, t.eos] and long[:len(prompt)] == prompt
    user = t.user(np.array([0, 2]))
    assert user == prompt + t.titles[0] + t.titles[2] + [emb, t.eos]  # oldest first, no cut
    ids, mask = t.pad([t.item(0), user])
    assert (ids[np.arange(2), mask.sum(1) - 2] == emb).all()  # <|emb|> at sum(mask) - 2
    assert (ids[0, mask[0] == 0] == t.eos).all()  # right-padded with eos


def test_the_embedding_is_the_emb_state_whatever_the_padding():
    from recpipe.hum.data import Texts
    from recpipe.hum.model import HUM
    from recpipe.llm.scoring import decoder

    lm, tok, emb, _ = tiny()
    t = Texts(tok, ["a b c", "a much longer title with many words"], 42, emb)
    model = HUM(lm, emb).eval()
    seqs = [t.item(0), t.item(1)]
    ids, mask = t.pad(seqs)
    with torch.no_grad():
        both = model.encode(torch.from_numpy(ids), torch.from_numpy(mask), 1)
        for r, s in enumerate(seqs):  # each alone, unpadded: the state at <|emb|>
            h = decoder(lm)(input_ids=torch.tensor([s])).last_hidden_state[0, len(s) - 2]
            assert torch.allclose(both[r], h, atol=1e-5)
        assert torch.allclose(model.encode_all(seqs[::-1], t.pad, 1, "cpu", 1), both.flip(0), atol=1e-5)


def test_training_samples_never_see_their_target_or_a_held_out_item(temporal):
    from recpipe.hum.data import histories, training_samples

    _, data = temporal
    uid, pos = training_samples(data)
    seqs = data.sequences(("train",))
    assert len(uid) == data.train.nnz - (np.diff(seqs.indptr) > 0).sum()  # all but each first
    assert (pos != seqs.indptr[uid]).all()  # a user's first interaction is never a target
    hist = histories(seqs, uid, pos, 10)
    assert all(0 < len(h) <= 10 for h in hist)
    held = data.valid + data.test
    for u, p, h in zip(uid[:500], pos[:500], hist[:500]):
        assert seqs.items[p] not in h
        assert not held[u, h].sum()  # histories are training items only
    assert (seqs.ts[pos] >= [seqs.ts[p - 1] for p in pos]).all()  # time order


def test_negatives_stay_in_the_target_domain_and_clean_mode_never_draws_the_target(temporal):
    from recpipe.hum.data import Texts
    from recpipe.hum.run import HUMBatches

    _, data = temporal
    _, tok, emb, _ = tiny()
    texts = Texts(tok, data.item_titles, 42, emb)
    hits = {}
    for mode in ("clean", "parity"):
        p = parse(HUMParams, {"model": "tiny-qwen2", "mode": mode, "negatives": 40}, prefix="hum")
        b = HUMBatches(data, texts, p, 16, seed=1)
        rows = np.arange(16)
        _, _, i_ids, _, cand, dom = b.batch(rows)
        assert cand.shape == (16, 41) and len(i_ids) == len(np.unique(cand)) == cand.max() + 1
        assert dom.tolist() == b.domain[rows].tolist()
        for r in rows:  # column 0 is the target's own text
            want = texts.item(b.target[r])
            assert i_ids[cand[r, 0], :len(want)].tolist() == want
        # every sample's 40 draws at once: in the target's domain, the target only in parity
        neg = b.sampler.draw(np.repeat(b.uid, 40), sets=np.repeat(b.domain, 40),
                             targets=np.repeat(b.target, 40) if mode == "clean" else None)
        neg = neg.reshape(-1, 40)
        assert (data.item_domain[neg] == b.domain[:, None]).all()
        train_items = np.unique(data.train.indices)
        assert np.isin(neg, train_items).all()  # items that occur in training
        hits[mode] = int((neg == b.target[:, None]).sum())
    assert hits["clean"] == 0 and hits["parity"] > 0  # the reference's false negatives


def test_domain_weights_update_as_computed_by_hand():
    from recpipe.hum.domains import DomainWeights

    w = DomainWeights(3, eta=0.5, temperature=2.0, interval=2, start="uniform", sync=True).train()
    losses = torch.tensor([1.0, 3.0, 2.0, 4.0], requires_grad=True)
    dom = torch.tensor([0, 0, 1, 0])
    total = w.combine(losses, dom)  # 1/3 * mean(1, 3, 4) + 1/3 * 2 + 0 (domain 2 absent)
    assert total.item() == pytest.approx((8 / 3 + 2) / 3)
    total.backward()
    assert losses.grad.tolist() == pytest.approx([1 / 9, 1 / 9, 1 / 3, 1 / 9])  # w detached
    w.on_step(1)  # not yet: every 2 steps
    assert w.w.tolist() == pytest.approx([1 / 3] * 3)
    w.combine(torch.tensor([5.0]), torch.tensor([1]))
    w.on_step(2)  # window means: d0 (1+3+4)/3, d1 (2+5)/2, d2 unseen -> 0
    raw = np.array([np.exp(0.5 * (8 / 3) / 2), np.exp(0.5 * 3.5 / 2), 1.0]) / 3
    assert w.w.tolist() == pytest.approx((raw / raw.sum()).tolist())
    assert w.count.sum() == 0 and w.loss_sum.sum() == 0  # the window starts again
    w.eval()
    w.combine(torch.tensor([9.0]), torch.tensor([2]))
    assert w.count.sum() == 0  # evaluation is never counted
    parity = DomainWeights(3, start="ones")
    assert parity.w.tolist() == [1.0, 1.0, 1.0]


def test_the_masking_enhancer_drops_only_target_domain_items_of_mixed_histories():
    from recpipe.hum.data import mask_history

    rng = np.random.default_rng(0)
    hist, dom = np.arange(200), np.tile([0, 1], 100)
    kept = mask_history(hist, dom, 0, 0.5, rng)
    assert set(hist[dom == 1]) <= set(kept)  # other domains untouched
    assert 30 < (dom[kept] == 0).sum() < 70  # about half of the target domain's items
    same = np.zeros(50, int)
    assert len(mask_history(np.arange(50), same, 0, 0.9, rng)) == 50  # one domain: never
    assert len(mask_history(hist, dom, 0, 0.0, rng)) == 200


def test_bad_params_name_the_key():
    with pytest.raises(ParamError, match="hum.mask_ratio"):
        parse(HUMParams, {"mask_ratio": 1.0}, prefix="hum")
    with pytest.raises(ParamError, match="hum.mode"):
        parse(HUMParams, {"mode": "fast"}, prefix="hum")
    with pytest.raises(ParamError, match="hum.train.lr"):
        parse(HUMParams, {"train": {"lr": 0}}, prefix="hum")


def stage_args(tmp_path, processed, name="run", eval_=None, **hum):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["hum"].update({"model": "tiny-qwen2", "device": "cpu", "train_samples": 48,
                          "eval_users": 30, "dro_interval": 2, **hum})
    params["hum"]["train"].update({"epochs": 2, "batch_size": 8, "save_every": 2})
    params["eval"] = eval_ or {"preset": "hum", "average": "samples"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return ["--params", str(tmp_path / "params.yaml"), "--processed", str(processed),
            "--out", str(tmp_path / name), "--metrics", str(tmp_path / f"{name}.json"),
            "--plots", str(tmp_path / f"plots_{name}")]


def test_stage_ranks_every_held_out_interaction_within_its_domain(temporal, tmp_path):
    processed, data = temporal
    assert stage("hum").main(stage_args(tmp_path, processed)) == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["model"] == "hum" and m["preset"] == "hum" and m["train_samples"] == 48
    assert m["steps"] == 12  # 48 samples / 8 per step x 2 epochs
    for d in data.domains:  # per-domain tables, their macro average and spread
        assert 0 <= m[f"test/recall@10/{d}"] <= 1
    assert "test/recall@10/macro" in m and "test/ndcg@5/spread" in m
    weights = [m[f"domain_weight/{d}"] for d in data.domains]
    assert sum(weights) == pytest.approx(1) and len(set(weights)) == 3  # updated every 2 steps
    from recpipe.eval.samples import Samples

    users = np.unique(Samples.per_interaction(data, "test").uid)
    assert m["test/units"] == len(Samples.per_interaction(
        data, "test", users=np.sort(np.random.default_rng([2023, 2]).choice(data.n_users, 30, replace=False)))
        .uid) and len(users) > 0
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    # the ablation row: no domain weights
    assert stage("hum").main(stage_args(tmp_path, processed, "plain", domain_weights=False)) == 0
    plain = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    assert not any(k.startswith("domain_weight/") for k in plain) and not plain["domain_weights"]


def test_a_killed_stage_resumes_mid_epoch_to_the_uninterrupted_result(temporal, tmp_path):
    """LoRA, optimizer, RNG, batch position and the domain weights come back. Parity mode,
    whose weights reset at each epoch's start: a resume inside an epoch must not reset them."""
    processed, _ = temporal
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    script = str(ROOT / "stages" / "hum.py")
    small = {"mode": "parity", "train_samples": 32, "eval_users": 20}  # 4 steps an epoch
    subprocess.run([sys.executable, script, *stage_args(tmp_path, processed, "full", **small)],
                   env=env, check=True, timeout=300, capture_output=True)
    killed = stage_args(tmp_path, processed, "killed", **small)
    ckpt = tmp_path / "killed" / "ckpt"
    proc = subprocess.Popen([sys.executable, script, *killed], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (_ckpt_loop(ckpt).get("epoch") == 1 and _ckpt_loop(ckpt).get("pos", 0) >= 2) \
            and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the stage ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run([sys.executable, script, *killed], env=env, check=True, timeout=300,
                          capture_output=True, text=True)
    assert f"resumed from {ckpt}" in done.stdout
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("full", "killed"))
    assert a["steps"] == b["steps"]
    for k in a:  # the kept (best validated) state
        if k.startswith(("domain_weight/", "test/recall", "valid/recall")):
            assert a[k] == pytest.approx(b[k], rel=1e-6, abs=1e-9), k
    assert {k for k in a if k.startswith("domain_weight/")}  # weights were compared
    # the last state too (the kept one may be epoch 0's): LoRA and the domain weights
    from safetensors.torch import load_file

    last_a, last_b = (load_file(str(tmp_path / n / "ckpt.safetensors")) for n in ("full", "killed"))
    keys = [k for k in last_a if k.startswith("model.")]
    assert "model.weights.w" in keys and any("lora_B" in k for k in keys)
    for k in keys:
        assert torch.allclose(last_a[k], last_b[k], rtol=1e-6, atol=1e-8), k


def _ddp_run(processed, out, grad_accum: int, processes: int = 1, scoring: str = "") -> dict:
    script = str(ROOT / "tests" / "fixtures" / "hum_ddp.py")
    cmd = [sys.executable, script, str(processed), str(out), str(grad_accum), *([scoring] if scoring else [])]
    if processes > 1:  # `accelerate launch` as a user types it; no GPU here, so CPU processes
        # joined over gloo (port 0: a free one, so runs beside this never collide)
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               f"--num_processes={processes}", "--num_machines=1", "--main_process_port=0",
               "--mixed_precision=no", "--dynamo_backend=no", *cmd[1:]]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    env.pop("LOCAL_RANK", None)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((out / "fit.json").read_text())


@pytest.mark.parametrize("scoring", ["", "centred"])
def test_two_processes_keep_the_domain_weights_of_one_with_doubled_accumulation(temporal, tmp_path,
                                                                                scoring):
    """2 gloo processes under `accelerate launch` (grad_accum 1) and 1 process (grad_accum 2):
    the per-domain sums are all-reduced before each update, so weights and losses agree to
    1e-5; with the reference's dot products and with the centred cosine (each process
    estimates the same centres)."""
    processed, _ = temporal
    one = _ddp_run(processed, tmp_path / "one", grad_accum=2, scoring=scoring)
    two = _ddp_run(processed, tmp_path / "two", grad_accum=1, processes=2, scoring=scoring)
    assert (one["world"], two["world"]) == (1, 2) and one["steps"] == two["steps"] == 2
    assert one["losses"] == pytest.approx(two["losses"], rel=1e-5)
    assert one["weights"] == pytest.approx(two["weights"], rel=1e-5, abs=1e-7)
    assert len(set(one["weights"])) == 3  # they did move (two updates)


def test_cosine_scores_normalise_every_embedding_and_bound_the_logits(temporal):
    """hum.score=cosine: users and items (training and the evaluation's cached vectors) are
    unit vectors, so a logit is at most 1/temperature; dot (the default) leaves them raw."""
    from recpipe.hum.run import HUMBatches, build, item_vectors

    _, data = temporal
    norms = {}
    for score in ("dot", "cosine"):
        p = parse(HUMParams, {"model": "tiny-qwen2", "device": "cpu", "negatives": 3,
                              "score": score, "temperature": 0.05}, prefix="hum")
        model, _, texts = build(p, data, 1, "cpu")
        model.eval()
        batch = [torch.from_numpy(x) for x in HUMBatches(data, texts, p, 4, seed=1).batch(np.arange(4))]
        with torch.no_grad():
            u, v = model.encode(batch[0], batch[1], 0), model.encode(batch[2], batch[3], 1)
            items = item_vectors(model, texts, 16, "cpu")
        norms[score] = (u.norm(dim=1), v.norm(dim=1), items.norm(dim=1))
        if score == "cosine":
            logits = torch.einsum("bh,bnh->bn", u, v[batch[4]]) / p.temperature
            assert logits.abs().max() <= 1 / 0.05 + 1e-4
    for n in norms["cosine"]:
        assert torch.allclose(n, torch.ones_like(n), atol=1e-5)
    assert not torch.allclose(norms["dot"][2], torch.ones_like(norms["dot"][2]), atol=1e-2)
    with pytest.raises(ParamError, match=r"hum\.score.*cosine"):
        parse(HUMParams, {"score": "cos"}, prefix="hum")


def test_centring_subtracts_each_sides_mean_state_before_scoring(temporal):
    """hum.center=mean: the centres are the mean raw <|emb|> states of the sampled training
    histories (users) and items, from the untrained encoder; every encoding (training and the
    evaluation's cached vectors) has its side's centre removed before the cosine."""
    from recpipe.hum.data import histories
    from recpipe.hum.run import HUMBatches, build, fit, item_vectors

    _, data = temporal
    p = parse(HUMParams, {"model": "tiny-qwen2", "device": "cpu", "score": "cosine",
                          "temperature": 0.05, "center": "mean", "center_samples": 40,
                          "train_samples": 8, "eval_users": 10, "train": {"epochs": 1}},
              prefix="hum")
    model, _, texts = build(p, data, 1, "cpu")
    assert not model.means.any()  # build leaves them at zero: nothing subtracted
    b = HUMBatches(data, texts, p, 4, seed=1)
    users = [texts.user(h) for h in histories(b.seqs, b.uid, b.pos, p.history)]
    items = [texts.item(i) for i in range(data.n_items)]
    model.fit_means(users, items[:40], texts.pad, 16, "cpu")
    model.eval()
    with torch.no_grad():
        model.normalize = False
        raw = item_vectors(model, texts, 16, "cpu") + model.means[1]
        u_raw = model.encode_all(users, texts.pad, 16, "cpu", 0) + model.means[0]
        model.normalize = True
        assert torch.allclose(model.means[1], raw[:40].mean(0), atol=1e-4)
        assert torch.allclose(model.means[0], u_raw.mean(0), atol=1e-4)
        centred = torch.nn.functional.normalize(raw - model.means[1], dim=-1)
        assert torch.allclose(item_vectors(model, texts, 16, "cpu"), centred, atol=1e-5)
    # the stage's path sets them from the seeded samples, and the result reports through them
    res = fit(data, p, __import__("recpipe.eval.protocol", fromlist=["resolve"]).resolve(None), 1)
    assert res["model"].means.abs().sum() > 0 and res["test"].summary["units"] > 0
    with pytest.raises(ParamError, match=r"hum\.center.*mean"):
        parse(HUMParams, {"center": "median"}, prefix="hum")


def test_gradient_checkpointing_gives_the_same_loss_and_lora_gradients(temporal):
    """params.yaml turns it on (a SmolLM2 step of 8 samples: 10.6 GB peak RSS without, 4.4 GB
    with): the recomputed activations must give the loss and LoRA gradients of a plain pass,
    and the LoRA rows must get a gradient at all (frozen embeddings feed the first layer)."""
    from recpipe.hum.run import HUMBatches, build

    _, data = temporal
    got = {}
    for gc in (False, True):
        p = parse(HUMParams, {"model": "tiny-qwen2", "device": "cpu", "negatives": 3,
                              "gradient_checkpointing": gc, "lora": {"dropout": 0.0}},
                  prefix="hum")
        model, _, texts = build(p, data, 1, "cpu")
        model.train()
        batch = [torch.from_numpy(x) for x in HUMBatches(data, texts, p, 4, seed=1).batch(np.arange(4))]
        loss = model.loss(*batch)
        loss.backward()
        grads = {n: q.grad.clone() for n, q in model.named_parameters() if "lora_" in n}
        got[gc] = (float(loss), grads)
    assert got[True][0] == pytest.approx(got[False][0], rel=1e-6)
    assert set(got[True][1]) == set(got[False][1]) and got[True][1]
    assert any(float(g.abs().sum()) > 0 for g in got[True][1].values())
    for n, g in got[False][1].items():
        assert torch.allclose(got[True][1][n], g, rtol=1e-4, atol=1e-7), n


def test_minilm_is_a_real_bidirectional_encoder_option(temporal):
    """hum.model=minilm: the real all-MiniLM-L6-v2 (offline), <|emb|> added to its wordpiece
    vocabulary, [SEP] closing each text, LoRA on its attention; a training step moves LoRA."""
    from recpipe.hum.run import HUMBatches, build

    _, data = temporal
    p = parse(HUMParams, {"model": "minilm", "device": "cpu", "negatives": 3}, prefix="hum")
    model, opt, texts = build(p, data, 1, "cpu")
    tok_names = {n for n, q in model.named_parameters() if q.requires_grad}
    assert tok_names and all("lora_" in n for n in tok_names)
    assert any("attention.self.query" in n for n in tok_names)
    assert texts.eos == 102 and texts.emb == 30522  # [SEP]; the first id past the vocabulary
    batch = [torch.from_numpy(x) for x in HUMBatches(data, texts, p, 4, seed=1).batch(np.arange(4))]
    model.train()
    before = {n: q.detach().clone() for n, q in model.named_parameters() if q.requires_grad}
    loss = model.loss(*batch)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and any(not torch.equal(before[n], q) for n, q in
                                        model.named_parameters() if q.requires_grad)
    assert model.encode(batch[0], batch[1], 0).shape == (4, 384)


def test_baselines_are_scored_on_hums_samples_under_its_preset(temporal, tmp_path, monkeypatch):
    """The `hum` preset (eval.average=samples): MostPopular and BPR-MF, through their stage,
    rank every held-out interaction within its domain, as HUM does; the per-unit tables carry
    the sample ids the report pairs on."""
    import polars as pl

    from recpipe.eval.samples import Samples

    monkeypatch.setenv("TQDM_DISABLE", "1")
    processed, data = temporal
    params = {"seed": 2023, "eval": {"preset": "hum", "average": "samples"},
              "baselines": {"models": ["pop", "bprmf"], "device": "cpu",
                            "bprmf": {"train": {"epochs": 2, "eval_every": 1}}}}
    stage("baselines").run(params, processed, tmp_path / "metrics", tmp_path / "models")
    want = Samples.per_interaction(data, "test", by_domain=True)
    for name in ("pop", "bprmf"):
        m = json.loads((tmp_path / "models" / name / "metrics.json").read_text())
        assert m["preset"] == "hum" and m["test/units"] == want.n, name
        assert {f"test/recall@10/{d}" for d in data.domains} | {"test/recall@10/spread"} <= set(m)
        rows = pl.read_parquet(tmp_path / "models" / name / "per_user.parquet").filter(
            pl.col("part") == "test")
        assert sorted(rows["sample"]) == sorted(want.pos.tolist())


def test_data_without_titles_is_skipped_with_its_outputs_written(temporal, tmp_path):
    """HUM encodes titles: with none (the RLMRec release) the stage says so and writes its
    outputs marked skipped, which the report leaves out."""
    import shutil

    import polars as pl

    processed, _ = temporal
    folder = tmp_path / "processed"
    shutil.copytree(processed, folder)
    items = pl.read_parquet(folder / "items.parquet")
    items.with_columns(pl.lit(None, pl.String).alias("title")).write_parquet(folder / "items.parquet")
    assert stage("hum").main(stage_args(tmp_path, folder)) == 0
    for path in (tmp_path / "run" / "metrics.json", tmp_path / "run.json"):
        assert json.loads(path.read_text()) == {"model": "hum", "status": "skipped: no item titles"}
    assert (tmp_path / "plots_run" / "status.json").is_file()

