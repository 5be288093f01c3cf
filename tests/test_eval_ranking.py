"""Ranking invariants: results independent of the user batch size and of the backend (torch
vs faiss), `topk_exact` equal to a stable full sort under heavy ties, and -inf (masked) items
never ranked; on random data and on the real RLMRec Amazon-book split."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recpipe.eval import evaluator as ev
from recpipe.eval.data import SplitData, from_frames
from recpipe.eval.evaluator import evaluate, rank_units
from recpipe.eval.protocol import resolve
from recpipe.eval.ranking import faiss_topk, topk_exact
from recpipe.eval.scorers import EmbeddingScorer, FunctionScorer

pytest.importorskip("faiss")


def random_split(seed: int, n_users: int = 120, n_items: int = 400, domains: bool = True) -> SplitData:
    """Random per-interaction 3:1:1 split with two item domains."""
    rng = np.random.default_rng(seed)
    n = n_users * 20
    uid = rng.integers(0, n_users, n)
    iid = rng.integers(0, n_items, n)
    pairs = pl.DataFrame({"uid": uid, "iid": iid}).unique(maintain_order=True)
    part = rng.choice(3, pairs.height, p=[0.6, 0.2, 0.2])
    frames = [pairs.filter(pl.Series(part == p)) for p in range(3)]
    dom = None
    if domains:
        dom = pl.DataFrame({"iid": np.arange(n_items), "domain": rng.choice(["A", "B"], n_items)})
    return from_frames(*frames, n_users, n_items, dom)


def embeddings(seed: int, n_users: int, n_items: int, d: int = 32, item_pop=None):
    """Seeded Gaussian embeddings; with `item_pop` the first dimension carries log popularity
    so that the rankings hit targets often (metrics far from 0)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n_users, d)).astype(np.float32)
    i = rng.normal(size=(n_items, d)).astype(np.float32)
    if item_pop is not None:
        u[:, 0] = 4.0
        i[:, 0] = np.log1p(item_pop)
    return u, i


