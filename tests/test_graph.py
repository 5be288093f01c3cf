"""Graph CF foundation: sparse graph, sampler, loss terms, LightGCN, alignment, trainer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A small real pipeline split: the synthetic generator -> amazon2018 reader -> split."""
    from recpipe.config import parse
    from recpipe.data.ingest import ingest
    from recpipe.data.processed import build
    from recpipe.data.sample import SampleConfig, generate
    from recpipe.eval.data import load_split
    from recpipe.params import DatasetParams, IngestParams, SplitParams

    d = tmp_path_factory.mktemp("graph")
    generate(SampleConfig(n_users=200, n_items=150, reviews_per_user_mean=10.0, seed=3), d / "raw")
    ingest(DatasetParams(path=str(d / "raw")), IngestParams(), d / "interim")
    build(d / "interim", d / "processed", parse(SplitParams, {}, prefix="split"), 3)
    return load_split(d / "processed")


def test_graph_product_and_gradient_match_dense():
    from recpipe.graph.adjacency import Graph, bipartite

    r = sp.random(30, 20, density=0.2, format="csr", random_state=1)
    g = Graph(bipartite(r))
    dense_a = torch.from_numpy(bipartite(r).toarray())
    assert torch.allclose(dense_a, dense_a.T)  # symmetric normalisation
    vals = g.dropout_values(0.5, torch.Generator().manual_seed(0))
    dense = g._csr(vals).to_dense()
    x = torch.randn(50, 4, requires_grad=True)
    w = torch.randn(50, 4)
    (g.mm(x, vals) * w).sum().backward()
    assert torch.allclose(x.grad, dense.T @ w, atol=1e-6)  # backward uses A^T, not A
    assert not torch.allclose(dense, dense.T)  # dropout broke symmetry, so the check bites
    deg = np.asarray((bipartite(r) > 0).sum(1)).ravel()
    assert math.isclose(bipartite(r)[0].sum(), sum(
        1 / math.sqrt(deg[0] * deg[j]) for j in bipartite(r)[0].indices), rel_tol=1e-5)


def test_power_sum_and_spmm_match_dense_powers_and_transposed_gradients():
    from recpipe.graph.adjacency import Graph, bipartite, spmm

    r = sp.random(30, 20, density=0.2, format="csr", random_state=4)
    g = Graph(bipartite(r))
    vals = g.dropout_values(0.7, torch.Generator().manual_seed(1))  # A no longer symmetric
    dense = g._csr(vals).to_dense().double()
    x = torch.randn(50, 3, dtype=torch.float64)
    w = torch.randn(50, 3, dtype=torch.float64)
    for layers in (0, 1, 3):
        xx = x.float().requires_grad_()
        (g.op(vals).power_sum(xx, layers) * w.float()).sum().backward()
        powers = [torch.linalg.matrix_power(dense, k) for k in range(layers + 1)]
        assert torch.allclose(g.op(vals).power_sum(x.float(), layers).double(), sum(p @ x for p in powers), atol=1e-5)
        assert torch.allclose(xx.grad.double(), sum(p.T @ w for p in powers), atol=1e-5)
    # the uninitialised output buffer of spmm is never read: same product twice, plus `add`
    a = g._csr(vals)
    assert torch.allclose(spmm(a, x.float()).double(), dense @ x, atol=1e-5)
    assert torch.allclose(spmm(a, x.float(), add=w.float()).double(), dense @ x + w, atol=1e-5)


