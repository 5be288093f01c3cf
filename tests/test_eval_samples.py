"""Sample-level evaluation (`evaluate_samples`, `Samples`): several ranked units per user, each
with its own history, targets and candidates (evaluation.md sections 1-3, 5.7, 7, 9).

(a) `Samples.from_users` through `evaluate_samples` equals `evaluate` exactly on a real split,
    for every preset; (b) hand-computed examples: Example C (domain-restricted candidates) and
    sampled candidates; (c) two samples of one user with different histories and targets get
    different masks, a sample scorer is asked for sample rows; (d) leave-one-out samples on the
    real S3Rec Beauty sequences against a literal per-sample reference; plus the errors.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from conftest import shared_path
from test_eval_metrics import fixed, split

from recpipe.eval.data import SplitData, load_split
from recpipe.eval.evaluator import evaluate
from recpipe.eval.protocol import PRESETS, resolve
from recpipe.eval.sample_evaluator import evaluate_samples
from recpipe.eval.samples import Samples
from recpipe.eval.scorers import EmbeddingScorer

LOG2 = math.log2


def random_scorer(data: SplitData, seed: int = 0) -> EmbeddingScorer:
    """Random embeddings with item popularity in one dimension (so metrics are not ~0)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(data.n_users, 16)).astype(np.float32)
    i = rng.normal(size=(data.n_items, 16)).astype(np.float32)
    u[:, 0], i[:, 0] = 3.0, np.log1p(np.asarray(data.train.sum(0)).ravel())
    return EmbeddingScorer(u, i)


class Spy:
    """A user-level scorer that records the ids it is asked for."""

    def __init__(self, inner):
        self.inner, self.n_items, self.asked = inner, inner.n_items, []

    def __call__(self, users):
        self.asked.extend(np.asarray(users).tolist())
        return self.inner(users)


# ------------------------------------------------------------------ (a) per-user equivalence

def same_as_evaluate(scorer, data: SplitData, cfg, part: str) -> dict:
    """evaluate_samples(Samples.from_users) == evaluate: summary and per-unit rows, exactly."""
    want = evaluate(scorer, data, cfg, part)
    samples = Samples.from_users(data, part, by_domain=cfg.candidates == "target_domain")
    got = evaluate_samples(scorer, samples, data, cfg)
    assert got.summary == want.summary
    assert got.per_unit["sample"].to_list() == list(range(samples.n))
    rows = got.per_unit.drop("sample")
    # evaluate's frame holds the overall units first, then any per-domain units
    assert rows.equals(want.per_unit.head(rows.height))
    return got.summary


@pytest.mark.parametrize("part", ["valid", "test"])
@pytest.mark.parametrize("preset", sorted(set(PRESETS) - {"cllm4rec"}))
def test_from_users_equals_evaluate_on_a_real_split(small_split, preset, part):
    assert len(small_split.domains) == 3  # per-domain tables and HUM's domains are exercised
    s = same_as_evaluate(random_scorer(small_split), small_split, resolve({"preset": preset}), part)
    assert s["units"] > 100 and s["ndcg@10"] > 0.02
    if preset in ("unified", "hum"):
        assert s["recall@10/macro"] > 0 and s["domains_without_targets"] == []


def test_cllm4rec_all_users_raises_on_both_paths_then_agrees(small_split):
    cfg = resolve({"preset": "cllm4rec"})
    with pytest.raises(ValueError, match="all_users"):
        evaluate(random_scorer(small_split), small_split, cfg, "test")
    with pytest.raises(ValueError, match="all_users"):
        evaluate_samples(random_scorer(small_split), Samples.from_users(small_split, "test"),
                         small_split, cfg)
    d = small_split  # the users with a valid and a test target: every user has one
    keep = np.flatnonzero((np.diff(d.valid.indptr) > 0) & (np.diff(d.test.indptr) > 0))
    sub = SplitData(len(keep), d.n_items, d.train[keep], d.valid[keep], d.test[keep],
                    d.item_domain, d.domains)
    for part in ("valid", "test"):
        same_as_evaluate(random_scorer(sub), sub, cfg, part)


