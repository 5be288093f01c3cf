"""DCCF (recpipe/graph/dccf.py) against literal computations written from rlmrec.md section 6."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")


def _tiny(layers=2, seed=0, **kw):
    """4 users x 5 items with an isolated item (id 4): the stage's graph, no self-loops."""
    from recpipe.graph.adjacency import Graph, bipartite
    from recpipe.graph.dccf import DCCF, DCCFConfig

    r = sp.csr_matrix(np.array([[1, 1, 0, 0, 0],
                                [0, 1, 1, 0, 0],
                                [1, 0, 1, 1, 0],
                                [0, 0, 0, 1, 0]], dtype=np.float32))
    torch.manual_seed(seed)
    cfg = DCCFConfig(embedding_size=3, layers=layers, intents=4, **kw)
    return DCCF(4, 5, Graph(bipartite(r)), cfg), bipartite(r).toarray().astype(np.float64)


def _dense_mask(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Loop version: α = (cos + 1)/2 on every edge of A, divided by the α sum of its row."""
    m = np.zeros_like(a)
    for h in range(a.shape[0]):
        for t in range(a.shape[1]):
            if a[h, t] != 0:
                cos = x[h] @ x[t] / (max(np.linalg.norm(x[h]), 1e-12) * max(np.linalg.norm(x[t]), 1e-12))
                m[h, t] = (cos + 1) / 2
        if m[h].sum() > 0:
            m[h] /= m[h].sum()
    return m


def _softmax(z):
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def _dense_forward(model, a):
    """Numpy DCCF forward: (final, per-layer dicts of gnn/int/gaa/iaa)."""
    wu, wi = (p.detach().double().numpy() for p in (model.user_intent, model.item_intent))
    e = model.ego().detach().double().numpy()
    acc, views = e.copy(), []
    for _ in range(model.cfg.layers):
        gnn = a @ e
        itn = np.concatenate([_softmax(e[:4] @ wu) @ wu.T, _softmax(e[4:] @ wi) @ wi.T])
        gaa = _dense_mask(a, gnn) @ e
        iaa = _dense_mask(a, itn) @ e
        views.append({"gnn": gnn, "int": itn, "gaa": gaa, "iaa": iaa})
        e = gnn + itn + gaa + iaa + e
        acc = acc + e
    return acc, views


def test_adaptive_mask_matches_loop_and_rows_sum_to_one():
    model, a = _tiny()
    x = torch.randn(9, 3, generator=torch.Generator().manual_seed(1))
    w = model.adaptive_weights(x)
    dense = model.adj._csr(w.detach()).to_dense().double().numpy()
    want = _dense_mask(a, x.double().numpy())
    assert np.allclose(dense, want, atol=1e-6)
    assert np.allclose(dense.sum(1), (a.sum(1) > 0).astype(float), atol=1e-6)  # item 4 isolated: 0
    assert not np.allclose(dense, (a > 0) / np.maximum((a > 0).sum(1, keepdims=True), 1))  # not uniform


def test_layers_and_final_match_dense_numpy():
    model, a = _tiny(layers=2)
    final, views = model.forward_views()
    want_final, want_views = _dense_forward(model, a)
    assert np.allclose(final.detach().numpy(), want_final, atol=1e-5)
    for got, want in zip(views, want_views, strict=True):
        for k in ("gnn", "int", "gaa", "iaa"):
            assert np.allclose(got[k].detach().numpy(), want[k], atol=1e-5), k
    assert np.allclose(model.encode().detach().numpy(), want_final, atol=1e-5)
    assert len(views) == 2


def test_edge_product_gradients_match_dense():
    """The adaptive masks are differentiable in their weights, as torch_sparse.spmm is."""
    model, _ = _tiny()
    g = torch.Generator().manual_seed(2)
    w = torch.rand(model.adj.nnz, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(9, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model.adj.weighted_mm, (w, x))
    # and the dense analogue: entry (h_e, t_e) of A_w is w_e
    dense = torch.zeros(9, 9, dtype=torch.float64).index_put((model.rows, model.adj.col), w)
    assert torch.allclose(model.adj.weighted_mm(w, x), dense @ x)


def test_gradients_flow_through_the_mask_weights():
    """Full-layer gradient vs a dense torch version built from the spec."""
    model, a = _tiny(layers=1)
    at = torch.from_numpy(a).float()
    mask = at > 0

    def dense_mask(x):
        xn = torch.nn.functional.normalize(x, dim=-1)
        alpha = torch.where(mask, (xn @ xn.T + 1) / 2, torch.zeros(()))
        return alpha / alpha.sum(1, keepdim=True).clamp_min(1e-12)

    e = model.ego()
    gnn = at @ e
    itn = model.intent(e)
    want = gnn + itn + dense_mask(gnn) @ e + dense_mask(itn) @ e + e
    got, _ = model.layer(e)
    probe = torch.randn(9, 3, generator=torch.Generator().manual_seed(3))
    g_want = torch.autograd.grad((want * probe).sum(), [model.user, model.item, model.user_intent],
                                 retain_graph=True)  # gnn and itn are reused below
    g_got = torch.autograd.grad((got * probe).sum(), [model.user, model.item, model.user_intent])
    assert torch.allclose(got, want, atol=1e-5)
    for x, y in zip(g_got, g_want):
        assert torch.allclose(x, y, atol=1e-5)
    # the α path carries gradient: detaching the mask weights changes it
    w_det = model.adaptive_weights(gnn.detach())
    no_alpha = gnn + itn + model.adj.weighted_mm(w_det, e) + dense_mask(itn) @ e + e
    g_no = torch.autograd.grad((no_alpha * probe).sum(), [model.user])
    assert not torch.allclose(g_no[0], g_got[0], atol=1e-6)


def _cos(x, y):
    return float(x @ y) / (math.sqrt(1e-8 + float(x @ x)) * math.sqrt(1e-8 + float(y @ y)))


def test_cl_term_matches_literal_loop():
    model, a = _tiny(layers=2, cl_weight=0.5, temperature=0.3, reg_weight=0.0)
    users = torch.tensor([0, 2, 2, 3, 0])  # duplicates: U_b = {0, 2, 3}
    pos = torch.tensor([1, 2, 3, 3, 0])  # I_b = {0, 1, 2, 3}
    neg = torch.tensor([4, 4, 1, 0, 2])
    final = model.encode(train=True)
    loss, parts = model.backbone_loss(final, users, pos, neg)
    _, views = _dense_forward(model, a)
    tau, total = 0.3, 0.0
    for v in views:
        for x in ("int", "gaa", "iaa"):
            for nodes in ([0, 2, 3], [4 + i for i in (0, 1, 2, 3)]):  # item nodes start at U = 4
                for b in nodes:
                    total += -_cos(v["gnn"][b], v[x][b]) / tau
                    total += math.log(sum(math.exp(_cos(v["gnn"][b], v[x][c]) / tau) for c in nodes))
    want = 0.5 * total / 3  # every term over |U_b| = 3, the item terms too
    assert math.isclose(float(parts["cl"]), want, rel_tol=1e-4)
    assert math.isclose(float(loss.detach()), float(parts["bpr"]) + want, rel_tol=1e-4)


def test_cl_weight_zero_is_bpr_plus_l2_and_recompute_path_agrees():
    from recpipe.graph.losses import bpr, l2_all

    model, _ = _tiny(cl_weight=0.0, reg_weight=1e-2)
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([0, 2, 3]), torch.tensor([4, 0, 1])
    final = model.encode(train=True)
    loss, parts = model.backbone_loss(final, users, pos, neg)
    u, i = model.split(final)
    want = bpr(u[users], i[pos], i[neg]) + l2_all(model, 1e-2)
    assert torch.allclose(loss, want) and float(parts["cl"]) == 0.0
    # l2 covers the intent matrices too
    tables = 1e-2 * (model.user.pow(2).sum() + model.item.pow(2).sum()).detach()
    assert float(parts["reg"]) > float(tables) * 1.01
    # with CL on: the stashed views (same forward) and a recomputation give the same loss
    model.cfg.cl_weight = 1e-1
    stashed = model.backbone_loss(model.encode(train=True), users, pos, neg)[0]
    recomputed = model.backbone_loss(model.encode(train=False), users, pos, neg)[0]
    assert torch.allclose(stashed, recomputed) and not torch.allclose(stashed, loss)


def test_gradients_reach_intents_and_config_switches():
    model, _ = _tiny(cl_weight=1e-1)
    users, pos, neg = torch.tensor([0, 1, 3]), torch.tensor([0, 2, 3]), torch.tensor([4, 0, 1])
    loss, _ = model.backbone_loss(model.encode(train=True), users, pos, neg)
    loss.backward()
    for p in (model.user_intent, model.item_intent, model.user, model.item):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert model.user_intent.shape == (3, 4)
    # the temperature changes the CL term; layers=0 is the bare embedding table with no CL
    a = _tiny(cl_weight=1.0, temperature=0.1)[0]
    b = _tiny(cl_weight=1.0, temperature=0.5)[0]
    cl = [m.backbone_loss(m.encode(train=True), users, pos, neg)[1]["cl"] for m in (a, b)]
    assert not math.isclose(float(cl[0]), float(cl[1]), rel_tol=1e-3)
    z = _tiny(layers=0, cl_weight=1.0)[0]
    assert torch.equal(z.encode(), z.ego()) and float(z.backbone_loss(z.encode(), users, pos, neg)[1]["cl"]) == 0.0
