"""recpipe.data.view: the in-memory view every model reads, on real processed splits.

The sample split (3 Amazon domains, random 3:1:1 and leave-one-out) and, where ../shared/data
exists, the RLMRec Amazon-book release (no timestamps, no texts). Every expectation is
recomputed from the Parquet files the split stage wrote, not from the view's own code.
"""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest

from recpipe.data.sequences import NO_TS
from recpipe.data.view import UNKNOWN, DataView, from_frames, load_view


@pytest.fixture(scope="module")
def view(small_processed) -> DataView:
    return load_view(small_processed)


@pytest.fixture(scope="module")
def loo_processed(small_processed, tmp_path_factory):
    """The sample's interim tables split leave-one-out (the HeLLM / SASRec protocol)."""
    from recpipe.config import parse
    from recpipe.data.processed import build
    from recpipe.params import SplitParams

    out = tmp_path_factory.mktemp("loo") / "processed"
    build(small_processed.parent / "interim", out, parse(SplitParams, {"protocol": "loo"},
                                                         prefix="split"), 3)
    return out


def reference_sequences(path, part: str) -> dict[int, list[tuple[int, int | None]]]:
    """uid -> [(iid, ts)] of one part: by ts, ties and nulls (last) in file order."""
    rows = pl.read_parquet(path / f"{part}.parquet").rows(named=True)
    seqs: dict[int, list] = {}
    for k, r in enumerate(rows):
        seqs.setdefault(r["uid"], []).append((r["ts"] is None, r["ts"] or 0, k, r["iid"], r["ts"]))
    return {u: [(s[3], s[4]) for s in sorted(v)] for u, v in seqs.items()}


def test_train_sequences_are_the_train_rows_in_time_order(view, small_processed):
    ref = reference_sequences(small_processed, "train")
    doms = dict(pl.read_parquet(small_processed / "train.parquet").select("iid", "domain").iter_rows())
    seqs = view.sequences()
    assert seqs.indptr[-1] == sum(map(len, ref.values())) == view.train.nnz
    assert seqs.items.dtype == np.int32 and seqs.ts.dtype == np.int64 and seqs.domain.dtype == np.int32
    for u in range(view.n_users):
        items, ts, dom = view.sequence(u)
        assert [(int(i), int(t)) for i, t in zip(items, ts)] == ref.get(u, []), u
        assert (np.diff(ts) >= 0).all()
        assert [view.domains[d] for d in dom] == [doms[i] for i in items.tolist()]
    assert view.sequence(0) is not None and view.sequences() is seqs  # built once


def test_train_sequences_never_hold_valid_or_test_items(view):
    full = view.sequences(("train", "valid"))
    for u in range(view.n_users):
        train = set(view.sequence(u).items.tolist())
        later = set(view.valid[u].indices) | set(view.test[u].indices)
        assert not train & later, u
        # the test-time history is train + valid, never test
        both = set(full[u].items.tolist())
        assert both == train | set(view.valid[u].indices)
        assert not both & set(view.test[u].indices)


def test_loo_histories_end_with_the_held_out_items(loo_processed):
    view = load_view(loo_processed)
    users = np.arange(view.n_users)
    valid_item = view.valid.indices[view.valid.indptr[users]]  # one valid and one test item each
    test_item = view.test.indices[view.test.indptr[users]]
    assert (np.diff(view.valid.indptr) == 1).all() and (np.diff(view.test.indptr) == 1).all()
    valid_ts = pl.read_parquet(loo_processed / "valid.parquet").sort("uid")["ts"].to_numpy()
    train = view.sequences()
    assert (train.ts[train.indptr[1:] - 1] <= valid_ts).all()
    # HeLLM: validation input items[:-2] -> items[-2]; test input items[:-1] -> items[-1]
    hist = view.window(users, 50, parts=("train", "valid"))
    assert (hist[:, -1] == valid_item).all()
    assert (view.window(users, 50, parts=("train", "valid", "test"))[:, -1] == test_item).all()
    assert (hist != test_item[:, None]).all()  # the test item is in no test-time history


def window_reference(seq: list[int], max_len: int, end, left: bool, pad: int) -> list[int]:
    kept = seq[:end][-max_len:] if max_len else []
    fill = [pad] * (max_len - len(kept))
    return fill + kept if left else kept + fill