def test_faiss_backend_and_user_level_scorers_are_asked_for_uids(small_split):
    pytest.importorskip("faiss")
    same_as_evaluate(random_scorer(small_split), small_split,
                     resolve({"preset": "rlmrec", "backend": "faiss"}), "test")
    spy = Spy(random_scorer(small_split))
    samples = Samples.from_users(small_split, "test")
    evaluate_samples(spy, samples, small_split, resolve({"preset": "rlmrec"}))
    assert spy.asked == samples.uid.tolist()


# ------------------------------------------------------------------ (b) hand-computed examples

def test_example_a_one_multi_target_sample():
    """Section 9, Example A as one sample with targets {3, 4, 5}: the protocol's masks come
    from the user's rows (train; valid at test), or all three from the sample's history."""
    data = split(1, 8, train=[(0, 0), (0, 1)], valid=[(0, 2)])
    scores = fixed([0.9, 0.8, 0.7, 0.6, 0.1, 0.5, 0.4, 0.3])
    row = pl.DataFrame({"uid": [0], "iid": [[3, 4, 5]]})
    samples = Samples.from_frame(row, data)
    assert samples.targets[0].indices.tolist() == [3, 4, 5]
    s = evaluate_samples(scores, samples, data, resolve({"preset": "rlmrec", "ks": [2, 5]})).summary
    assert [round(s[k], 4) for k in ("recall@2", "ndcg@2", "recall@5", "ndcg@5", "precision@5")] \
        == [0.3333, 0.3869, 0.6667, 0.5307, 0.4]
    masked = {"recall@2": 0.6667, "ndcg@2": 1.0, "recall@5": 1.0, "ndcg@5": 0.9469}
    s = evaluate_samples(scores, samples, data, resolve({"preset": "unified", "ks": [2, 5]})).summary
    assert {k: round(s[k], 4) for k in masked} == masked
    own = Samples.from_frame(row.with_columns(history=pl.Series([[0, 1, 2]])), data)
    s = evaluate_samples(scores, own, data, resolve({"preset": "hellm", "ks": [2, 5]})).summary
    assert {k: round(s[k], 4) for k in masked} == masked


# Example C: items 1-4 are domain A, 5-6 domain B (item 0, unused, is in B with the lowest score)
C_DOMAINS = {0: "B", 1: "A", 2: "A", 3: "A", 4: "A", 5: "B", 6: "B"}
C_SCORES = [0.0, 0.7, 0.5, 0.8, 0.4, 0.9, 0.3]


def test_example_c_domain_restricted_candidates():
    data = split(1, 7, domains=C_DOMAINS)
    one = pl.DataFrame({"uid": [0], "iid": [3], "domain": ["A"]})
    s = evaluate_samples(fixed(C_SCORES), Samples.from_frame(one, data), data,
                         resolve({"preset": "hum", "average": "samples", "ks": [1, 2]})).summary
    assert s["hr@1"] == 1.0 and s["ndcg@1"] == 1.0 and s["units"] == 1
    assert s["hr@1/A"] == 1.0 and s["hr@1/macro"] == 1.0
    assert s["domains_without_targets"] == ["B"]
    assert Samples.from_frame(one.with_columns(domain=pl.lit(0)), data).domain.tolist() == [0]
    # candidates = all: item 5 (domain B) outranks the target, rank(3) = 2
    everywhere = one.with_columns(domain=pl.lit(None, pl.Utf8))
    s = evaluate_samples(fixed(C_SCORES), Samples.from_frame(everywhere, data), data,
                         resolve({"preset": "hum", "average": "samples", "candidates": "all",
                                  "ks": [1, 2]})).summary
    assert s["hr@1"] == 0.0
    assert s["hr@2"] == 1.0 and s["ndcg@2"] == pytest.approx(1 / LOG2(3), abs=1e-12)


