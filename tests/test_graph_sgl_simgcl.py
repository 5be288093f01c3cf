"""SGL and SimGCL (rlmrec.md section 6): each loss term and augmentation against literal
loop/dense computations on a tiny graph, and what each config switch claims."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")


def _tiny():
    """6 users x 5 items, binary, every user and item with at least one edge."""
    r = sp.random(6, 5, density=0.45, format="csr", random_state=4)
    r = (r + sp.eye(6, 5, format="csr")).tocsr()
    r.data[:] = 1.0
    assert (np.asarray(r.sum(0)).ravel() > 0).all() and (np.asarray(r.sum(1)).ravel() > 0).all()
    return r


def _build(name, r, seed=7, **over):
    from recpipe.graph.adjacency import Graph, bipartite
    from recpipe.graph.sgl import SGL
    from recpipe.graph.simgcl import SimGCL

    cls = {"sgl": SGL, "simgcl": SimGCL}[name]
    torch.manual_seed(0)
    return cls(r.shape[0], r.shape[1], Graph(bipartite(r)), cls.Config(**over),
               generator=torch.Generator().manual_seed(seed))


def _dense(r, keep_mask=None):
    """Â as a dense (N, N) tensor, entry by entry; `keep_mask` zeroes stored entries (CSR order)."""
    from recpipe.graph.adjacency import bipartite

    a = bipartite(r)
    out = torch.zeros(a.shape)
    k = 0
    for row in range(a.shape[0]):
        for j in range(a.indptr[row], a.indptr[row + 1]):
            if keep_mask is None or keep_mask[k]:
                out[row, a.indices[j]] = float(a.data[j])
            k += 1
    return out


def _sum_layers(a, e, layers):
    out, x = e.clone(), e
    for _ in range(layers):
        x = a @ x
        out = out + x
    return out


def _cos(x, y):
    return float(x @ y) / (math.sqrt(1e-8 + float(x @ x)) * math.sqrt(1e-8 + float(y @ y)))


def _nce(anchor, positive, cands, tau):
    """Σ_b -log(exp(cos(a_b, p_b)/τ) / Σ_c exp(cos(a_b, c)/τ)), one row at a time."""
    return sum(-_cos(anchor[b], positive[b]) / tau
               + math.log(sum(math.exp(_cos(anchor[b], c) / tau) for c in cands))
               for b in range(len(anchor)))


def _bpr_l2(m, users, pos, neg):
    u, i = m.split(m.encode(train=True).detach())
    bpr = sum(math.log1p(math.exp(float(u[a] @ i[n] - u[a] @ i[p])))
              for a, p, n in zip(users.tolist(), pos.tolist(), neg.tolist())) / len(users)
    l2 = m.cfg.reg_weight * float((m.user.detach() ** 2).sum() + (m.item.detach() ** 2).sum())
    return bpr, l2


BATCH = (torch.tensor([0, 1, 3, 5, 1]), torch.tensor([0, 1, 3, 4, 2]), torch.tensor([2, 4, 0, 1, 3]))


def test_sgl_cl_term_matches_dense_computation():
    r = _tiny()
    m = _build("sgl", r, layers=2, cl_weight=0.5, temperature=0.3, reg_weight=1e-3)
    users, pos, neg = BATCH
    loss, parts = m.backbone_loss(m.encode(train=True), users, pos, neg)
    # the same two independent edge masks, in the same order, from a same-seeded generator
    g = torch.Generator().manual_seed(7)
    nnz = m.adj.nnz
    masks = [(torch.rand(nnz, generator=g) < 0.8).tolist() for _ in range(2)]
    assert masks[0] != masks[1] and not all(masks[0])
    ego = torch.cat([m.user, m.item]).detach()
    views = [_sum_layers(_dense(r, k), ego, 2) for k in masks]
    (u1, i1), (u2, i2) = [(v[:6], v[6:]) for v in views]
    want = (_nce(u1[users], u2[users], u2, 0.3) + _nce(i1[pos], i2[pos], i2, 0.3)
            + _nce(i1[neg], i2[neg], i2, 0.3)) / 5
    assert math.isclose(float(parts["cl"]), 0.5 * want, rel_tol=1e-5)
    bpr, l2 = _bpr_l2(m, users, pos, neg)
    assert math.isclose(float(parts["bpr"]), bpr, rel_tol=1e-5)
    assert math.isclose(loss.item(), bpr + l2 + 0.5 * want, rel_tol=1e-5)


def test_simgcl_noise_has_norm_eps_and_the_sign_of_each_layer():
    r = _tiny()
    m = _build("simgcl", r, layers=3, eps=0.4)
    seen = []
    noise = m.noise
    m.noise = lambda e: seen.append((e.detach(), noise(e).detach())) or seen[-1][1]
    ego = m.ego().detach()
    m.view(ego)
    assert len(seen) == 3  # one draw per propagation layer, none for layer 0
    for e, n in seen:
        assert torch.allclose(n.norm(dim=1), torch.full((len(e),), 0.4), atol=1e-6)
        assert torch.equal(torch.sign(n), torch.sign(e))
    assert not torch.allclose(seen[0][1].abs(), seen[1][1].abs())  # redrawn every layer


def test_simgcl_view_matches_dense_loop_with_unperturbed_layer0():
    r = _tiny()
    m = _build("simgcl", r, layers=2, eps=0.3)
    ego = m.ego().detach()
    got = m.view(ego)
    g, a = torch.Generator().manual_seed(7), _dense(r)
    acc, e = ego.clone(), ego
    for _ in range(2):
        e = a @ e
        u = torch.rand(e.shape, generator=g)
        e = e + 0.3 * torch.sign(e) * u / u.norm(dim=1, keepdim=True)  # noise goes on to the next layer
        acc = acc + e
    assert torch.allclose(got, acc, atol=1e-5)
    # with no layers the view is the ego table itself: layer 0 carries no noise
    assert torch.equal(_build("simgcl", r, layers=0, eps=0.3).view(ego), ego)


def test_simgcl_cl_term_matches_literal_and_skips_negatives():
    r = _tiny()
    m = _build("simgcl", r, layers=2, eps=0.3, cl_weight=0.2, temperature=0.5, reg_weight=1e-3)
    users, pos, neg = BATCH
    loss, parts = m.backbone_loss(m.encode(train=True), users, pos, neg)
    m.generator.manual_seed(7)  # replay the two views' draws
    ego = m.ego().detach()
    (u1, i1), (u2, i2) = [m.split(m.view(ego).detach()) for _ in range(2)]
    want = (_nce(u1[users], u2[users], u2, 0.5) + _nce(i1[pos], i2[pos], i2, 0.5)) / 5
    assert math.isclose(float(parts["cl"]), 0.2 * want, rel_tol=1e-5)
    bpr, l2 = _bpr_l2(m, users, pos, neg)
    assert math.isclose(loss.item(), bpr + l2 + 0.2 * want, rel_tol=1e-5)


@pytest.mark.parametrize("name", ["sgl", "simgcl"])
def test_cl_weight_zero_leaves_bpr_plus_l2(name):
    r = _tiny()
    users, pos, neg = BATCH
    off = _build(name, r, cl_weight=0.0, reg_weight=1e-2)
    loss, parts = off.backbone_loss(off.encode(train=True), users, pos, neg)
    bpr, l2 = _bpr_l2(off, users, pos, neg)
    assert math.isclose(loss.item(), bpr + l2, rel_tol=1e-6) and float(parts["cl"]) == 0.0
    on = _build(name, r, cl_weight=0.1, reg_weight=1e-2)  # same init (seeded), CL switched on
    loss_on, parts_on = on.backbone_loss(on.encode(train=True), users, pos, neg)
    assert float(parts_on["cl"]) > 0
    assert math.isclose(loss_on.item(), bpr + l2 + float(parts_on["cl"]), rel_tol=1e-5)


@pytest.mark.parametrize("name", ["sgl", "simgcl"])
def test_encode_is_the_clean_deterministic_full_graph(small_split, name):
    from recpipe.graph.adjacency import bipartite

    data = small_split
    m = _build(name, data.train)
    state = m.generator.get_state()
    with torch.no_grad():
        ev, ev2, tr = m.encode(train=False), m.encode(train=False), m.encode(train=True)
    assert torch.equal(ev, ev2) and torch.equal(ev, tr)
    assert torch.equal(m.generator.get_state(), state)  # no random draw: no augmentation
    a = torch.from_numpy(bipartite(data.train).toarray())
    assert torch.allclose(ev, _sum_layers(a, m.ego().detach(), 3), atol=1e-5)
    # the augmented views do differ from it (so the equality above is not vacuous)
    assert not torch.allclose(m.view(m.ego()).detach(), ev, atol=1e-3)


def test_switches_that_turn_augmentation_off_give_the_clean_view(small_split):
    data = small_split
    for name, over in [("simgcl", {"eps": 0.0}), ("sgl", {"edge_keep": 1.0})]:
        m = _build(name, data.train, **over)
        with torch.no_grad():
            clean = m.encode(train=True)
            assert torch.allclose(m.view(m.ego()), clean, atol=1e-6), name
            assert torch.allclose(m.view(m.ego()), clean, atol=1e-6), name


def test_gradients_reach_both_tables_through_the_cl_term_alone(small_split):
    data = small_split
    users, pos, neg = (torch.arange(16), torch.arange(16), torch.arange(16, 32))
    for name in ("sgl", "simgcl"):
        m = _build(name, data.train, reg_weight=0.0, cl_weight=1.0)
        ego = m.ego()
        cl = m.cl_loss(ego, users, pos, neg) if name == "sgl" else m.cl_loss(ego, users, pos)
        cl.backward()
        assert m.user.grad.abs().sum() > 0 and m.item.grad.abs().sum() > 0, name


@pytest.mark.parametrize("name", ["sgl", "simgcl"])
def test_configs_accept_every_preset(name):
    from recpipe.config import parse
    from recpipe.graph import get_backbone
    from recpipe.graph.align import AlignConfig
    from recpipe.graph.presets import resolve

    cls = get_backbone(name)
    for align in ("none", "con", "gen"):
        for kind in ("amazon", "yelp", "steam"):
            for mode in ("parity", "clean"):
                hp = resolve(name, align, kind, mode)
                keys = {k: v for k, v in hp.items() if k not in AlignConfig.__dataclass_fields__}
                cfg = parse(cls.Config, keys, "graph")
                assert all(getattr(cfg, k) == v for k, v in keys.items())
    # quirk 2: parity runs SGL's 3 layers on Steam, clean keeps the preset's 2
    if name == "sgl":
        assert resolve("sgl", "none", "steam", "parity")["layers"] == 3
        assert resolve("sgl", "none", "steam", "clean")["layers"] == 2
