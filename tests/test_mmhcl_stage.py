"""The `mmhcl` stage (stages/mmhcl.py) and its parts: the item modalities (features.py), the
typed section (params.py), one run (run.py) and the no-leak rule on a leave-one-out split."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import yaml

from conftest import stage
from recpipe.config import ParamError, parse
from recpipe.data.view import load_view
from recpipe.hypergraph import build, features
from recpipe.hypergraph.params import PRESETS, MMHCLParams

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support")

TINY = {"device": "cpu", "threads": 1, "train": {"epochs": 3, "eval_every": 1, "batch_size": 64}}
ATTRS = [3, 5, 8, 13, 21, 34, 55]  # raw attribute ids, not contiguous: columns follow their order


def params_file(tmp_path, **mmhcl) -> str:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"seed": 2024, "eval": {"preset": "unified"},
                                    "mmhcl": {**TINY, **mmhcl}}))
    return str(path)


def run_stage(tmp_path, processed, embeddings, params: str, name: str = "run") -> int:
    d = tmp_path / name
    return stage("mmhcl").main(["--params", params, "--processed", str(processed), "--embeddings",
                                str(embeddings), "--out", str(d / "out"), "--metrics",
                                str(d / "head.json"), "--plots", str(d / "plots")])


@pytest.fixture(scope="module")
def embeddings(small_processed, tmp_path_factory):
    """The embed stage's folder with a stand-in item_text.npy (n_items, 16): the sample has
    item text, but embedding it needs the sentence encoder."""
    d = tmp_path_factory.mktemp("embeddings")
    n_items = pl.read_parquet(small_processed / "item_map.parquet").height
    np.save(d / "item_text.npy", np.random.default_rng(0).standard_normal((n_items, 16)).astype(np.float32))
    return d


@pytest.fixture(scope="module")
def seq_loo(tmp_path_factory):
    """A tiny S3Rec sequence file with attributes through ingest and the `loo` split:
    (processed folder, {raw item id: [attribute ids]}). Items 19 and 20 have no attributes."""
    from recpipe.data.ingest import ingest
    from recpipe.data.processed import build as build_split
    from recpipe.params import DatasetParams, IngestParams, SplitParams

    rs = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("seqtxt")
    src = root / "src"
    src.mkdir()
    lines = [" ".join(map(str, [u, *rs.choice(np.arange(1, 21), rs.integers(4, 9), replace=False)]))
             for u in range(1, 41)]
    (src / "Tiny.txt").write_text("\n".join(lines) + "\n")
    attrs = {str(i): sorted(rs.choice(ATTRS, rs.integers(1, 4), replace=False).tolist())
             for i in range(1, 19)}
    (src / "Tiny_item2attributes.json").write_text(json.dumps(attrs))
    ingest(parse(DatasetParams, {"format": "seqtxt", "path": str(src)}, prefix="dataset"),
           parse(IngestParams, {}, prefix="ingest"), root / "interim")
    build_split(root / "interim", root / "processed", parse(
        SplitParams, {"protocol": "loo", "user_core": 3, "item_core": 1}, prefix="split"), 1)
    return root / "processed", attrs


# ---------------------------------------------------------------- the stage


def test_stage_writes_exports_metrics_hparams_and_resumes(small_processed, embeddings, tmp_path,
                                                          capsys):
    params = params_file(tmp_path, preset="beauty", model={"topk": 5})
    assert run_stage(tmp_path, small_processed, embeddings, params) == 0
    out, data = tmp_path / "run" / "out", load_view(small_processed)
    u, i = np.load(out / "user_emb.npy"), np.load(out / "item_emb.npy")
    assert u.shape == (data.n_users, 64) and i.shape == (data.n_items, 64)
    assert u.dtype == i.dtype == np.float32 and np.isfinite(u).all() and np.isfinite(i).all()
    assert (out / "ckpt.safetensors").exists() and (out / "per_user.parquet").exists()
    full = json.loads((out / "metrics.json").read_text())
    head = json.loads((tmp_path / "run" / "head.json").read_text())
    assert {"test/recall@20", "test/ndcg@20", "valid/recall@20"} <= set(full)
    assert "test/recall@20" in head and 0.0 <= full["test/recall@20"] <= 1.0
    assert full["model"] == "mmhcl[text]" and full["modalities"] == "text"
    assert full["selected_epoch"] in (0, 1, 2)
    hp = json.loads((out / "hparams.json").read_text())
    assert hp["preset"] == "beauty" and hp["modalities"] == ["text"] and hp["device"] == "cpu"
    assert hp["params"]["topk"] == 5  # the override
    assert {k: hp["params"][k] for k in PRESETS["beauty"] if k != "topk"} == {
        k: v for k, v in PRESETS["beauty"].items() if k != "topk"}
    assert hp["train"]["lr"] == 1e-4 and hp["train"]["epochs"] == 3 and hp["seeds"] == [2024]
    assert hp["eval"]["preset"] == "unified"
    assert any((tmp_path / "run" / "plots").rglob("*.tsv"))  # dvclive curves
    first = capsys.readouterr().out
    assert "U2U hypergraph" in first and "I2I hypergraph" in first

    # the same run again continues its checkpoint: nothing left to train, the same results
    assert run_stage(tmp_path, small_processed, embeddings, params) == 0
    assert "resumed" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text()) == full
    np.testing.assert_array_equal(np.load(out / "item_emb.npy"), i)


def test_stage_on_attributes_labels_the_run(seq_loo, tmp_path):
    processed, _ = seq_loo
    params = params_file(tmp_path, modalities=["attributes"], model={"topk": 3},
                         train={"epochs": 2, "batch_size": 16})
    assert run_stage(tmp_path, processed, tmp_path / "no_embeddings", params) == 0
    full = json.loads((tmp_path / "run" / "out" / "metrics.json").read_text())
    assert full["modalities"] == "attributes" and full["model"] == "mmhcl[attributes]"


# ---------------------------------------------------------------- no leakage


def _pairs(m: sp.spmatrix) -> set:
    c = sp.coo_matrix(m)
    return set(zip(c.row.tolist(), c.col.tolist()))


def _graph_csr(g) -> sp.csr_matrix:
    """A recpipe.graph.adjacency.Graph back as scipy CSR."""
    return sp.csr_matrix((g.values.numpy(), g.col.numpy(), g.crow.numpy()), shape=g.shape)


def test_loo_graphs_and_batches_use_training_pairs_only(seq_loo, monkeypatch):
    from recpipe.hypergraph import mmhcl, run

    processed, _ = seq_loo
    data = load_view(processed)
    rows = {s: pl.read_parquet(processed / f"{s}.parquet") for s in ("train", "valid", "test")}
    train = {(u, i) for u, i in rows["train"].select("uid", "iid").iter_rows()}
    held = {(u, i) for s in ("valid", "test") for u, i in rows[s].select("uid", "iid").iter_rows()}
    assert held and not held & train  # LOO: the last two items of each user, held out
    shape = (data.n_users, data.n_items)
    r_train = sp.csr_matrix((np.ones(len(train), np.float32), tuple(zip(*train))), shape=shape)
    r_all = r_train + sp.csr_matrix((np.ones(len(held), np.float32), tuple(zip(*held))), shape=shape)

    seen = {}  # the interaction matrices the graph builders were given
    for mod, name in ((build, "u2u"), (mmhcl, "bipartite")):
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda m, *a, _r=real, _n=name, **k: (
            seen.setdefault(_n, m), _r(m, *a, **k))[1])
    p = parse(MMHCLParams, {"modalities": ["attributes"], "model": {"topk": 3}}, prefix="mmhcl")
    feats, _ = features.load_modalities(p.modalities, processed, None, "", data.n_items)
    model, _, batches, _ = run.build(data, p, feats, seed=1)

    assert _pairs(seen["u2u"]) == train and _pairs(seen["bipartite"]) == train
    ui = _graph_csr(model.ui)[: data.n_users, data.n_users:]  # the (U, I) block of Â
    assert _pairs(ui) == train and not _pairs(ui) & held
    uu = _graph_csr(model.uu_graph)
    assert (uu != build.u2u(r_train)).nnz == 0
    assert (uu != build.u2u(r_all)).nnz > 0  # the held-out pairs would change it
    for users, pos, _ in batches.epoch():  # every positive is a training pair
        assert set(zip(users.tolist(), pos.tolist())) <= train


# ---------------------------------------------------------------- features


def test_attribute_features_are_the_multi_hot_of_items_parquet(seq_loo, monkeypatch):
    processed, attrs = seq_loo
    items = pl.read_parquet(processed / "items.parquet").sort("iid")
    x = features.attributes(processed, items.height)
    assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape == (items.height, len(ATTRS))
    for iid, raw, extra in items.select("iid", "item", "extra").iter_rows():
        want = np.zeros(len(ATTRS), np.float32)
        want[[ATTRS.index(a) for a in attrs.get(raw, [])]] = 1.0  # the source file, by raw id
        np.testing.assert_array_equal(x[iid], want)
        assert sorted(json.loads(extra).get("attributes", [])) == attrs.get(raw, [])
    no_attr = items.filter(pl.col("item").is_in(["19", "20"]))["iid"].to_list()
    assert no_attr and not x[no_attr].any()
    # above the dense limit it stays CSR, with the same entries, and build.knn searches it sparse
    monkeypatch.setattr(features, "DENSE_MAX_BYTES", 0)
    xs = features.attributes(processed, items.height)
    assert sp.issparse(xs) and np.array_equal(xs.toarray(), x)
    rand = sp.random(60, 40, density=0.2, random_state=1, dtype=np.float32, format="csr")
    assert (build.knn(rand, 4) != build.knn(rand.toarray(), 4, backend="torch")).nnz == 0


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("mmhcl, pattern", [
    ({"modalities": []}, r"mmhcl\.modalities: empty"),
    ({"modalities": ["audio"]}, r"mmhcl\.modalities: 'audio' is not allowed"),
    ({"modalities": ["image"], "image_path": "WRONG"}, r"mmhcl\.image_path: .*\(149, 8\).*n_items = 150"),
    ({"modalities": ["image"]}, r"mmhcl\.image_path: .*item_image\.npy, which does not exist"),
    ({"model": {"topk": 151}}, r"mmhcl\.model\.topk: 151 .*n_items = 150"),
    ({"preset": "movies"}, r"mmhcl\.preset: 'movies' is not allowed"),
    ({"model": {"lambda": 0.1}}, r"mmhcl\.model\.lambda: unknown key"),
    ({"model": {"modalities": ["text"]}}, r"mmhcl\.model\.modalities: unknown key; the modality list is mmhcl\.modalities"),
    ({"model": {"tau": 0}}, r"mmhcl\.model\.tau: 0\.0 must be > 0"),
    ({"train": {"batch": 3}}, r"mmhcl\.train: unknown key"),
    ({"device": "gpu"}, r"mmhcl\.device: 'gpu'"),
    ({"modalities": ["attributes"]}, r"mmhcl\.modalities: modality attributes, but no item"),
])
def test_bad_input_names_the_param(small_processed, embeddings, tmp_path, capsys, mmhcl, pattern):
    mmhcl = dict(mmhcl)
    if mmhcl.get("image_path") == "WRONG":  # one row short
        mmhcl["image_path"] = str(tmp_path / "img.npy")
        np.save(mmhcl["image_path"], np.zeros((149, 8), np.float32))
    assert run_stage(tmp_path, small_processed, embeddings, params_file(tmp_path, **mmhcl)) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmhcl failed: ")
    assert re.search(pattern, err), err
    assert not (tmp_path / "run" / "out" / "ckpt.safetensors").exists()


def test_missing_text_says_how_to_get_it(small_processed, tmp_path, capsys):
    params = params_file(tmp_path, modalities=["text"])
    assert run_stage(tmp_path, small_processed, tmp_path / "empty", params) == 2
    err = capsys.readouterr().err
    assert "item_text.npy, which does not exist" in err and "embed stage" in err


def test_params_resolve_preset_then_overrides():
    p = parse(MMHCLParams, {"preset": "toys", "model": {"tau": 0.2}}, prefix="mmhcl")
    cfg = p.model_config()
    assert cfg.tau == 0.2 and cfg.topk == PRESETS["toys"]["topk"] and cfg.dim == 64
    assert p.model["tau"] == 0.2 and p.train["lr"] == 1e-4 and p.train["eval_every"] == 5
    assert parse(MMHCLParams, {"model": dict(p.model), "preset": "toys"}).model_config() == cfg
    assert MMHCLParams().modalities == ["auto"]
    with pytest.raises(ParamError, match=r"mmhcl\.modalities: .* twice"):
        parse(MMHCLParams, {"modalities": ["text", "text"]}, prefix="mmhcl")


def test_auto_modalities_are_what_the_data_has(small_processed, embeddings, seq_loo, tmp_path):
    """[auto] (the default): text where the embed stage wrote item_text.npy, attributes where
    items carry them; nothing at all is an error naming the param."""
    n = load_view(small_processed).n_items
    _, names = features.load_modalities(["auto"], small_processed, embeddings, "", n)
    assert names == ["text"]
    processed, _ = seq_loo
    feats, names = features.load_modalities(["auto"], processed, tmp_path, "", load_view(processed).n_items)
    assert names == ["attributes"] and feats[0].shape[1] == len(ATTRS)
    assert features.load_modalities(["auto"], small_processed, tmp_path, "", n) == ([], [])
    with pytest.raises(ParamError, match=r"give \[auto\] alone"):
        features.load_modalities(["auto", "text"], small_processed, embeddings, "", n)


def test_ids_only_data_trains_without_the_item_hypergraph(small_processed, tmp_path, capsys):
    """[auto] with no text, attributes or images (the RLMRec release): lambda_i = 0, mmhcl[none]."""
    params = params_file(tmp_path, train={"epochs": 1, "batch_size": 64})
    assert run_stage(tmp_path, small_processed, tmp_path / "no_embeddings", params) == 0
    assert "no item hypergraph" in capsys.readouterr().out
    full = json.loads((tmp_path / "run" / "out" / "metrics.json").read_text())
    assert full["model"] == "mmhcl[none]" and full["modalities"] == "none"
    hp = json.loads((tmp_path / "run" / "out" / "hparams.json").read_text())
    assert hp["params"]["lambda_i"] == 0.0 and hp["modalities"] == []


def test_null_model_keys_leave_the_preset_value():
    p = parse(MMHCLParams, {"preset": "beauty", "model": {"tau": None, "topk": 7, "infonce": "batch"}},
              prefix="mmhcl")
    cfg = p.model_config()
    assert (cfg.tau, cfg.topk, cfg.infonce) == (PRESETS["beauty"]["tau"], 7, "batch")


def test_params_module_keeps_torch_out():
    import subprocess
    import sys

    code = ("import sys, recpipe.hypergraph.params as m; m.MMHCLParams().validate(); "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