def frames_equal(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.columns == b.columns
    assert a.height == b.height
    for c in a.columns:
        assert a[c].to_list() == b[c].to_list(), c


# ------------------------------------------------------------------ batch size


class Spy:
    """FunctionScorer-compatible wrapper that records each batch's size."""

    def __init__(self, scorer):
        self.inner, self.n_items, self.sizes = scorer, scorer.n_items, []

    def __call__(self, users):
        self.sizes.append(len(users))
        return self.inner(users)


@pytest.mark.parametrize("preset", ["unified", "hum", "mmhcl"])
def test_metrics_identical_for_batch_sizes_1_7_all(preset, monkeypatch):
    data = random_split(0, n_users=60)
    u, i = embeddings(0, data.n_users, data.n_items, item_pop=np.asarray(data.train.sum(0)).ravel())
    base = EmbeddingScorer(u, i)
    results = {}
    for bs in (1, 7, 10**9):
        monkeypatch.setattr(ev, "_batch_size", lambda cfg, n_items, cpu=False, bs=bs: bs)
        spy = Spy(base)
        res = evaluate(spy, data, resolve({"preset": preset}), "test")
        if bs == 1:
            assert set(spy.sizes) == {1}
        elif bs == 7:
            assert spy.sizes[0] == 7 and max(spy.sizes) == 7 and len(spy.sizes) >= 8
        else:  # one batch per pass (unified on 2 domains: the overall and the per-domain pass)
            assert len(spy.sizes) == (2 if preset == "unified" else 1)
        results[bs] = res
    for bs in (1, 7):
        frames_equal(results[bs].per_unit, results[10**9].per_unit)
        assert results[bs].summary == results[10**9].summary
    assert results[1].summary["hr@20"] > 0.05  # the comparison covers real hits


def test_embedding_scorer_is_ranked_on_its_device_with_the_same_results():
    """The evaluator asks an embedding scorer for device-resident scores (no host copy of
    the block); the results equal those of the plain host-side path."""
    data = random_split(3, n_users=50)
    u, i = embeddings(3, data.n_users, data.n_items, item_pop=np.asarray(data.train.sum(0)).ravel())
    host = evaluate(FunctionScorer(EmbeddingScorer(u, i), data.n_items), data, resolve({"preset": "unified"}), "test")

    class DeviceOnly(EmbeddingScorer):
        def __call__(self, users):
            raise AssertionError("the host-side path was taken")

    dev = evaluate(DeviceOnly(u, i), data, resolve({"preset": "unified"}), "test")
    frames_equal(dev.per_unit, host.per_unit)
    assert dev.summary == host.summary and dev.summary["recall@20"] > 0


def test_memory_budget_sets_the_batch(monkeypatch):
    # n_items = 50,000: a row costs 12 * 50,000 B, so 16 MiB holds 27 users per batch. On a
    # CPU blocks stay at most CPU_BLOCK_MB (16) whatever the budget; on a GPU the budget rules
    n_users, n_items = 60, 50_000
    rng = np.random.default_rng(1)
    test = pl.DataFrame({"uid": np.arange(n_users), "iid": rng.integers(0, n_items, n_users)})
    empty = pl.DataFrame({"uid": [], "iid": []}, schema={"uid": pl.Int64, "iid": pl.Int64})
    data = from_frames(empty, empty, test, n_users, n_items)
    table = rng.normal(size=(n_users, n_items)).astype(np.float32)
    results = {}
    for mb, cap in ((16, 16), (1024, 16), (1024, 4096)):
        monkeypatch.setattr(ev, "CPU_BLOCK_MB", cap)  # 4096: as on a GPU, the budget decides
        spy = Spy(FunctionScorer(lambda users: table[users], n_items))
        results[mb, cap] = evaluate(spy, data, resolve({"preset": "rlmrec", "memory_mb": mb}),
                                    "test")
        assert max(spy.sizes) * n_items * 4 <= mb << 20  # the score block fits the budget
        results[mb, cap].sizes = spy.sizes
    assert results[16, 16].sizes == results[1024, 16].sizes == [27, 27, 6]
    assert results[1024, 4096].sizes == [60]
    frames_equal(results[16, 16].per_unit, results[1024, 4096].per_unit)


# ------------------------------------------------------------------ torch vs faiss


@pytest.mark.parametrize("preset", ["rlmrec", "unified", "cllm4rec_like"])
@pytest.mark.parametrize("seed", [0, 1])
def test_torch_and_faiss_agree_on_random_embeddings(preset, seed):
    data = random_split(seed, domains=preset == "unified")
    cfg = {"preset": preset}
    if preset == "cllm4rec_like":  # cllm4rec's options, averaged over users with targets
        cfg = {"preset": "cllm4rec", "average": "users_with_targets"}
    u, i = embeddings(seed, data.n_users, data.n_items, item_pop=np.asarray(data.train.sum(0)).ravel())
    sc = EmbeddingScorer(u, i)
    for part in ("valid", "test"):
        t = evaluate(sc, data, resolve({**cfg, "backend": "torch"}), part)
        f = evaluate(sc, data, resolve({**cfg, "backend": "faiss"}), part)
        frames_equal(t.per_unit, f.per_unit)
        assert t.summary == f.summary


def test_torch_and_faiss_agree_with_target_domain_candidates():
    data = random_split(0)
    u, i = embeddings(0, data.n_users, data.n_items)
    sc = EmbeddingScorer(u, i)
    t = evaluate(sc, data, resolve({"preset": "hum", "backend": "torch"}), "test")
    f = evaluate(sc, data, resolve({"preset": "hum", "backend": "faiss"}), "test")
    assert t.summary == f.summary


def test_faiss_ties_go_to_the_smaller_index():
    import torch

    rng = np.random.default_rng(0)
    u = rng.integers(0, 2, (50, 4)).astype(np.float32)  # scores 0..4: huge tie groups
    i = rng.integers(0, 2, (300, 4)).astype(np.float32)
    rows = np.arange(50)
    got, _ = faiss_topk(u, i, 20, [], rows)
    want, _ = topk_exact(torch.from_numpy(u @ i.T), 20)
    assert got.tolist() == want.tolist()


# ------------------------------------------------------------------ topk_exact


@pytest.mark.parametrize("k", [1, 3, 20, 199, 200])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_topk_exact_matches_a_stable_full_sort_under_ties(k, seed):
    import torch

    rng = np.random.default_rng(seed)
    scores = rng.integers(-2, 3, size=(64, 200)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.3] = -np.inf  # masked
    scores[5] = -np.inf  # a row with nothing to rank
    scores[6, :190] = -np.inf  # a row with fewer candidates than K
    idx, ok = topk_exact(torch.from_numpy(scores.copy()), k)
    assert idx.shape == (64, k) and ok.shape == (64, k)
    for r in range(64):
        row = scores[r].tolist()
        want = sorted((j for j in range(200) if row[j] != -np.inf), key=lambda j: (-row[j], j))[:k]
        n = len(want)
        assert ok[r].tolist() == [True] * n + [False] * (k - n)
        assert idx[r, :n].tolist() == want


def test_topk_exact_leaves_its_input_alone_and_rejects_nan():
    import torch

    s = torch.tensor([[1.0, 3.0, 2.0], [0.0, 0.0, 0.0]])
    before = s.clone()
    idx, _ = topk_exact(s, 2)
    assert idx.tolist() == [[1, 2], [0, 1]]
    assert torch.equal(s, before)
    s[0, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        topk_exact(s, 2)


def test_masked_items_never_returned_even_when_they_score_highest():
    data = random_split(3, domains=False)
    rng = np.random.default_rng(3)
    table = rng.normal(size=(data.n_users, data.n_items)).astype(np.float32)
    seen = (data.train + data.valid).toarray() > 0
    table[seen] = 1e30  # the masked items would otherwise take every top slot
    cfg = resolve({"preset": "unified"})
    users = np.arange(data.n_users)
    idx, ok = rank_units(FunctionScorer(lambda u: table[u], data.n_items), data,
                         [data.train, data.valid], users, np.full(len(users), -1), 100, cfg)
    for u in users:
        ranked = idx[u][ok[u]]
        assert not seen[u, ranked].any()
        assert ok[u].sum() == min(100, data.n_items - seen[u].sum())
    # and the faiss path obeys the same masks
    emb_u, emb_i = embeddings(3, data.n_users, data.n_items)
    fi, fok = faiss_topk(emb_u, emb_i, 100, [data.train, data.valid], users)
    for u in users:
        assert not seen[u, fi[u][fok[u]].numpy()].any()


# ------------------------------------------------------------------ real data


@pytest.fixture(scope="module")
def rlmrec_amazon(rlmrec_processed) -> SplitData:
    from recpipe.eval.data import load_split

    return load_split(rlmrec_processed)


def first_users(data: SplitData, n: int) -> SplitData:
    """The same catalogue, only the first n users (keeps the test fast)."""
    return SplitData(n, data.n_items, data.train[:n], data.valid[:n], data.test[:n],
                     data.item_domain, data.domains)


def test_real_rlmrec_split_torch_faiss_and_numpy_reference(rlmrec_amazon):
    full = rlmrec_amazon
    assert (full.n_users, full.n_items) == (11000, 9332)
    data = first_users(full, 2500)
    pop = np.asarray(full.train.sum(0)).ravel()
    u, i = embeddings(2023, data.n_users, data.n_items, item_pop=pop)
    sc = EmbeddingScorer(u, i)
    t = evaluate(sc, data, resolve({"preset": "rlmrec", "backend": "torch"}), "test")
    f = evaluate(sc, data, resolve({"preset": "rlmrec", "backend": "faiss"}), "test")
    frames_equal(t.per_unit, f.per_unit)
    assert t.summary["recall@20"] > 0.005  # popularity-aligned scores hit (random: ~0.002)

    # numpy reference (train masked, stable descending sort) on every 10th evaluated user
    per = t.per_unit.to_dicts()
    for row in per[::10]:
        uid = row["uid"]
        s = (u[uid] @ i.T).astype(np.float32)
        s[data.train[uid].indices] = -np.inf
        order = np.lexsort((np.arange(len(s)), -s))[:20]
        targets = set(data.test[uid].indices.tolist())
        hits = [int(j) in targets for j in order]
        disc = 1.0 / np.log2(np.arange(2, 22))
        idcg = disc[: min(20, len(targets))].sum()
        assert row["recall@20"] == pytest.approx(sum(hits) / len(targets), abs=1e-12)
        assert row["ndcg@20"] == pytest.approx(float(np.dot(hits, disc)) / idcg, abs=1e-9)