# sampled candidates: 10 items; sample 0 ranks target 3 among {3, 1, 5, 8, 9} (only item 8
# scores higher: rank 2), sample 1 target 9 among {9, 1, 5} (rank 3, the lowest). Over all
# items the targets are at ranks 7 and 10.
S_SCORES = [0.9, 0.1, 0.8, 0.3, 0.7, 0.2, 0.6, 0.5, 0.4, 0.05]
S_FRAME = pl.DataFrame({"uid": [0, 0], "iid": [3, 9], "candidates": [[3, 1, 5, 8, 9], [9, 1, 5]]})


def test_sampled_candidates_hand_computed():
    data = split(1, 10)
    cfg = resolve({"preset": "hellm", "candidates": "sampled", "average": "samples",
                   "ks": [1, 5, 10]})
    res = evaluate_samples(fixed(S_SCORES), Samples.from_frame(S_FRAME, data), data, cfg)
    per = res.per_unit
    assert per["sampled_hr@1"].to_list() == [0.0, 0.0]
    assert per["sampled_hr@5"].to_list() == [1.0, 1.0]  # a leaked non-candidate would push 9 out
    assert per["sampled_ndcg@5"].to_list() == pytest.approx([1 / LOG2(3), 1 / LOG2(4)], abs=1e-12)
    assert per["sampled_mrr@5"].to_list() == pytest.approx([1 / 2, 1 / 3], abs=1e-12)
    # fewer candidates than K: the empty slots are misses
    assert per["sampled_precision@10"].to_list() == pytest.approx([0.1, 0.1], abs=1e-12)
    s = res.summary
    assert s["sampled_hr@5"] == 1.0 and s["units"] == 2
    assert s["sampled_ndcg@5"] == pytest.approx((1 / LOG2(3) + 0.5) / 2, abs=1e-12)
    assert not any(k.startswith(("hr@", "ndcg@")) for k in s)  # section 7: always prefixed
    # the same samples ranked over all items: ranks 7 and 10
    full = evaluate_samples(fixed(S_SCORES), Samples.from_frame(S_FRAME.drop("candidates"), data),
                            data, resolve({"preset": "hellm", "average": "samples", "ks": [5, 10]}))
    assert full.summary["hr@5"] == 0.0 and full.summary["hr@10"] == 1.0
    assert full.summary["ndcg@10"] == pytest.approx((1 / LOG2(8) + 1 / LOG2(11)) / 2, abs=1e-12)


# ------------------------------------------------------------------ (c) per-sample histories

class TableSamples:
    """A sample scorer: sample row r scores the items as table[r] (a user-level scorer could
    not tell the two samples of one user apart). Records the rows it is asked for."""

    def __init__(self, table):
        self.table, self.asked = np.asarray(table, dtype=np.float32), []

    def sample_scores(self, rows, samples):
        self.asked.extend(np.asarray(rows).tolist())
        return self.table[rows].copy()