@pytest.mark.parametrize("left", [True, False])
@pytest.mark.parametrize("end", [None, -1, 3, 0])
def test_padded_windows(view, left, end):
    users = np.array([0, 5, 7, 5, view.n_users - 1])
    for max_len in (1, 4, 50):
        got = view.window(users, max_len, left=left, end=end)
        assert got.shape == (len(users), max_len) and got.dtype == np.int32
        for row, u in zip(got, users):
            seq = view.sequence(u).items.tolist()
            assert row.tolist() == window_reference(seq, max_len, end, left, view.n_items)
    ts = view.window(users, 50, left=left, end=end, field="ts")
    dom = view.window(users, 50, left=left, end=end, field="domain")
    items = view.window(users, 50, left=left, end=end)
    assert ((items == view.pad_id) == (ts == NO_TS)).all() and ((items == view.pad_id) == (dom == -1)).all()
    assert (dom[items != view.pad_id] == view.item_domain[items[items != view.pad_id]]).all()


def frame(rows) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"uid": pl.Int32, "iid": pl.Int32, "ts": pl.Int64}, orient="row")


def test_ties_keep_file_order_and_rows_without_time_come_last():
    train = frame([(0, 4, 20), (0, 2, None), (0, 3, 10), (0, 1, 20), (0, 0, None), (2, 5, 1)])
    valid = frame([(0, 6, 20), (2, 7, None)])
    dom = pl.DataFrame({"iid": [0, 1, 2, 3, 4, 5, 6], "domain": ["B", "A", "B", "A", "", "A", None]})
    v = from_frames(train, valid, frame([]), 3, 8, dom)
    assert v.sequence(0).items.tolist() == [3, 4, 1, 2, 0]
    assert v.sequence(0).ts.tolist() == [10, 20, 20, NO_TS, NO_TS]
    assert len(v.sequence(1).items) == 0  # a user without rows has an empty sequence
    # parts merge in time order; equal times put train rows first, whatever order is asked
    assert v.sequence(0, ("valid", "train")).items.tolist() == [3, 4, 1, 6, 2, 0]
    assert v.sequence(2, ("train", "valid")).items.tolist() == [5, 7]
    assert v.window([1, 0], 3).tolist() == [[8, 8, 8], [1, 2, 0]]
    assert v.domains == ["A", "B", UNKNOWN]
    assert [v.domains[d] for d in v.sequence(0).domain] == ["A", UNKNOWN, "A", "B", "B"]
    with pytest.raises(ValueError, match="unknown split part"):
        v.sequences(("training",))


def test_domain_items_two_domains_by_hand():
    train = frame([(0, 0, 1), (0, 2, 2), (1, 3, 1)])
    valid = frame([(1, 1, 5)])
    dom = pl.DataFrame({"iid": [0, 1, 2, 3, 4], "domain": ["Books", "Games", "Games", "Books", "Books"]})
    v = from_frames(train, valid, frame([(0, 5, 9)]), 2, 6, dom)
    assert v.domains == ["Books", "Games", UNKNOWN]
    assert v.domain_items("Books").tolist() == [0, 3, 4] == v.domain_items(0).tolist()
    assert v.domain_items("Games").tolist() == [1, 2]
    assert v.domain_items(UNKNOWN).tolist() == [5]
    assert v.domain_items("Books", seen_in=("train",)).tolist() == [0, 3]
    assert v.domain_items("Games", seen_in=("train", "valid")).tolist() == [1, 2]
    assert v.domain_items("Games", seen_in=("train",)).tolist() == [2]
    with pytest.raises(ValueError, match="no domain"):
        v.domain_items("Music")
    with pytest.raises(ValueError, match="no domain"):
        v.domain_items(3)


def test_domain_items_on_the_multi_domain_sample(view, small_processed):
    items = pl.read_parquet(small_processed / "items.parquet")
    assert len(view.domains) == 3 and UNKNOWN not in view.domains
    got = {d: view.domain_items(d) for d in view.domains}
    assert sorted(np.concatenate(list(got.values())).tolist()) == list(range(view.n_items))
    for d, iids in got.items():
        expect = items.filter(pl.col("domain") == d)["iid"].sort().to_list()
        assert iids.dtype == np.int32 and iids.tolist() == expect and len(expect) > 10, d
        seen = pl.concat([pl.read_parquet(small_processed / f"{p}.parquet") for p in ("train", "valid")])
        expect_seen = seen.filter(pl.col("domain") == d)["iid"].unique().sort().to_list()
        assert view.domain_items(d, seen_in=("train", "valid")).tolist() == expect_seen


