"""The evaluator on tiny hand-built splits: evaluation.md section 9 (examples A-D) to 4
decimals, plus hand-computed edge cases (ties, |T| > K, users without targets, a one-item
catalogue, fewer candidates than K, NaN scores).

Every case goes through the public path `evaluate(FunctionScorer(...), from_frames(...), cfg)`,
so masking, ranking, metrics and averaging are all exercised together.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from recpipe.eval.data import from_frames
from recpipe.eval.evaluator import evaluate
from recpipe.eval.protocol import resolve
from recpipe.eval.scorers import FunctionScorer

LOG2 = math.log2


def frame(pairs: list[tuple[int, int]]) -> pl.DataFrame:
    return pl.DataFrame({"uid": [u for u, _ in pairs], "iid": [i for _, i in pairs]},
                        schema={"uid": pl.Int64, "iid": pl.Int64})


def split(n_users: int, n_items: int, train=(), valid=(), test=(), domains: dict | None = None):
    dom = None
    if domains is not None:
        dom = pl.DataFrame({"iid": list(domains), "domain": list(domains.values())})
    return from_frames(frame(list(train)), frame(list(valid)), frame(list(test)), n_users, n_items, dom)


def fixed(scores) -> FunctionScorer:
    """Scorer that returns row `u` of a fixed (n_users, n_items) table."""
    table = np.asarray(scores, dtype=np.float32)
    if table.ndim == 1:
        table = table[None, :]
    return FunctionScorer(lambda users: table[users], table.shape[1])


def run(scorer, data, part="test", **cfg):
    return evaluate(scorer, data, resolve(cfg), part).summary


def approx4(x: float) -> pytest.approx:
    """The spec's tables give 4 decimals."""
    return pytest.approx(x, abs=5e-5)


# ---------------------------------------------------------------- Example A (multi-target)

A_SCORES = [0.9, 0.8, 0.7, 0.6, 0.1, 0.5, 0.4, 0.3]
A_DATA = dict(n_users=1, n_items=8, train=[(0, 0), (0, 1)], valid=[(0, 2)],
              test=[(0, 3), (0, 4), (0, 5)])


@pytest.mark.parametrize("preset", ["rlmrec", "cllm4rec"])
def test_example_a_validation_item_stays_candidate(preset):
    # ranking [2, 3, 5, 6, 7, 4]: the validation item 2 takes rank 1 and counts as a miss
    s = run(fixed(A_SCORES), split(**A_DATA), preset=preset, ks=[2, 5],
            recall_denominator="full", also_truncated=True)
    table = {2: (0.3333, 0.5000, 0.3869, 0.5000), 5: (0.6667, 0.6667, 0.5307, 0.4000)}
    for k, (rec, rec_trunc, ndcg, prec) in table.items():
        assert s[f"recall@{k}"] == approx4(rec)
        assert s[f"recall_trunc@{k}"] == approx4(rec_trunc)
        assert s[f"ndcg@{k}"] == approx4(ndcg)
        assert s[f"precision@{k}"] == approx4(prec)
    assert s["hr@2"] == 1.0 and s["mrr@5"] == approx4(0.5)


def test_example_a_cllm4rec_names_truncated_recall_recall():
    s = run(fixed(A_SCORES), split(**A_DATA), preset="cllm4rec", ks=[2, 5])
    assert s["recall@2"] == approx4(0.5) and s["recall@5"] == approx4(0.6667)
    assert "recall_trunc@2" not in s


def test_example_a_retrieved_hits_idcg():
    # MMHCL: K_max = 5 retrieves 2 hits, so the IDCG covers 2 positions instead of 3
    s = run(fixed(A_SCORES), split(**A_DATA), preset="mmhcl", ks=[2, 5])
    assert s["ndcg@5"] == approx4(0.6934)
    assert s["ndcg@2"] == approx4(0.3869)
    assert s["recall@5"] == approx4(0.6667)


def test_example_a_unified_masks_validation_at_test():
    # ranking [3, 5, 6, 7, 4]
    s = run(fixed(A_SCORES), split(**A_DATA), preset="unified", ks=[2, 5])
    table = {2: (0.6667, 1.0000, 1.0000, 1.0000), 5: (1.0000, 1.0000, 0.9469, 0.6000)}
    for k, (rec, rec_trunc, ndcg, prec) in table.items():
        assert s[f"recall@{k}"] == approx4(rec)
        assert s[f"recall_trunc@{k}"] == approx4(rec_trunc)
        assert s[f"ndcg@{k}"] == approx4(ndcg)
        assert s[f"precision@{k}"] == approx4(prec)