def test_two_samples_of_one_user_get_their_own_history_and_targets():
    # user 0's sequence 0, 1, 2, 3: sample 0 = history {0, 1} -> 2, sample 1 = {0, 1, 2} -> 3
    data = split(1, 6, train=[(0, 0), (0, 1)])
    rows = pl.DataFrame({"uid": [0, 0], "iid": [2, 3], "history": [[0, 1], [0, 1, 2]]})
    samples = Samples.from_frame(rows, data)
    assert samples.exclude[0].indices.tolist() == [0, 1]
    scorer = TableSamples([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]])
    cfg = resolve({"preset": "hellm", "average": "samples", "ks": [1, 3]})
    res = evaluate_samples(scorer, samples, data, cfg)
    assert scorer.asked == [0, 1]  # sample rows, not the user id twice
    # each target is first once its own history is masked (shared masks: 2 masked, or 3 at 3)
    assert res.per_unit["hr@1"].to_list() == [1.0, 1.0]
    # history kept (no exclude): the targets sit at ranks 3 and 4
    kept = evaluate_samples(scorer, Samples.from_frame(rows.drop("history"), data), data, cfg)
    assert kept.per_unit["hr@3"].to_list() == [1.0, 0.0]
    # the sample scorer's own rows count: swap sample 1's scores so item 5 comes first
    scorer.table[1] = [0.9, 0.8, 0.7, 0.6, 0.5, 1.0]
    res = evaluate_samples(scorer, samples, data, cfg)
    assert res.per_unit["hr@1"].to_list() == [1.0, 0.0]
    # mask_train adds the user's train row {0, 1} to each sample's own history
    flat = TableSamples([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4]] * 2)
    own = rows.with_columns(history=pl.Series([[], [2]], dtype=pl.List(pl.Int64)))
    rlmrec = resolve({"preset": "rlmrec", "average": "samples", "ks": [1]})
    res = evaluate_samples(flat, Samples.from_frame(own, data), data, rlmrec)
    assert res.per_unit["hr@1"].to_list() == [1.0, 1.0]
    # a target in the masked train row could never be ranked: an error, not a silent miss
    with pytest.raises(ValueError, match="masked items"):
        evaluate_samples(flat, Samples.from_frame(pl.DataFrame({"uid": [0], "iid": [1]}), data),
                         data, rlmrec)


# ------------------------------------------------------------------ errors

def test_clear_errors():
    data = split(2, 6, test=[(0, 1), (1, 2)], domains={i: "AB"[i % 2] for i in range(6)})
    t = data.test
    with pytest.raises(ValueError, match=r"targets has shape"):
        Samples(np.array([0]), t)
    with pytest.raises(ValueError, match=r"exclude has shape"):
        Samples(np.array([0, 1]), t, exclude=t[:1])
    with pytest.raises(ValueError, match="no target"):
        Samples(np.array([0, 1]), t[[0, 0]].multiply(0).tocsr())
    with pytest.raises(ValueError, match="outside their candidates"):
        Samples(np.array([0, 1]), t, candidates=t[[1, 0]])
    with pytest.raises(ValueError, match="uid must lie"):
        Samples(np.array([0, 5]), t).check(data)
    with pytest.raises(ValueError, match="ranks within"):  # item 1 is in B, not A
        Samples(np.array([0, 1]), t, domain=[0, 0]).check(data)
    with pytest.raises(ValueError, match="unknown domain"):
        Samples.from_frame(pl.DataFrame({"uid": [0], "iid": [1], "domain": ["C"]}), data)
    two = Samples(np.array([0, 0]), t)  # one user, two samples
    with pytest.raises(ValueError, match="average=samples"):
        evaluate_samples(fixed(range(6)), two, data, resolve({"preset": "rlmrec"}))
    with pytest.raises(ValueError, match="target_domain"):
        evaluate_samples(fixed(range(6)), two, data, resolve({"preset": "hum", "average": "samples"}))
    with pytest.raises(ValueError, match="eval.candidates=sampled"):
        evaluate_samples(fixed(range(6)), Samples(np.array([0, 0]), t, candidates=t), data,
                         resolve({"preset": "rlmrec", "average": "samples"}))
    with pytest.raises(ValueError, match="evaluate_samples"):
        evaluate(fixed(range(6)), data, resolve({"preset": "rlmrec", "candidates": "sampled"}), "test")


# ------------------------------------------------------------------ (d) leave-one-out, real data

@pytest.fixture(scope="module")
def beauty_loo(tmp_path_factory):
    """S3Rec Beauty through the project's ingest and the `loo` split: (view, time-ordered
    sequences (uid, iid list) of the first 4,000 users)."""
    from recpipe.config import parse
    from recpipe.data.ingest import ingest
    from recpipe.data.processed import build
    from recpipe.params import DatasetParams, IngestParams, SplitParams

    src = shared_path("s3rec_seq", "Beauty.txt").parent
    root = tmp_path_factory.mktemp("beauty_loo")
    ingest(parse(DatasetParams, {"format": "seqtxt", "path": str(src)}, prefix="dataset"),
           parse(IngestParams, {"categories": ["Beauty"]}, prefix="ingest"), root / "interim")
    build(root / "interim", root / "processed", parse(SplitParams, {"protocol": "loo"}, prefix="split"), 3)
    p = root / "processed"
    rows = pl.concat([pl.read_parquet(p / f"{s}.parquet", columns=["uid", "iid", "ts"])
                      for s in ("train", "valid", "test")])
    seqs = (rows.filter(pl.col("uid") < 4000).sort(["uid", "ts"], maintain_order=True)
            .group_by("uid", maintain_order=True).agg("iid"))
    return load_split(p), seqs