def test_edge_dot_matches_a_loop_over_entries_and_gradchecks():
    from recpipe.graph.adjacency import Graph, bipartite

    r = sp.random(12, 9, density=0.3, format="csr", random_state=5)
    m = bipartite(r)
    g = Graph(m)
    x = torch.randn(21, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randn(21, 4, dtype=torch.float64, requires_grad=True)
    got = g.edge_dot(x, y).detach().numpy()
    want = [float(x[h].detach() @ y[t].detach()) for h in range(21) for t in m.indices[m.indptr[h]:m.indptr[h + 1]]]
    assert np.allclose(got, want)  # CSR order, head row x tail column
    assert torch.autograd.gradcheck(g.edge_dot, (x, y))
    # a pattern that is not symmetric: its transpose has its own structure
    a = sp.random(15, 15, density=0.2, format="csr", random_state=6)
    ga = Graph(a)
    assert not ga.symmetric
    w = torch.rand(ga.nnz, dtype=torch.float64, requires_grad=True)
    z = torch.randn(15, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ga.weighted_mm, (w, z))
    assert torch.autograd.gradcheck(ga.edge_dot, (z, z.detach().clone().requires_grad_()))
    dense = torch.from_numpy(a.toarray())
    zz = z.detach().float().requires_grad_()
    (ga.mm(zz) * 2).sum().backward()  # backward is A^T @ grad
    assert torch.allclose(zz.grad.double(), dense.T @ torch.full((15, 3), 2.0, dtype=torch.float64), atol=1e-5)


def test_retaining_freed_memory_is_idempotent():
    import platform

    from recpipe.graph.allocator import retain_freed_memory

    ok = retain_freed_memory()
    assert retain_freed_memory() is ok
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert ok  # glibc accepts the thresholds


def test_sampler_covers_every_pair_once_with_true_negatives():
    from recpipe.train.sampler import BPRBatches

    r = sp.random(40, 30, density=0.3, format="csr", random_state=2)
    r.data[:] = 1
    s = BPRBatches(r, 64, seed=0)
    batches = list(s.epoch())
    u = np.concatenate([b[0] for b in batches])
    p = np.concatenate([b[1] for b in batches])
    n = np.concatenate([b[2] for b in batches])
    assert len(batches) == len(s) and sorted(zip(u, p)) == sorted(zip(*r.nonzero()))
    assert not r[u, n].any()  # no negative is a training pair


def test_loss_terms_against_literal_computations():
    from recpipe.graph.losses import bpr, info_nce_sum, scl

    g = torch.Generator().manual_seed(0)
    a, p, c = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g), torch.randn(7, 3, generator=g)
    cos = lambda x, y: float((x @ y) / (math.sqrt(1e-8 + float(x @ x)) * math.sqrt(1e-8 + float(y @ y))))
    want = sum(-cos(a[b], p[b]) / 0.5 + math.log(sum(math.exp(cos(a[b], cc) / 0.5) for cc in c))
               for b in range(5))
    assert math.isclose(float(info_nce_sum(a, p, c, 0.5)), want, rel_tol=1e-5)
    x, y = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    want = sum(-math.log(math.exp(cos(x[b], y[b]) / 0.2) /
                         (sum(math.exp(cos(x[b], y[k]) / 0.2) for k in range(4)) + 1e-8) + 1e-8)
               for b in range(4)) / 4
    assert math.isclose(float(scl(x, y, 0.2)), want, rel_tol=1e-5)
    want = sum(math.log1p(math.exp(float(a[b] @ c[b] - a[b] @ p[b]))) for b in range(5)) / 5
    assert math.isclose(float(bpr(a, p, c[:5])), want, rel_tol=1e-5)


def test_info_nce_repeats_drop_in_batch_copies_of_the_positive_exactly():
    """Clean mode's Con term: an item twice in a batch is no negative of itself. The log-space
    correction must equal the literal masked denominator, value and gradients."""
    from recpipe.graph.losses import info_nce_sum

    g = torch.Generator().manual_seed(3)
    items = torch.tensor([4, 1, 4, 2, 4, 1, 0, 3])  # item 4 three times, item 1 twice
    a = torch.randn(8, 5, generator=g, dtype=torch.float64, requires_grad=True)
    table = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    _, inv, counts = torch.unique(items, return_inverse=True, return_counts=True)
    got = info_nce_sum(a, table[items], table[items], 0.2, repeats=counts[inv])
    ga, gt = torch.autograd.grad(got, (a, table))

    an = a / a.norm(dim=-1, keepdim=True)
    c = table[items] / table[items].norm(dim=-1, keepdim=True)
    logits = an @ c.T / 0.2
    dup = (items[:, None] == items[None, :]) & ~torch.eye(8, dtype=torch.bool)
    want = (-logits.diagonal() + logits.masked_fill(dup, float("-inf")).logsumexp(-1)).sum()
    wa, wt = torch.autograd.grad(want, (a, table))
    assert torch.allclose(got, want) and torch.allclose(ga, wa) and torch.allclose(gt, wt)
    plain = info_nce_sum(a, table[items], table[items], 0.2)  # copies counted as negatives
    assert float(plain.detach()) > float(got.detach()) + 0.1
    ones = info_nce_sum(a, table[items], table[items], 0.2, repeats=torch.ones(8, dtype=torch.long))
    assert torch.allclose(ones, plain)