def test_id_maps_round_trip(view, small_processed):
    umap = pl.read_parquet(small_processed / "user_map.parquet")
    imap = pl.read_parquet(small_processed / "item_map.parquet")
    assert view.user_ids.dtype.kind == "U" and view.user_ids.shape == (view.n_users,)
    assert view.item_ids.dtype.kind == "U" and view.item_ids.shape == (view.n_items,)
    assert view.user_ids[umap["uid"].to_numpy()].tolist() == umap["user"].to_list()
    assert view.item_ids[imap["iid"].to_numpy()].tolist() == imap["item"].to_list()
    back = {raw: k for k, raw in enumerate(view.item_ids)}
    train = pl.read_parquet(small_processed / "train.parquet")
    assert [back[raw] for raw in view.item_ids[train["iid"].to_numpy()]] == train["iid"].to_list()


def test_item_texts_of_the_sample(view, small_processed):
    raw = pl.read_parquet(small_processed.parent / "interim" / "items.parquet")
    raw = raw.unique("item", keep="first")
    title = dict(zip(raw["item"].to_list(), raw["title"].to_list()))
    desc = dict(zip(raw["item"].to_list(), raw["description"].to_list()))
    assert len(view.item_titles) == len(view.item_descriptions) == view.n_items
    assert view.item_titles == [title.get(i) or "" for i in view.item_ids]
    assert view.item_descriptions == [desc.get(i) or "" for i in view.item_ids]
    assert sum(bool(t) for t in view.item_titles) > 0.9 * view.n_items


def test_texts_by_id_whatever_the_row_order_and_missing_as_empty(small_processed, tmp_path):
    d = tmp_path / "processed"
    shutil.copytree(small_processed, d)
    items = pl.read_parquet(d / "items.parquet")
    titles = items.sort("iid")["title"].to_list()
    # rows shuffled, item 0 has no row, item 1 no title, and no description column at all
    items = items.sample(fraction=1.0, shuffle=True, seed=1).filter(pl.col("iid") != 0)
    items = items.with_columns(pl.when(pl.col("iid") == 1).then(None).otherwise(pl.col("title")).alias("title"))
    items.drop("description").write_parquet(d / "items.parquet")
    v = load_view(d)
    assert v.item_titles == ["", ""] + titles[2:]
    assert v.item_descriptions == [""] * v.n_items
    pl.read_parquet(d / "user_map.parquet").head(5).write_parquet(d / "user_map.parquet")
    with pytest.raises(ValueError, match="user_map.parquet"):
        v.user_ids  # noqa: B018 the map no longer covers every uid the view counted


def test_eval_names_are_the_view_and_matrix_views_still_work(small_processed, view):
    from recpipe.eval.data import SplitData, load_split

    assert SplitData is DataView and isinstance(load_split(small_processed), DataView)
    bare = SplitData(view.n_users, view.n_items, view.train, view.valid, view.test,
                     view.item_domain, view.domains)  # how tests and benchmarks slice a split
    assert bare.domain_items(0).tolist() == view.domain_items(0).tolist()
    with pytest.raises(ValueError, match="built from matrices"):
        bare.sequences()
    with pytest.raises(ValueError, match="not loaded from a processed folder"):
        bare.item_titles  # noqa: B018


def test_rlmrec_release_without_times_or_texts(rlmrec_processed):
    v = load_view(rlmrec_processed)
    assert (v.n_users, v.n_items) == (11000, 9332)
    ref = reference_sequences(rlmrec_processed, "train")
    seqs = v.sequences()
    assert (seqs.ts == NO_TS).all()  # the release has no timestamps: file order
    assert (seqs.lengths() == np.diff(v.train.indptr)).all()
    for u in range(0, v.n_users, 97):
        assert v.sequence(u).items.tolist() == [i for i, _ in ref[u]]
    assert set(v.item_titles) == {""}
    assert v.item_ids.shape == (9332,) and len(set(v.user_ids)) == 11000