def loo_samples(seqs: pl.DataFrame, back: int) -> pl.DataFrame:
    """The sample whose target is `back` from the end, its history everything before it."""
    n = pl.col("iid").list.len()
    return seqs.select("uid", pl.col("iid").list.get(-back).alias("target"),
                       pl.col("iid").list.head(n - back).alias("history")).rename({"target": "iid"})


def test_loo_test_samples_equal_user_level_evaluation_with_history_as_train(beauty_loo):
    """One test sample per user, history = train + valid items, excluded per sample, equals
    `evaluate` on a view whose train part is that history (mask_train)."""
    data, seqs = beauty_loo
    assert (data.n_users, data.n_items) == (22_363, 12_101)
    n = seqs.height
    hist = data.train[:n] + data.valid[:n]
    view = SplitData(n, data.n_items, hist, data.valid[:n].multiply(0).tocsr(), data.test[:n],
                     data.item_domain, data.domains)
    scorer = random_scorer(view, 7)
    want = evaluate(scorer, view, resolve({"preset": "hellm", "mask_train": True}), "test")
    samples = Samples.from_frame(loo_samples(seqs, 1), data)
    assert (samples.exclude != hist).nnz == 0  # the history column is train + valid
    got = evaluate_samples(scorer, samples, data, resolve({"preset": "hellm"}))
    assert got.summary == want.summary and got.summary["units"] == n
    assert got.summary["hr@10"] > 0.003  # ~25 hits; random scores: ~0.0008