def test_info_nce_by_id_equals_the_row_sum_with_its_duplicates():
    """Con, SGL and SimGCL compute their InfoNCE once per distinct node: value and gradients
    must equal the per-row sum over the batch, duplicates included, in every candidate mode."""
    from recpipe.graph.losses import info_nce_by_id, info_nce_sum

    g = torch.Generator().manual_seed(5)
    ids = torch.tensor([4, 1, 4, 2, 4, 1, 0, 3, 7, 7])  # 4 three times, 1 and 7 twice
    anc = torch.randn(9, 5, generator=g, dtype=torch.float64, requires_grad=True)
    pos = torch.randn(9, 5, generator=g, dtype=torch.float64, requires_grad=True)
    _, inv, counts = torch.unique(ids, return_inverse=True, return_counts=True)
    cases = [  # (by-id kwargs, the per-row reference)
        ({"candidates": pos}, lambda: info_nce_sum(anc[ids], pos[ids], pos, 0.3)),
        ({}, lambda: info_nce_sum(anc[ids], pos[ids], pos[ids], 0.3)),
        ({"mask_duplicates": True},
         lambda: info_nce_sum(anc[ids], pos[ids], pos[ids], 0.3, repeats=counts[inv])),
    ]
    values = []
    for kw, reference in cases:
        got, want = info_nce_by_id(anc, pos, ids, 0.3, **kw), reference()
        assert torch.allclose(got, want), kw
        for x, y in zip(torch.autograd.grad(got, (anc, pos)), torch.autograd.grad(want, (anc, pos))):
            assert torch.allclose(x, y), kw
        values.append(float(got))
    assert len({round(v, 6) for v in values}) == 3  # the three modes are different losses


def _model(data, align="none", seed=0, sem=None, **over):
    from recpipe.graph.adjacency import Graph, bipartite
    from recpipe.graph.align import AlignConfig, wrap
    from recpipe.graph.lightgcn import LightGCN, LightGCNConfig
    from recpipe.train.seeds import seed_everything

    seed_everything(seed)
    cfg = LightGCNConfig(**over)
    backbone = LightGCN(data.n_users, data.n_items, Graph(bipartite(data.train)), cfg)
    su, si = sem if sem is not None else (None, None)
    return wrap(align, backbone, su, si, AlignConfig(), seed=seed)


@pytest.mark.parametrize("align", ["none", "con", "gen"])
def test_every_parameter_gets_a_gradient(data, align):
    rng = np.random.default_rng(0)
    sem = (rng.normal(size=(data.n_users, 16)), rng.normal(size=(data.n_items, 16)))
    m = _model(data, align, sem=sem)
    u, p, n = (torch.arange(8), torch.arange(8), torch.arange(8, 16))
    loss, parts = m.loss(u, p, n)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(q.grad is not None and q.grad.abs().sum() > 0 for q in m.parameters()), align
    ue, ie = m.embeddings()
    assert ue.shape == (data.n_users, 32) and ie.shape == (data.n_items, 32)
    assert {"con": "kd", "gen": "recon", "none": "bpr"}[align] in parts


def test_alignment_without_semantic_tables_fails_clearly(data):
    with pytest.raises(ValueError, match="graph.align=con needs semantic user and item embeddings"):
        _model(data, "con")


class _Recorder:
    """Stands in for dvclive's Live: the steps it was given, as dicts."""

    def __init__(self):
        self.steps, self.cur = [], {}

    def log_metric(self, k, v):
        self.cur[k] = v

    def next_step(self):
        self.steps.append(self.cur)
        self.cur = {}


def _train(data, tmp_path, epochs, ckpt=None, seed=0, align="none", patience=50, live=None):
    from recpipe.eval.protocol import resolve
    from recpipe.graph.run import train
    from recpipe.train.loop import TrainConfig

    rng = np.random.default_rng(1)
    sem = (rng.normal(size=(data.n_users, 8)), rng.normal(size=(data.n_items, 8)))
    m = _model(data, align, seed=seed, sem=sem)
    cfg = TrainConfig(batch_size=256, epochs=epochs, eval_every=1, patience=patience)
    return train(m, data, cfg, resolve({"preset": "rlmrec"}), seed, ckpt=ckpt, progress=False, live=live)


def test_training_learns_and_is_deterministic(data, tmp_path):
    a = _train(data, tmp_path, 4)
    b = _train(data, tmp_path, 4)
    assert a["test"].summary == b["test"].summary
    losses = [h["loss"] for h in a["history"]]
    assert losses[-1] < losses[0]
    assert a["best_epoch"] >= 0 and "valid/recall@20" in a["history"][0]


