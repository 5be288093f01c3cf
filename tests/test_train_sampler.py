"""recpipe.train.sampler: the one negative sampler (graph BPR, BPR-MF, later HUM and SASRec)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recpipe.train.sampler import NegativeSampler, pair_keys


def dense_train(seed=0, n_users=50, n_items=20, p=0.7) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((n_users, n_items)) < p).astype(np.float32))


def legacy_uniform(users, train, rng):
    """The loop the graph sampler and BPR-MF each had before (rlmrec.md 5.1), written out:
    draw all, then redraw only the rows that hit a training pair, until none does."""
    keys = pair_keys(train)
    n = train.shape[1]
    neg = rng.integers(0, n, size=len(users))
    bad = np.arange(len(users))
    while len(bad):
        k = users[bad] * n + neg[bad]
        bad = bad[keys[np.minimum(np.searchsorted(keys, k), len(keys) - 1)] == k]
        neg[bad] = rng.integers(0, n, size=len(bad))
    return neg


def test_uniform_never_returns_a_training_item():
    x = dense_train()  # dense rows: many redraws
    users = np.repeat(np.arange(50), 5)
    neg = NegativeSampler(x, np.random.default_rng(1)).draw(users)
    assert neg.shape == users.shape and not x[users, neg].any()


def test_uniform_draws_exactly_what_the_old_samplers_drew():
    """So graph and BPR-MF results under a seed are the same as before the move."""
    x = dense_train(p=0.3)
    users = np.random.default_rng(5).integers(0, 50, 400)
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    s = NegativeSampler(x, a)
    for _ in range(3):  # the generator's state carries over between epochs identically too
        assert np.array_equal(s.draw(users), legacy_uniform(users, x, b))


def test_targets_are_excluded_too():
    x = sp.csr_matrix((4, 3), dtype=np.float32)  # no training pairs at all
    users = np.zeros(300, dtype=np.int64)
    targets = np.full(300, 1)
    neg = NegativeSampler(x, np.random.default_rng(0)).draw(users, targets=targets)
    assert set(neg.tolist()) == {0, 2}


def test_popularity_follows_training_counts():
    counts = np.array([0, 1, 3, 6])  # item i seen by counts[i] users
    x = sp.csr_matrix((np.arange(10)[:, None] < counts[None, :]).astype(np.float32))
    x = sp.vstack([x, sp.csr_matrix((1, 4), dtype=np.float32)]).tocsr()  # user 10: no pairs
    neg = NegativeSampler(x, np.random.default_rng(0), dist="popularity").draw(np.full(20_000, 10))
    freq = np.bincount(neg, minlength=4) / len(neg)
    assert freq[0] == 0 and freq == pytest.approx(counts / counts.sum(), abs=0.01)


def test_within_item_sets_stays_in_each_rows_set():
    x = dense_train(n_items=12, p=0.2)
    sets = [np.arange(0, 6), np.arange(6, 12)]
    users = np.arange(50).repeat(4)
    which = np.tile([0, 1], 100)
    neg = NegativeSampler(x, np.random.default_rng(2), dist="set", item_sets=sets).draw(users, sets=which)
    assert np.all((neg < 6) == (which == 0)) and not x[users, neg].any()


@pytest.mark.parametrize("dist", ["uniform", "popularity", "set"])
def test_a_row_without_any_valid_negative_terminates(dist):
    """Before: the graph sampler redrew forever for a user with every item."""
    x = sp.csr_matrix(np.array([[1, 1, 1, 1], [1, 0, 0, 0], [0, 1, 1, 0]], dtype=np.float32))
    kw = {"item_sets": [np.arange(4)]} if dist == "set" else {}
    s = NegativeSampler(x, np.random.default_rng(0), dist=dist, **kw)
    users = np.array([0, 1, 2] * 10)
    neg = s.draw(users, sets=np.zeros(30, dtype=np.int64) if dist == "set" else None)
    ok = users != 0
    assert not x[users[ok], neg[ok]].any()  # the others still get real negatives


def test_bad_arguments_name_what_is_allowed():
    x = dense_train()
    with pytest.raises(ValueError, match="choose uniform, popularity or set"):
        NegativeSampler(x, np.random.default_rng(0), dist="hard")
    with pytest.raises(ValueError, match="needs item_sets"):
        NegativeSampler(x, np.random.default_rng(0), dist="set")


def test_list_batches_order_is_seeded_and_resumable():
    from recpipe.train.sampler import ListBatches

    given = ListBatches(["a", "b", "c", "d"])
    assert [b for (b,) in given.epoch()] == ["a", "b", "c", "d"] and given.state() == {}
    a, b = ListBatches(list("abcdefgh"), seed=3), ListBatches(list("abcdefgh"), seed=3)
    first = [x for (x,) in a.epoch()]
    assert first == [x for (x,) in b.epoch()] and sorted(first) == list("abcdefgh")
    saved = a.state()
    second = [x for (x,) in a.epoch()]
    assert second != first  # a new order every epoch
    b.load_state(saved)
    assert [x for (x,) in b.epoch()] == second and len(b) == 8
    pairs = ListBatches([("h1", "t1"), ("h2", "t2")])  # tuples are model.loss's arguments
    assert list(pairs.epoch()) == [("h1", "t1"), ("h2", "t2")]