class HistorySum:
    """A toy sequence model: a sample's vector is the sum of its history items' integer
    embeddings, plus 4 x a popularity level; integer scores, so float32 is exact and ties are
    frequent (the smaller item index must win them)."""

    def __init__(self, data: SplitData, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.emb = rng.integers(-2, 3, size=(data.n_items, 6)).astype(np.float32)
        pop = np.asarray(data.train.sum(0)).ravel()
        self.bias = (4 * np.floor(np.log2(1 + pop))).astype(np.float32)

    def sample_scores(self, rows, samples):
        vec = np.asarray(samples.exclude[rows] @ self.emb, dtype=np.float32)
        return vec @ self.emb.T + self.bias


def test_loo_every_position_samples_against_a_literal_reference(beauty_loo):
    data, seqs = beauty_loo
    frame = pl.concat([loo_samples(seqs, b).with_columns(back=pl.lit(b)) for b in (1, 2, 3)])
    frame = frame.sort(["uid", "back"], descending=[False, True])  # each user's samples in order
    samples = Samples.from_frame(frame.drop("back"), data)
    model = HistorySum(data)
    cfg = resolve({"preset": "hellm", "average": "samples", "ks": [10]})
    res = evaluate_samples(model, samples, data, cfg)
    assert res.summary["units"] == 3 * seqs.height
    assert res.per_unit["uid"].to_list() == frame["uid"].to_list()
    # literal reference: rank = 1 + better unmasked items + equal unmasked items of smaller id
    hr, ndcg = [], []
    hist_lists, targets = frame["history"].to_list(), frame["iid"].to_list()
    for start in range(0, samples.n, 2000):
        rows = np.arange(start, min(start + 2000, samples.n))
        block = model.sample_scores(rows, samples)
        for b, r in enumerate(rows):
            s, t = block[b].copy(), targets[r]
            s[hist_lists[r]] = -np.inf
            rank = 1 + int((s > s[t]).sum()) + int((s[:t] == s[t]).sum())
            hr.append(1.0 if rank <= 10 else 0.0)
            ndcg.append(1.0 / LOG2(rank + 1) if rank <= 10 else 0.0)
    assert res.per_unit["hr@10"].to_list() == hr
    assert res.per_unit["ndcg@10"].to_list() == pytest.approx(ndcg, abs=1e-12)
    assert res.summary["hr@10"] > 0.003  # ~55 hits; random scores: ~0.0008
    # the three samples of a user differ (own targets and histories), not one repeated unit
    by_user = res.per_unit.group_by("uid").agg(pl.col("ndcg@10").n_unique())
    assert (by_user["ndcg@10"] > 1).sum() > 10
    # earlier targets lie in the user's train row: masking it would hide them
    with pytest.raises(ValueError, match="masked items"):
        evaluate_samples(model, samples, data, resolve({"preset": "rlmrec", "average": "samples"}))


# ------------------------------------------------------------------ HUM's per-interaction units

def _temporal_view():
    """Two users over domains A (items 0-2) and B (items 3-5); user 0's timeline:
    t1 i0 (train), t2 i3 (train), t3 i1 (valid), t4 i4 (test), t5 i2 (test); user 1's first
    interaction is in valid (t3 i5), then t6 i0 (test)."""
    from recpipe.data.view import from_frames

    def f(rows):
        return pl.DataFrame(rows, schema={"uid": pl.Int32, "iid": pl.Int32, "ts": pl.Int64},
                            orient="row")

    dom = pl.DataFrame({"iid": range(6), "domain": ["A"] * 3 + ["B"] * 3})
    return from_frames(f([(0, 3, 2), (0, 0, 1)]), f([(0, 1, 3), (1, 5, 3)]),
                       f([(0, 2, 5), (0, 4, 4), (1, 0, 6)]), 2, 6, dom)


def test_per_interaction_samples_follow_hum_rules():
    data = _temporal_view()
    seqs = data.sequences(("train", "valid", "test"))
    test = Samples.per_interaction(data, "test", by_domain=True)
    # one sample per test interaction, in time order per user; a user may have several
    assert test.uid.tolist() == [0, 0, 1]
    assert test.targets.indices.tolist() == [4, 2, 0]
    assert test.domain.tolist() == [1, 0, 0]  # the target's domain
    # histories cross the split: user 0's last test sample sees train, valid and test items
    assert [seqs.items[seqs.indptr[u]:p].tolist() for u, p in zip(test.uid, test.pos)] == \
        [[0, 3, 1], [0, 3, 1, 4], [5]]
    valid = Samples.per_interaction(data, "valid")
    assert valid.uid.tolist() == [0]  # user 1's first interaction is no target
    assert (valid.domain == -1).all()  # ranked over every item without by_domain
    only1 = Samples.per_interaction(data, "test", users=np.array([1]))
    assert only1.uid.tolist() == [1]
    for s in (test, valid):  # the target is never among the items before it
        for u, p in zip(s.uid, s.pos):
            assert seqs.items[p] not in seqs.items[seqs.indptr[u]:p]


def test_average_samples_makes_evaluate_rank_per_interaction():
    data = _temporal_view()
    scores = np.array([[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]], dtype=np.float32)
    cfg = resolve({"preset": "hum", "average": "samples", "ks": [1, 2]})
    got = evaluate(fixed(scores), data, cfg, "test")
    # user 0 ranks A as [2, 1, 0] and B as [5, 4, 3]; user 1 ranks A as [0, 1, 2]
    # samples: (u0, i4 in B) rank 2, (u0, i2 in A) rank 1, (u1, i0 in A) rank 1
    assert got.summary["units"] == 3
    assert got.summary["recall@1"] == pytest.approx(2 / 3)
    assert got.summary["recall@2"] == pytest.approx(1.0)
    assert got.summary["ndcg@2"] == pytest.approx((1 / LOG2(3) + 2) / 3)