def test_resumed_run_equals_uninterrupted(data, tmp_path):
    full = _train(data, tmp_path, 4, align="gen")
    ckpt = tmp_path / "ckpt"
    _train(data, tmp_path, 2, ckpt=ckpt, align="gen")  # "interrupted" after epoch 1
    resumed = _train(data, tmp_path, 4, ckpt=ckpt, align="gen")
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in full["history"]], rel=1e-6)
    assert resumed["test"].summary == pytest.approx(full["test"].summary, rel=1e-6)


def test_stage_says_which_semantic_file_is_missing(tmp_path):

    from recpipe.config import ParamError, parse

    from conftest import stage as load_stage

    stage = load_stage("graph")
    p = parse(stage.GraphParams, {"align": "gen"}, prefix="graph")
    with pytest.raises(ParamError, match=r"graph.align=gen needs .*user_profile.npy.*dvc repro embed"):
        stage.semantic_tables(p, tmp_path / "processed", tmp_path / "embeddings")
    p = parse(stage.GraphParams, {"align": "con", "semantic": "release"}, prefix="graph")
    with pytest.raises(ParamError, match=r"user_emb.npy.*usr_emb_np.pkl"):
        stage.semantic_tables(p, tmp_path / "processed", tmp_path / "embeddings")
    with pytest.raises(ParamError, match="graph.threads: -1 must be >= 0"):
        parse(stage.GraphParams, {"threads": -1}, prefix="graph")


def test_resuming_a_finished_run_trains_nothing_more(data, tmp_path):
    ckpt = tmp_path / "done"
    first = _train(data, tmp_path, 30, ckpt=ckpt, patience=1)  # stops at the first non-gain
    assert len(first["history"]) < 30
    live = _Recorder()
    again = _train(data, tmp_path, 30, ckpt=ckpt, patience=1, live=live)
    assert len(again["history"]) == len(first["history"])
    assert again["test"].summary == first["test"].summary
    # the fresh dvclive directory still gets every epoch's curve point
    assert [st["train/loss"] for st in live.steps] == [h["loss"] for h in first["history"]]


def test_checkpoint_fingerprint_covers_config_split_semantics_and_code(data, tmp_path, monkeypatch):
    import dataclasses
    import shutil

    from recpipe.train import checkpoint
    from recpipe.graph.lightgcn import LightGCNConfig

    sem = np.arange(12, dtype=np.float32).reshape(3, 4)
    base = checkpoint.fingerprint(LightGCNConfig(), 7, data, sem)
    assert base == checkpoint.fingerprint(LightGCNConfig(), 7, data, sem.copy())
    other_valid = dataclasses.replace(data, valid=data.test)
    # the same number of validation pairs, one moved to another item: still another split
    moved = data.valid.copy()
    moved.indices = moved.indices.copy()
    moved.indices[0] = (moved.indices[0] + 1) % data.n_items
    changed = [checkpoint.fingerprint(LightGCNConfig(layers=2), 7, data, sem),
               checkpoint.fingerprint(LightGCNConfig(), 8, data, sem),
               checkpoint.fingerprint(LightGCNConfig(), 7, other_valid, sem),
               checkpoint.fingerprint(LightGCNConfig(), 7, dataclasses.replace(data, valid=moved), sem),
               checkpoint.fingerprint(LightGCNConfig(), 7, data, sem[::-1])]
    assert base not in changed and len(set(changed)) == 5
    pkg = tmp_path / "pkg"
    shutil.copytree(Path(checkpoint.__file__).parents[1] / "graph", pkg / "graph")
    before = checkpoint.code_digest("graph", root=pkg)
    with open(pkg / "graph" / "lightgcn.py", "a") as f:
        f.write("# a one-line change\n")
    assert checkpoint.code_digest("graph", root=pkg) != before
    monkeypatch.setattr(checkpoint, "code_digest", lambda *pkgs, root=None: "other code")
    assert checkpoint.fingerprint(LightGCNConfig(), 7, data, sem) != base


def test_sampler_terminates_when_a_user_has_every_item():
    """Before: `_negatives` redrew forever for such a user (a 5-core of a category with 8 items
    had hundreds of them), so `graph` hung without a message."""
    import numpy as np
    import scipy.sparse as sp

    from recpipe.train.sampler import BPRBatches

    dense = np.zeros((3, 4), dtype=np.float32)
    dense[0] = 1  # user 0 has all four items
    dense[1, :2] = 1
    dense[2, 3] = 1
    s = BPRBatches(sp.csr_matrix(dense), batch_size=4, seed=0)
    for _ in range(20):
        for u, p, n in s.epoch():
            others = ~np.isin(u, [0])
            assert not dense[u[others], n[others]].any()  # real negatives for the others
