"""Every graph backbone x every alignment, as the `graph` stage builds them (issue #6).

Per (model, align): gradients reach every parameter, shapes, a 2-epoch training run on a small
real split; per model: determinism, exact resume, and the parity/clean switches of
rlmrec.md section 8. Model-specific formulas are checked in test_graph_<model>.py.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recpipe.graph import BACKBONES  # noqa: E402

MODELS = sorted(BACKBONES)
ALIGNS = ["none", "con", "gen"]


def _build(data, model, align, mode="clean", seed=0, **over):
    from recpipe.graph import get_backbone
    from recpipe.graph.adjacency import Graph, bipartite
    from recpipe.graph.align import wrap
    from recpipe.graph.presets import build_configs
    from recpipe.train.seeds import seed_everything

    # small graphs: AutoCF's 100 seeds would mask everything, so the tests use fewer
    over = {**({"seed_num": 10} if model == "autocf" else {}), **over}
    bb_cfg, al_cfg = build_configs(model, align, "amazon", mode, over)
    seed_everything(seed)
    graph = Graph(bipartite(data.train, getattr(bb_cfg, "self_loops", False)))
    backbone = get_backbone(model)(data.n_users, data.n_items, graph, bb_cfg)
    rng = np.random.default_rng(7)
    sem = (rng.normal(size=(data.n_users, 12)), rng.normal(size=(data.n_items, 12)))
    return wrap(align, backbone, sem[0], sem[1], al_cfg, seed=seed)


def _train(data, model, align, epochs=2, seed=0, ckpt=None):
    from recpipe.eval.protocol import resolve
    from recpipe.graph.run import train
    from recpipe.train.loop import TrainConfig

    m = _build(data, model, align, seed=seed)
    cfg = TrainConfig(batch_size=256, epochs=epochs, eval_every=1, patience=50)
    return train(m, data, cfg, resolve({"preset": "unified"}), seed, ckpt=ckpt, progress=False)


@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("model", MODELS)
def test_gradients_reach_every_parameter(small_split, model, align):
    m = _build(small_split, model, align)
    m.train()
    u, p, n = torch.arange(16), torch.arange(16), torch.arange(16, 32)
    loss, parts = m.loss(u, p, n)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    missing = [k for k, q in m.named_parameters() if q.grad is None or not q.grad.abs().sum() > 0]
    assert not missing, f"{model}/{align}: no gradient for {missing}"
    ue, ie = m.embeddings()
    d = m.backbone.out_dim
    assert ue.shape == (small_split.n_users, d) and ie.shape == (small_split.n_items, d)
    assert align == "none" or {"con": "kd", "gen": "recon"}[align] in parts


@pytest.mark.parametrize("model", MODELS)
def test_evaluation_embeddings_are_cached_until_a_parameter_changes(small_split, model):
    import copy

    m = _build(small_split, model, "gen")  # Gen: the mask token must not leak into scoring
    bb = m.backbone
    ue, ie = bb.user_embeddings(), bb.item_embeddings()
    assert ue.shape == (small_split.n_users, bb.out_dim) and ie.shape == (small_split.n_items, bb.out_dim)
    fu, fi = bb.split(bb.encode(train=False))
    assert torch.equal(ue, fu) and torch.equal(ie, fi) and not ue.requires_grad
    assert bb.user_embeddings() is ue  # cached: no second propagation
    saved = copy.deepcopy(m.state_dict())
    opt = torch.optim.Adam(m.parameters(), lr=0.1)
    loss, _ = m.loss(torch.arange(8), torch.arange(8), torch.arange(8, 16))
    loss.backward()
    opt.step()
    assert not torch.allclose(bb.user_embeddings(), ue)  # the step invalidated the cache
    m.load_state_dict(saved)
    assert torch.allclose(bb.user_embeddings(), ue) and torch.allclose(m.embeddings()[1], ie)


@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("model", MODELS)
def test_two_epoch_smoke_run(small_split, model, align):
    res = _train(small_split, model, align)
    assert len(res["history"]) == 2 and all(np.isfinite(h["loss"]) for h in res["history"])
    r = res["test"].summary["recall@20"]
    assert 0.0 <= r <= 1.0 and res["best_epoch"] in (0, 1)


@pytest.mark.parametrize("model", MODELS)
def test_same_seed_same_metrics_other_seed_other_metrics(small_split, model):
    a, b = _train(small_split, model, "gen", seed=1), _train(small_split, model, "gen", seed=1)
    assert a["test"].summary == b["test"].summary
    c = _train(small_split, model, "gen", seed=2)
    assert [h["loss"] for h in c["history"]] != [h["loss"] for h in a["history"]]


@pytest.mark.parametrize("model", MODELS)
def test_resumed_run_equals_uninterrupted(small_split, model, tmp_path):
    full = _train(small_split, model, "con", epochs=4)
    _train(small_split, model, "con", epochs=2, ckpt=tmp_path / "ckpt")  # "interrupted"
    resumed = _train(small_split, model, "con", epochs=4, ckpt=tmp_path / "ckpt")
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in full["history"]], rel=1e-5)
    assert resumed["test"].summary == pytest.approx(full["test"].summary, rel=1e-5)


def test_presets_cover_every_model_alignment_and_dataset():
    from recpipe.graph.presets import PAPER, build_configs

    for model in MODELS:
        for align in ALIGNS:
            assert set(PAPER[(model, align)]) == {"amazon", "yelp", "steam"}
            for kind in ("amazon", "yelp", "steam"):
                for mode in ("parity", "clean"):
                    build_configs(model, align, kind, mode)  # every preset key is a known key


def test_parity_switches_change_exactly_what_they_claim():
    from recpipe.graph.presets import build_configs

    def diff(model, align, kind="amazon"):
        p, c = (build_configs(model, align, kind, m) for m in ("parity", "clean"))
        out = {k: (getattr(p[0], k), getattr(c[0], k)) for k in vars(p[0]) if getattr(p[0], k) != getattr(c[0], k)}
        out.update({k: (getattr(p[1], k), getattr(c[1], k)) for k in vars(p[1]) if getattr(p[1], k) != getattr(c[1], k)})
        return out

    dup = {"mask_duplicates": (False, True)}
    assert diff("lightgcn", "none") == {**dup, "pooling": ("sum", "mean"), "edge_keep": (0.8, 1.0)}
    assert diff("gccf", "none") == dup  # quirk 1: the plain gccf has self-loops in both modes
    assert diff("gccf", "con") == {**dup, "self_loops": (False, True)}
    assert diff("gccf", "gen") == {**dup, "self_loops": (False, True)}
    assert diff("sgl", "none", "steam") == {**dup, "layers": (3, 2)}  # quirk 2
    assert diff("sgl", "none", "amazon") == dup
    for model in ("simgcl", "dccf"):
        assert diff(model, "con") == dup
    assert diff("autocf", "con") == {**dup, "edge_decode": ("float32", "exact")}  # autocf_mask.decode_edges


def test_unknown_override_names_the_known_keys():
    from recpipe.config import ParamError
    from recpipe.graph.presets import build_configs

    with pytest.raises(ParamError, match=r"unknown key\(s\) \['eps'\] for graph.model=gccf; known: .*layers"):
        build_configs("gccf", "none", "amazon", "clean", {"eps": 0.1})
    with pytest.raises(ParamError, match="graph.layers"):
        build_configs("gccf", "none", "amazon", "clean", {"layers": -1})


def test_gccf_concatenates_layers_and_self_loops_change_the_graph(small_split):
    from recpipe.graph.adjacency import Graph, bipartite
    from recpipe.graph.gccf import GCCF, GCCFConfig

    cfg = GCCFConfig(layers=2, embedding_size=4)
    for loops in (False, True):
        a = bipartite(small_split.train, self_loops=loops)
        m = GCCF(small_split.n_users, small_split.n_items, Graph(a), cfg)
        e0 = m.ego().detach().numpy()
        want = np.concatenate([e0, a @ e0, a @ (a @ e0)], axis=1)
        got = m.encode().detach().numpy()
        assert got.shape == (e0.shape[0], 12) and np.allclose(got, want, atol=1e-5)
        assert np.allclose(a.diagonal() > 0, loops)  # self-loops exactly when asked for


def test_graph_stage_runs_several_seeds_and_reports_mean_and_std(small_processed, tmp_path):
    import json

    import yaml

    from conftest import stage as load_stage

    stage = load_stage("graph")
    params = {"seed": 5, "eval": {"preset": "unified"},
              "graph": {"model": "gccf", "align": "none", "seeds": [1, 2], "device": "cpu",
                        "train": {"epochs": 2, "eval_every": 1, "batch_size": 512}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    args = ["--params", str(tmp_path / "params.yaml"), "--processed", str(small_processed),
            "--embeddings", str(tmp_path / "embeddings"), "--out", str(tmp_path / "models"),
            "--metrics", str(tmp_path / "graph.json"), "--plots", str(tmp_path / "plots")]
    assert stage.main(args) == 0
    m = json.loads((tmp_path / "models" / "metrics.json").read_text())  # the full file
    assert set(json.loads((tmp_path / "graph.json").read_text())) >= {"test/recall@20", "test/recall@20_std"}
    per = [json.loads((tmp_path / "models" / f"seed{k}" / "metrics.json").read_text()) for k in (1, 2)]
    vals = [p["test/recall@20"] for p in per]
    assert m["seeds"] == 2 and m["seed_list"] == [1, 2] and m["model"] == "gccf-none"
    assert m["test/recall@20"] == pytest.approx(np.mean(vals), abs=1e-6)  # files keep 6 decimals
    assert m["test/recall@20_std"] == pytest.approx(np.std(vals, ddof=1), abs=1e-6)
    assert vals[0] != vals[1]  # the seeds really differ
    for k in (1, 2):
        assert (tmp_path / "models" / f"seed{k}" / "item_emb.npy").exists()
        assert (tmp_path / "plots" / f"seed{k}").is_dir()
    params["graph"]["seeds"] = [1, 1]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert stage.main(args) == 2  # duplicate seeds: a clear error, nothing trained