def test_example_a_validation_part_masks_train_only():
    # at validation the target is item 2, ranked first once 0 and 1 are masked
    s = run(fixed(A_SCORES), split(**A_DATA), part="valid", preset="unified", ks=[1])
    assert s["recall@1"] == 1.0 and s["ndcg@1"] == 1.0


# ---------------------------------------------------------------- Example B (single target)

def test_example_b_single_target_rank_3_history_kept():
    # item 0 is history (train) and scores highest; HeLLM does not exclude it -> target rank 3
    data = split(1, 6, train=[(0, 0)], valid=[(0, 1)], test=[(0, 2)])
    s = run(fixed([0.9, 0.8, 0.7, 0.3, 0.2, 0.1]), data, preset="hellm", ks=[1, 2, 5])
    assert s["hr@1"] == 0.0 and s["hr@5"] == 1.0
    assert s["recall@5"] == 1.0
    assert s["ndcg@5"] == approx4(0.5)
    assert s["mrr@5"] == approx4(0.3333)
    assert s["precision@5"] == approx4(0.2)
    for m in ("hr", "recall", "ndcg", "mrr", "precision"):
        assert s[f"{m}@2"] == 0.0


# ---------------------------------------------------------------- Example C (domains)

# items 1-4 are domain A, 5-6 domain B (item 0, unused, is put in B with the lowest score)
C_DOMAINS = {0: "B", 1: "A", 2: "A", 3: "A", 4: "A", 5: "B", 6: "B"}
C_SCORES = [0.0, 0.7, 0.5, 0.8, 0.4, 0.9, 0.3]


def test_example_c_target_domain_candidates():
    data = split(1, 7, test=[(0, 3)], domains=C_DOMAINS)
    s = run(fixed(C_SCORES), data, preset="hum", ks=[1])
    assert s["hr@1"] == 1.0 and s["ndcg@1"] == 1.0
    assert s["hr@1/A"] == 1.0 and s["units"] == 1


def test_example_c_all_candidates():
    data = split(1, 7, test=[(0, 3)], domains=C_DOMAINS)
    s = run(fixed(C_SCORES), data, preset="hum", candidates="all", ks=[1, 2])
    assert s["hr@1"] == 0.0
    assert s["hr@2"] == 1.0 and s["ndcg@2"] == approx4(1 / LOG2(3))


# ---------------------------------------------------------------- Example D (padding)

def test_example_d_padding_minus_inf_vs_zero():
    data = split(1, 3, test=[(0, 1)])
    s = run(fixed([-0.5, -0.2, -np.inf]), data, preset="hellm", ks=[1, 3])
    assert s["hr@1"] == 1.0 and s["ndcg@1"] == 1.0
    # the -inf pad never enters the list: P@3 counts 1 hit over K = 3 slots
    assert s["precision@3"] == approx4(1 / 3)
    s0 = run(fixed([-0.5, -0.2, 0.0]), data, preset="hellm", ks=[1, 2])
    assert s0["hr@1"] == 0.0
    assert s0["ndcg@2"] == approx4(0.6309) and s0["mrr@2"] == 0.5


# ---------------------------------------------------------------- hand-computed edge cases

def test_ties_go_to_the_smaller_item_index():
    # all scores equal: the ranking is 0, 1, 2, ...; targets {1, 4}
    data = split(1, 6, test=[(0, 1), (0, 4)])
    s = run(fixed(np.zeros(6)), data, preset="rlmrec", ks=[1, 2, 5])
    assert s["hr@1"] == 0.0
    assert s["recall@2"] == 0.5
    assert s["ndcg@2"] == approx4((1 / LOG2(3)) / (1 + 1 / LOG2(3)))
    assert s["mrr@5"] == 0.5
    # items 1 and 4 at ranks 2 and 5
    assert s["ndcg@5"] == approx4((1 / LOG2(3) + 1 / LOG2(6)) / (1 + 1 / LOG2(3)))


def test_ties_inside_a_masked_row_and_at_the_cutoff():
    # scores [3, 3, 3, 3, 1]; item 0 is train -> ranking 1, 2, 3, 4; target 3 is at rank 3
    data = split(1, 5, train=[(0, 0)], test=[(0, 3)])
    s = run(fixed([3, 3, 3, 3, 1]), data, preset="rlmrec", ks=[2, 3])
    assert s["hr@2"] == 0.0 and s["hr@3"] == 1.0
    assert s["ndcg@3"] == approx4(0.5)


