"""Baselines: each model's scores against hand or literal-numpy values, BPR-MF determinism and
validation-only selection, and the `baselines` stage end to end on the RLMRec Amazon-book split.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from conftest import stage

from recpipe.baselines import BPRMF, EASE, MODELS, BaselinesParams, ItemKNN, MostPopular
from recpipe.baselines.bprmf import BPRMFParams
from recpipe.baselines.ease import EASEParams, check_size
from recpipe.baselines.itemknn import ItemKNNParams, cosine_topk
from recpipe.config import ParamError, parse
from recpipe.eval.data import from_frames
from recpipe.eval.protocol import resolve

# 4 users x 4 items; item counts 3, 3, 2, 2
X = sp.csr_matrix(np.array([[1, 1, 0, 0],
                            [1, 1, 1, 0],
                            [0, 1, 1, 1],
                            [1, 0, 0, 1]], dtype=np.float32))


def test_registry_and_params_section():
    assert MODELS == {"pop": MostPopular, "itemknn": ItemKNN, "ease": EASE, "bprmf": BPRMF}
    cfg = parse(BaselinesParams, {"models": ["ease"], "ease": {"lambda_": 50}}, prefix="baselines")
    assert cfg.models == ["ease"] and cfg.ease.lambda_ == 50.0 and cfg.bprmf.dim == 64
    with pytest.raises(ParamError, match="baselines.models: 'knn' is not allowed"):
        parse(BaselinesParams, {"models": ["knn"]}, prefix="baselines")
    with pytest.raises(ParamError, match="baselines.bprmf: unknown key"):
        parse(BaselinesParams, {"bprmf": {"epoch": 3}}, prefix="baselines")


def test_pop_scores_are_training_counts():
    s = MostPopular().fit(X).scorer()(np.array([0, 3]))
    assert s.numpy().tolist() == [[3, 3, 2, 2], [3, 3, 2, 2]]


def test_itemknn_shrunk_cosine_by_hand():
    full = ItemKNN(ItemKNNParams(k=3, shrink=1.0)).fit(X).sim.toarray()
    r6 = math.sqrt(6)
    # items 0 and 1 share users 0, 1: 2 / (sqrt(3) sqrt(3) + 1)
    assert full[0, 1] == pytest.approx(0.5)
    # items 1 and 2 share users 1, 2: 2 / (sqrt(3) sqrt(2) + 1)
    assert full[1, 2] == pytest.approx(2 / (r6 + 1))
    # items 2 and 3 share user 2: 1 / (sqrt(2) sqrt(2) + 1)
    assert full[2, 3] == pytest.approx(1 / 3)
    assert np.all(np.diag(full) == 0) and np.allclose(full, full.T)
    # k=1 keeps each row's best neighbour only
    knn = ItemKNN(ItemKNNParams(k=1, shrink=1.0)).fit(X)
    s1 = knn.sim.toarray()
    assert [int(np.flatnonzero(r)[0]) for r in s1] == [1, 2, 1, 2]
    assert (knn.sim.getnnz(axis=1) == 1).all()
    # user 3 holds items 0 and 3: score = S[0] + S[3] = [0, 0.5, 1/3, 0]
    got = knn.scorer()(np.array([3])).numpy()[0]
    assert got == pytest.approx([0.0, 0.5, 1 / 3, 0.0])


def test_itemknn_matches_dense_formula_in_any_block_size():
    rng = np.random.default_rng(0)
    x = sp.csr_matrix((rng.random((60, 50)) < 0.15).astype(np.float32))
    dense = x.toarray().astype(np.float64)
    c = np.sqrt(dense.sum(0))
    ref = dense.T @ dense / (np.outer(c, c) + 2.0)  # shrunk cosine, literally
    np.fill_diagonal(ref, 0)
    one = cosine_topk(x, 5, 2.0)  # one slab
    for row in range(50):
        kept = one[row].toarray()[0]
        nz = np.flatnonzero(kept)
        assert len(nz) == min(5, np.count_nonzero(ref[row]))
        assert np.allclose(kept[nz], ref[row][nz], atol=1e-6)
        # nothing dropped beats what was kept
        assert np.delete(ref[row], nz).max(initial=0) <= kept[nz].min() + 1e-6
    for block in (1, 7, 50):
        assert abs(cosine_topk(x, 5, 2.0, block=block) - one).max() == 0
    users = np.arange(60)
    got = ItemKNN(ItemKNNParams(k=5, shrink=2.0)).fit(x).scorer()(users).numpy()
    assert np.abs(got - dense @ one.toarray()).max() < 1e-5


def test_ease_matches_numpy_inverse_with_zero_diagonal():
    rng = np.random.default_rng(1)
    x = sp.csr_matrix((rng.random((40, 12)) < 0.3).astype(np.float32))
    lam = 7.0
    xd = x.toarray().astype(np.float64)
    p = np.linalg.inv(xd.T @ xd + lam * np.eye(12))
    b_ref = np.eye(12) - p @ np.diag(1 / np.diag(p))
    for dtype, tol in (("float64", 1e-12), ("float32", 1e-5)):
        m = EASE(EASEParams(lambda_=lam, dtype=dtype)).fit(x)
        assert np.abs(m.b - b_ref).max() < tol
        assert np.all(np.diag(m.b) == 0)
        scores = m.scorer()(np.arange(40)).numpy()
        assert np.abs(scores - xd @ b_ref).max() < 1e-4


def test_ease_refuses_too_many_items_with_the_memory_it_needs():
    x = sp.csr_matrix((3, 12), dtype=np.float32)
    with pytest.raises(MemoryError, match=r"12 items .* above the limit baselines.ease.max_items=10"):
        EASE(EASEParams(max_items=10)).fit(x)
    # 100,000^2 float32 = 4e10 bytes = 37.3 GiB
    with pytest.raises(MemoryError, match=r"100,000 items need .*about 37\.3 GiB.*max_items=20,000"):
        check_size(100_000, EASEParams())
    with pytest.raises(MemoryError, match=r"only 1\.0 GiB is free"):
        check_size(20_000, EASEParams(), available=2**30)  # 20k^2 x 4 B = 1.5 GiB


def toy_split(seed: int = 0, n_users: int = 120, n_items: int = 60):
    """Two taste groups, so a trained model beats chance; random 3:1:1 split per interaction."""
    rng = np.random.default_rng(seed)
    group_u = rng.integers(0, 2, n_users)
    rows = []
    for u in range(n_users):
        pool = np.flatnonzero(np.arange(n_items) % 2 == group_u[u])
        for i in rng.choice(pool, 10, replace=False):
            rows.append((u, int(i), rng.choice(3, p=[0.6, 0.2, 0.2])))
    df = pl.DataFrame(rows, schema=["uid", "iid", "part"], orient="row")
    parts = [df.filter(pl.col("part") == k) for k in range(3)]
    return from_frames(*parts, n_users=n_users, n_items=n_items)


BPR_TOY = BPRMFParams(dim=8, reg=0.01, train={"lr": 0.05, "batch_size": 128, "epochs": 12, "eval_every": 3,
                                              "patience": 2})


def test_bprmf_same_seed_same_result_and_selects_on_validation(tmp_path):
    data = toy_split()
    cfg = resolve({"preset": "rlmrec"})
    a = BPRMF(BPR_TOY, seed=5, log_dir=tmp_path / "live").fit(data.train, data.valid, data, cfg)
    b = BPRMF(BPR_TOY, seed=5).fit(data.train, data.valid, data, cfg)
    c = BPRMF(BPR_TOY, seed=6).fit(data.train, data.valid, data, cfg)
    assert np.array_equal(a.user_emb, b.user_emb) and a.curve == b.curve
    assert not np.array_equal(a.user_emb, c.user_emb)
    # validates after 0-based epochs 0, 3, 6, ... and the last; keeps the best validation Recall@20
    epochs = [r["epoch"] for r in a.curve]
    assert epochs[:2] == [0, 3] and all(e % 3 == 0 or e == 11 for e in epochs)
    best = max(a.curve, key=lambda r: r["valid/recall@20"])
    assert a.selected_epoch == best["epoch"]
    # the test part is never read: scrambling it changes nothing
    data.test = sp.csr_matrix(data.test.shape, dtype=np.float32)
    d = BPRMF(BPR_TOY, seed=5).fit(data.train, data.valid, data, cfg)
    assert np.array_equal(a.item_emb, d.item_emb) and a.selected_epoch == d.selected_epoch
    # dvclive curve: one loss row per epoch run, one recall row per check
    loss = pl.read_csv(tmp_path / "live/plots/metrics/train/loss.tsv", separator="\t")
    rec = pl.read_csv(tmp_path / "live/plots/metrics/valid/recall@20.tsv", separator="\t")
    assert loss["step"].to_list() == list(range(epochs[-1] + 1))
    assert rec["step"].to_list() == epochs
    assert rec["recall@20"].to_list() == pytest.approx([r["valid/recall@20"] for r in a.curve])
    summary = json.loads((tmp_path / "live/metrics.json").read_text())
    assert summary["selected_epoch"] == a.selected_epoch
    assert not (tmp_path / "live" / "dvc.yaml").exists()


def load_stage():
    return stage("baselines")


@pytest.fixture(scope="module")
def amazon(rlmrec_processed) -> Path:
    """The RLMRec Amazon-book release (11,000 users x 9,332 items) as data/processed."""
    return rlmrec_processed


# trains in ~10-20 s on 2 cores (measured: see the lead's report)
BPR_AMAZON = {"reg": 0.05, "train": {"lr": 0.01, "batch_size": 4096, "epochs": 10, "eval_every": 5, "patience": 2}}


def test_stage_end_to_end_on_rlmrec_amazon(amazon, tmp_path, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    stage = load_stage()
    params = {"seed": 2023, "eval": {"preset": "rlmrec"},
              "baselines": {"models": ["pop", "bprmf"], "device": "cpu", "bprmf": BPR_AMAZON}}
    out = stage.run(params, amazon, tmp_path / "metrics", tmp_path / "models")
    pop = json.loads((tmp_path / "models" / "pop" / "metrics.json").read_text())  # the full files
    bpr = json.loads((tmp_path / "models" / "bprmf" / "metrics.json").read_text())
    assert json.loads((tmp_path / "metrics" / "pop.json").read_text())["test/recall@20"] == pop["test/recall@20"]
    assert out["pop"] == pop and out["bprmf"] == bpr
    for m in (pop, bpr):
        assert m["preset"] == "rlmrec" and m["mask_valid_at_test"] is False
        assert {"test/recall@20", "test/ndcg@20", "valid/recall@20", "test/recall@5"} <= set(m)
        assert m["test/units"] == 9860 and m["valid/units"] == 9857
    assert pop["model"] == "pop" and pop["selected_epoch"] is None
    # MostPopular is deterministic: pinned to the value measured on this split
    assert pop["test/recall@20"] == pytest.approx(POP_TEST_RECALL20, abs=1e-6)
    assert bpr["selected_epoch"] in (0, 5, 9)  # validated after 0-based epochs 0, 5 and the last
    assert bpr["test/recall@20"] > 2 * pop["test/recall@20"]
    assert bpr["test/ndcg@20"] > pop["test/ndcg@20"]
    # no `baselines.seeds`: one run with the top-level seed, today's single-seed layout
    assert pop["seed"] == bpr["seed"] == 2023 and not any(k.endswith("_std") for k in bpr)
    assert sorted(p.name for p in (tmp_path / "models" / "bprmf").iterdir()) == [
        "curves", "hparams.json", "metrics.json", "per_user.parquet"]
    assert json.loads((tmp_path / "models" / "bprmf" / "hparams.json").read_text())["params"]["train"]["epochs"] == BPR_AMAZON["train"]["epochs"]
    per_user = pl.read_parquet(tmp_path / "models" / "bprmf" / "per_user.parquet")
    assert per_user.filter(pl.col("part") == "test").height == 9860
    assert (tmp_path / "models" / "bprmf" / "curves" / "plots" / "metrics" / "valid" / "recall@20.tsv").exists()


POP_TEST_RECALL20 = 0.031806
