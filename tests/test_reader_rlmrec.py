"""The `rlmrec` reader on the real Amazon-book release and on a tiny hand-made release.

Real-data numbers are from ../shared/data/README.md (section 7) and methods/rlmrec.md 9.2.
The tiny release (tests/fixtures/rlmrec, built by make_fixtures.py) has known duplicates, an
explicit zero, one pair in two splits, an item without interactions, profiles and embeddings.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import importlib.util
import tempfile

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from conftest import FIXTURES, shared_path

from recpipe.data.readers import ReadOptions, Tables, get_reader
from recpipe.data.readers.rlmrec import read
from recpipe.data.rejects import IngestError, RejectLog
from recpipe.data.safe_pickle import safe_load
from recpipe.data.schema import conform

def _build_tiny() -> Path:
    """Write the tiny release into a temp folder (no pickle is committed to the repo)."""
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "rlmrec" / "make_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    root = Path(tempfile.mkdtemp(prefix="recpipe-rlmrec-"))
    mod.main(root)
    return root


_ROOT = _build_tiny()
TINY = _ROOT / "tiny"
TINY_MAPPER = _ROOT / "mapper"


def _read(path: Path, workdir: Path, **opts) -> tuple[Tables, RejectLog]:
    rejects = RejectLog()
    return read(path, ReadOptions(**opts), rejects, workdir), rejects


def _mapper_line(file: Path, n: int) -> dict:
    with open(file) as f:
        for i, line in enumerate(f):
            if i == n:
                return json.loads(line)
    raise AssertionError(f"{file} has fewer than {n + 1} lines")


# --------------------------------------------------------------------------- real release


@pytest.fixture(scope="module")
def amazon(tmp_path_factory):
    path = shared_path("rlmrec", "amazon")
    return _read(path, tmp_path_factory.mktemp("work"))


def test_amazon_counts(amazon):
    t, rejects = amazon
    ia = t.interactions
    assert t.users.height == 11_000 and t.items.height == 9_332
    assert t.stats["n_users"] == 11_000 and t.stats["n_items"] == 9_332
    counts = dict(ia.group_by("split").len().iter_rows())
    assert counts == {"train": 120_464, "valid": 40_290, "test": 40_106}
    assert ia.height == 200_860
    assert t.stats["pairs_in_two_splits"] == 0
    assert ia.select("user", "item").n_unique() == 200_860  # disjoint, as the stat says
    assert t.stats["duplicate_entries_collapsed"] == 0
    assert rejects.rejects == []
    assert ia["domain"].unique().to_list() == ["amazon"]
    assert ia.select(pl.col("rating", "ts", "review").null_count()).row(0) == (200_860,) * 3
    assert t.side == {}  # the shared copy has no profiles or embeddings


def test_amazon_every_user_and_item_has_train(amazon):
    t, _ = amazon
    train = t.interactions.filter(pl.col("split") == "train")
    assert train["user"].n_unique() == 11_000
    assert train["item"].n_unique() == 9_332
    assert t.stats["users_without_train"] == 0 and t.stats["items_without_train"] == 0


def test_amazon_raw_ids_from_mapper(amazon):
    t, _ = amazon
    mapper = shared_path("rlmrec", "mapper")
    u0 = _mapper_line(mapper / "amazon_user.json", 0)
    i0 = _mapper_line(mapper / "amazon_item.json", 0)
    u_last = _mapper_line(mapper / "amazon_user.json", 10_999)
    assert u0["uid"] == 0 and i0["iid"] == 0 and u_last["uid"] == 10_999
    users = dict(zip(t.users["orig_id"], t.users["user"]))
    items = dict(zip(t.items["orig_id"], t.items["item"]))
    assert users[0] == u0["reviewerID"] == "A2PDSDPBAO255U"
    assert items[0] == i0["asin"] == "0373730489"
    assert users[10_999] == u_last["reviewerID"]
    assert t.users["orig_id"].to_list() == list(range(11_000))
    assert t.items["orig_id"].to_list() == list(range(9_332))
    assert t.users["user"].n_unique() == 11_000 and t.items["item"].n_unique() == 9_332

    # Interactions carry raw ids of the right (uid, iid): check every test entry.
    tst = safe_load(shared_path("rlmrec", "amazon", "tst_mat.pkl"))
    want = pl.DataFrame({
        "user": [users[int(u)] for u in tst.row], "item": [items[int(i)] for i in tst.col]
    })
    got = t.interactions.filter(pl.col("split") == "test").select("user", "item")
    assert want.sort("user", "item").equals(got.sort("user", "item"))


def test_amazon_conforms_to_schema(amazon):
    t, _ = amazon
    ia = conform(t.interactions, "interactions")
    assert ia["split"].null_count() == 0 and ia["user"].null_count() == 0
    assert conform(t.items, "items")["extra"].unique().to_list() == ["{}"]
    assert conform(t.users, "users")["extra"].unique().to_list() == ["{}"]


def test_registered_as_rlmrec_format():
    assert get_reader("rlmrec") is read


# --------------------------------------------------------------------------- tiny release


@pytest.fixture
def tiny(tmp_path):
    return _read(TINY, tmp_path / "work")


def test_tiny_interactions(tiny):
    t, rejects = tiny
    rows = sorted(t.interactions.select("user", "item", "split").iter_rows())
    assert rows == sorted([
        ("U_ann", "0", "train"), ("U_ann", "1", "train"), ("U_bob", "2", "train"),
        ("U_cid", "0", "train"),  # (0,1) duplicate collapsed, explicit zero (2,3) dropped
        ("U_bob", "0", "valid"), ("U_ann", "1", "valid"),  # from valid_mat.pkl
        ("U_cid", "2", "test"),  # tst_mat.pkl is CSR
    ])
    s = t.stats
    assert (s["interactions_train"], s["interactions_valid"], s["interactions_test"]) == (4, 2, 1)
    assert s["duplicate_entries_collapsed"] == 1 and s["explicit_zeros_dropped"] == 1
    assert s["pairs_in_two_splits"] == 1  # (U_ann, 1) in train and valid: kept in both
    assert s["items_without_train"] == 1 and s["users_without_train"] == 0
    assert s["user_mapper_rows"] == 3 and s["item_mapper_rows"] == 0
    assert rejects.notes["pairs_in_two_splits"] == 1
    assert t.interactions["domain"].unique().to_list() == ["tiny"]


def test_tiny_entities_cover_every_id(tiny):
    t, _ = tiny
    assert t.users.select("orig_id", "user").rows() == [(0, "U_ann"), (1, "U_bob"), (2, "U_cid")]
    # No item mapper: str(iid); item 3 has no interaction but still gets a row.
    assert t.items.select("orig_id", "item", "domain").rows() == [
        (0, "0", "tiny"), (1, "1", "tiny"), (2, "2", "tiny"), (3, "3", "tiny")]


def test_tiny_profiles_in_side(tiny):
    t, _ = tiny
    assert set(t.side) == {"user_profiles", "item_profiles", "user_emb", "item_emb"}
    up = pl.read_parquet(t.side["user_profiles"])
    assert up.schema == pl.Schema({"id": pl.String, "orig_id": pl.Int64,
                                   "summarization": pl.String, "reasoning": pl.String})
    # The dict was stored with keys 2, 0, np.int64(1): rows come back in id order.
    assert up.rows() == [
        ("U_ann", 0, "ann likes cooking", "bought two cookbooks"),
        ("U_bob", 1, "bob likes maps", "atlases"),
        ("U_cid", 2, "cid likes mysteries", "read three whodunits"),
    ]
    ip = pl.read_parquet(t.side["item_profiles"])  # stored as a list
    assert ip["id"].to_list() == ["0", "1", "2", "3"]
    assert ip["summarization"].to_list()[2:] == ["a mystery novel", "a world atlas"]
    assert ip["reasoning"].to_list()[2] is None  # that profile had no reasoning


def test_tiny_embeddings_in_side(tiny):
    t, _ = tiny
    ue = np.load(t.side["user_emb"], allow_pickle=False)
    ie = np.load(t.side["item_emb"], allow_pickle=False)
    assert ue.dtype == np.float32 and ue.shape == (3, 2)
    np.testing.assert_array_equal(ue, [[0.5, -1.0], [1.5, 2.0], [3.25, 4.0]])
    assert ie.dtype == np.float32 and ie.shape == (4, 2)
    np.testing.assert_array_equal(ie[3], [-1.0, 2.0])
    assert t.stats["user_emb_dim"] == 2 and t.stats["item_emb_nonfinite_rows"] == 0


# --------------------------------------------------------------------------- errors


def _copy_tiny(tmp_path: Path, name: str = "tiny") -> Path:
    """A writable copy of the tiny release in the release layout (<root>/<ds> + <root>/mapper)."""
    dst = tmp_path / "data" / name
    shutil.copytree(TINY, dst)
    shutil.copytree(TINY_MAPPER, tmp_path / "data" / "mapper")
    return dst


def _dump(obj, path: Path) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=4))


def test_wrong_shape_embedding_is_named(tmp_path):
    ds = _copy_tiny(tmp_path)
    _dump(np.zeros((2, 5)), ds / "usr_emb_np.pkl")
    with pytest.raises(IngestError) as exc:
        _read(ds, tmp_path / "work")
    msg = str(exc.value)
    assert "usr_emb_np.pkl" in msg and "(2, 5)" in msg and "(3, d)" in msg


def test_matrices_of_different_shapes(tmp_path):
    ds = _copy_tiny(tmp_path)
    _dump(sp.coo_matrix((3, 5)), ds / "tst_mat.pkl")
    with pytest.raises(IngestError) as exc:
        _read(ds, tmp_path / "work")
    msg = str(exc.value)
    assert "tst_mat.pkl" in msg and "(3, 5)" in msg and "(3, 4)" in msg


def test_missing_test_matrix_names_expected_files(tmp_path):
    ds = _copy_tiny(tmp_path)
    (ds / "tst_mat.pkl").unlink()
    with pytest.raises(IngestError) as exc:
        _read(ds, tmp_path / "work")
    msg = str(exc.value)
    assert "missing tst_mat.pkl" in msg
    assert "trn_mat.pkl" in msg and "val_mat.pkl or valid_mat.pkl" in msg


def test_not_a_folder(tmp_path):
    with pytest.raises(IngestError, match="not a folder"):
        _read(tmp_path / "nope", tmp_path / "work")


def test_malicious_pickle_is_refused_as_ingest_error(tmp_path):
    ds = _copy_tiny(tmp_path)
    marker = tmp_path / "ran.txt"

    class Evil:
        def __reduce__(self):
            return exec, (f"open({str(marker)!r}, 'w')",)

    _dump(Evil(), ds / "usr_prf.pkl")
    with pytest.raises(IngestError, match=r"usr_prf\.pkl: refused to load global 'builtins\.exec'"):
        _read(ds, tmp_path / "work")
    assert not marker.exists()


def test_matrix_that_is_not_sparse(tmp_path):
    ds = _copy_tiny(tmp_path)
    _dump(np.ones((3, 4)), ds / "trn_mat.pkl")
    with pytest.raises(IngestError, match="trn_mat.pkl: expected a pickled scipy sparse matrix"):
        _read(ds, tmp_path / "work")


def test_mapper_lookup_order(tmp_path):
    """<path>/mapper wins over <path>/../mapper, which wins over files beside the matrices."""
    ds = _copy_tiny(tmp_path)

    def write_mapper(folder: Path, name: str, prefix: str) -> None:
        folder.mkdir(exist_ok=True)
        (folder / name).write_text("".join(
            json.dumps({"uid": i, "reviewerID": f"{prefix}{i}"}) + "\n" for i in range(3)))

    write_mapper(ds, "whatever_user.json", "beside")
    t, _ = _read(ds, tmp_path / "w1")
    assert t.users["user"].to_list() == ["U_ann", "U_bob", "U_cid"]  # ../mapper/tiny_user.json

    write_mapper(ds / "mapper", "other_user.json", "inner")
    t, _ = _read(ds, tmp_path / "w2")
    assert t.users["user"].to_list() == ["inner0", "inner1", "inner2"]

    shutil.rmtree(ds / "mapper")
    shutil.rmtree(ds.parent / "mapper")
    t, _ = _read(ds, tmp_path / "w3")
    assert t.users["user"].to_list() == ["beside0", "beside1", "beside2"]

    (ds / "whatever_user.json").unlink()
    t, _ = _read(ds, tmp_path / "w4")
    assert t.users["user"].to_list() == ["0", "1", "2"]
    assert t.stats["user_mapper_rows"] == 0


def test_mapper_of_another_dataset_is_refused(tmp_path):
    ds = _copy_tiny(tmp_path)
    (ds.parent / "mapper" / "tiny_user.json").write_text(
        '{"uid": 0, "reviewerID": "a"}\n{"uid": 1, "reviewerID": "b"}\nnot json\n')
    rejects = RejectLog()
    with pytest.raises(IngestError, match=r"tiny_user.json: maps 2 users but the matrices have 3"):
        read(ds, ReadOptions(), rejects, tmp_path / "work")
    assert [(r.file, r.line) for r in rejects.rejects] == [("tiny_user.json", 3)]


def test_categories_that_select_nothing(tmp_path):
    with pytest.raises(IngestError, match="ingest.categories"):
        _read(TINY, tmp_path / "work", categories=["Books"])


def test_symlinked_dataset_folder_finds_mapper_at_its_real_home(tmp_path):
    """data/raw/tiny -> fixtures/rlmrec/tiny: the mapper beside the real folder is used."""
    link = tmp_path / "raw" / "tiny"
    link.parent.mkdir()
    link.symlink_to(TINY, target_is_directory=True)
    t, _ = _read(link, tmp_path / "work")
    assert t.users["user"].to_list() == ["U_ann", "U_bob", "U_cid"]
    assert t.interactions["domain"].unique().to_list() == ["tiny"]


def test_mapper_with_repeated_raw_ids(tmp_path):
    ds = _copy_tiny(tmp_path)
    (ds.parent / "mapper" / "tiny_user.json").write_text("".join(
        json.dumps({"uid": i, "reviewerID": "same" if i else "first"}) + "\n" for i in range(3)))
    with pytest.raises(IngestError, match="raw ids repeat"):
        _read(ds, tmp_path / "work")