def test_more_targets_than_k():
    # 6 targets, the two best-scored items are targets
    data = split(1, 10, test=[(0, i) for i in range(6)])
    scores = np.arange(10, 0, -1, dtype=np.float32)  # item 0 best
    s = run(fixed(scores), data, preset="unified", ks=[2])
    assert s["recall@2"] == approx4(2 / 6)
    assert s["recall_trunc@2"] == 1.0
    assert s["ndcg@2"] == 1.0
    assert s["precision@2"] == 1.0
    # and with retrieved-hits IDCG and K_max = 2 it is still 1
    assert run(fixed(scores), data, preset="mmhcl", ks=[2])["ndcg@2"] == 1.0


def test_users_without_targets_are_excluded_or_raise():
    # user 1 has no test item; user 0 hits at rank 1, user 2 misses
    data = split(3, 4, train=[(1, 0)], test=[(0, 0), (2, 3)])
    scores = np.array([[4, 3, 2, 1]] * 3, dtype=np.float32)
    s = run(fixed(scores), data, preset="rlmrec", ks=[1])
    assert s["units"] == 2
    assert s["recall@1"] == 0.5
    with pytest.raises(ValueError, match="all_users"):
        run(fixed(scores), data, preset="cllm4rec", ks=[1])


def test_per_unit_frame_lists_evaluated_users():
    data = split(3, 4, test=[(0, 0), (2, 3)])
    res = evaluate(fixed(np.array([[4, 3, 2, 1]] * 3)), data, resolve({"preset": "rlmrec", "ks": [1]}))
    assert res.per_unit["uid"].to_list() == [0, 2]
    assert res.per_unit["recall@1"].to_list() == [1.0, 0.0]


def test_single_item_catalogue_with_k_larger_than_catalogue():
    data = split(1, 1, test=[(0, 0)])
    s = run(fixed([[1.0]]), data, preset="rlmrec", ks=[1, 5])
    assert s["recall@1"] == 1.0 and s["ndcg@1"] == 1.0
    assert s["recall@5"] == 1.0 and s["ndcg@5"] == 1.0
    assert s["precision@5"] == approx4(0.2)


def test_catalogue_smaller_than_k():
    data = split(1, 3, test=[(0, 1)])
    s = run(fixed([3.0, 2.0, 1.0]), data, preset="rlmrec", ks=[5])
    assert s["recall@5"] == 1.0 and s["precision@5"] == approx4(0.2)
    assert s["ndcg@5"] == approx4(1 / LOG2(3))


def test_single_item_catalogue_k1():
    data = split(2, 1, test=[(0, 0), (1, 0)])
    s = run(fixed([[1.0], [-3.0]]), data, preset="rlmrec", ks=[1])
    assert s["recall@1"] == 1.0 and s["ndcg@1"] == 1.0 and s["units"] == 2


def test_fewer_unmasked_candidates_than_k():
    # 5 items, 3 in train: the list holds 2 items; target 4 is at rank 2, slots 3-5 are misses
    data = split(1, 5, train=[(0, 0), (0, 1), (0, 2)], test=[(0, 4)])
    s = run(fixed([5, 4, 3, 2, 1]), data, preset="rlmrec", ks=[1, 5])
    assert s["hr@1"] == 0.0 and s["hr@5"] == 1.0
    assert s["ndcg@5"] == approx4(1 / LOG2(3))
    assert s["precision@5"] == approx4(0.2)
    assert s["mrr@5"] == 0.5


def test_masked_target_is_never_a_hit():
    # every item masked (2 is both a validation and a test item, which split never makes but
    # from_frames allows): the list is empty, and a -inf slot must not count as a hit
    data = split(1, 3, train=[(0, 0), (0, 1)], valid=[(0, 2)], test=[(0, 2)])
    s = run(fixed([1, 1, 1]), data, preset="unified", ks=[3])
    assert s["hr@3"] == 0.0 and s["precision@3"] == 0.0


def test_nan_scores_raise():
    data = split(1, 4, test=[(0, 1)])
    with pytest.raises(ValueError, match="NaN"):
        run(fixed([0.1, np.nan, 0.3, 0.2]), data, preset="rlmrec", ks=[1])
