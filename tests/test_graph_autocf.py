"""AutoCF (recpipe/graph/autocf.py, autocf_mask.py) against literal loop/dense computations
written from rlmrec.md section 6 (AutoCF row) on tiny graphs.

The generic checks (gradients, smoke run, determinism, resume through the trainer) are in
test_graph_backbones.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from recpipe.graph.adjacency import Graph, bipartite, edge_rows
from recpipe.graph.autocf import AutoCF, AutoCFConfig, GTLayer, lse
from recpipe.graph.autocf_mask import gumbel_log, local_scores, mask_edges, masked_graphs
from recpipe.graph.losses import _LSE

# 4 users x 5 items; user 3 and item 4 are isolated, item 3 has one neighbour
R = np.array([[1, 1, 0, 0, 0],
              [0, 1, 1, 0, 0],
              [1, 0, 1, 1, 0],
              [0, 0, 0, 0, 0]], dtype=np.float32)


def _model(r=R, **over):
    cfg = AutoCFConfig(**{"embedding_size": 8, "heads": 2, "seed_num": 2, **over})
    return AutoCF(r.shape[0], r.shape[1], Graph(bipartite(sp.csr_matrix(r))), cfg)


def _adj(r=R) -> np.ndarray:
    """Dense binary A = [[0, R], [R^T, 0]]."""
    u, i = r.shape
    a = np.zeros((u + i, u + i))
    a[:u, u:], a[u:, :u] = r, r.T
    return a


def _random_r(seed: int, u: int = 30, i: int = 25, p: float = 0.12) -> np.ndarray:
    return (np.random.default_rng(seed).random((u, i)) < p).astype(np.float32)


def _nbrs(a: np.ndarray, v: int) -> list[int]:
    return list(np.flatnonzero(a[v]))


def test_local_scores_match_the_walk_form_and_the_dense_reference_formula():
    a = _adj()
    n = len(a)
    e = torch.randn(n, 6, generator=torch.Generator().manual_seed(0))
    g = Graph(bipartite(sp.csr_matrix(R)))
    deg = g.crow.diff().float().unsqueeze(1)
    got = local_scores(g.op(torch.ones_like(g.values)), deg, e).numpy()
    x = e.double().numpy()
    # walk form: z_v = Σ_{u∈N(v)} [Σ_{w∈N(u), w≠v} e_w − e_u] / (Σ_{u∈N(v)} (deg_u − 1) + 1e-8)
    want = []
    for v in range(n):
        num, den = np.zeros(6), 0.0
        for u in _nbrs(a, v):
            num += sum((x[w] for w in _nbrs(a, u) if w != v), np.zeros(6)) - x[u]
            den += len(_nbrs(a, u)) - 1
        z = num / (den + 1e-8)
        cos = z @ x[v] / (max(np.linalg.norm(z), 1e-12) * max(np.linalg.norm(x[v]), 1e-12))
        want.append(1 / (1 + np.exp(-cos)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the reference's own dense formula (fst/scd with its correction terms)
    d = a.sum(1, keepdims=True)
    fst = a @ x - x
    scd = (a @ fst - fst) - d * x
    z = (fst + scd) / (d + (a @ d - d) - d + 1e-8)
    zn = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-(zn * xn).sum(1))), rtol=1e-5, atol=1e-6)
    assert got[3] == pytest.approx(0.5) and got[4 + 4] == pytest.approx(0.5)  # isolated: z = 0


def test_draw_takes_the_top_k_of_log_score_plus_gumbel_noise():
    m = _model(_random_r(1), seed_num=7)
    torch.manual_seed(5)
    scores = m.draw()
    torch.manual_seed(5)
    u = torch.rand(len(m.deg))
    s = local_scores(m.ones, m.deg, m.ego()).detach()
    want = torch.log(s) - torch.log(-torch.log(u))
    torch.testing.assert_close(scores.detach(), want)
    assert set(m.seeds.tolist()) == set(torch.topk(want, 7).indices.tolist())
    assert scores.requires_grad  # the infomax term trains the embeddings through the scores
    # torch.rand may return 0: the noise stays finite (the reference's would be -inf)
    assert torch.isfinite(gumbel_log(torch.tensor([0.5, 0.5]), torch.tensor([0.0, 0.5]))).all()


def _distances(a: np.ndarray, seeds) -> np.ndarray:
    """BFS hop distance of every node from the seed set (inf when unreachable)."""
    dist = np.full(len(a), np.inf)
    dist[list(seeds)] = 0
    frontier = list(seeds)
    while frontier:
        nxt = []
        for v in frontier:
            for w in _nbrs(a, v):
                if dist[w] == np.inf:
                    dist[w] = dist[v] + 1
                    nxt.append(w)
        frontier = nxt
    return dist


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_mask_edges_removes_exactly_the_edges_near_the_seeds(depth):
    r = _random_r(2)
    a, g = _adj(r), Graph(bipartite(sp.csr_matrix(r)))
    rows, cols = edge_rows(g.crow), g.col
    seeds = [0, 7, r.shape[0] + 3]
    keep, masked = mask_edges(rows, cols, torch.tensor(seeds), len(a), depth)
    dist = _distances(a, seeds)
    # an edge goes when an endpoint lies within depth-1 hops of a seed (depth 2: the seeds'
    # edges, then every edge of their 1-hop neighbours)
    for e, (h, t) in enumerate(zip(rows.tolist(), cols.tolist())):
        assert bool(keep[e]) == (min(dist[h], dist[t]) > depth - 1), (h, t)
    assert set(np.flatnonzero(masked.numpy())) == set(np.flatnonzero(dist <= depth - 1))
    assert (~keep).sum() > 0


def test_masked_graphs_encoder_and_decoder_are_what_the_spec_lists():
    r = _random_r(3)
    a, g = _adj(r), Graph(bipartite(sp.csr_matrix(r)))
    n, rows, cols = len(a), edge_rows(g.crow), g.col
    seeds, keep_rate = torch.tensor([1, 4, 33]), 0.2
    enc, (dr, dc) = masked_graphs(rows, cols, seeds, n, 2, keep_rate, torch.Generator().manual_seed(9))
    dist = _distances(a, seeds.tolist())
    remaining = {(h, t) for h, t in zip(*np.nonzero(a)) if min(dist[h], dist[t]) > 1}
    # encoder: the remaining edges, sym-normalised
    a_rem = np.zeros_like(a)
    for h, t in remaining:
        a_rem[h, t] = 1
    d = a_rem.sum(1)
    inv = np.where(d > 0, (d + 1e-12) ** -0.5, 0)
    dense = torch.sparse_csr_tensor(g.crow, g.col, enc, size=(n, n), check_invariants=False).to_dense().numpy()
    np.testing.assert_allclose(dense, inv[:, None] * a_rem * inv[None, :], rtol=1e-6)
    # decoder: replay the generator: keep_rate*N nodes, then nnz(Â) pairs among the masked set
    gen = torch.Generator().manual_seed(9)
    extra = torch.randint(n, (int(n * keep_rate),), generator=gen).tolist()
    nodes = sorted(set(np.flatnonzero(dist <= 1)) | set(extra))
    pick = torch.randint(len(nodes), (2, g.nnz), generator=gen)
    pairs = {(nodes[p], nodes[q]) for p, q in pick.T.tolist()}
    want = remaining | {(v, v) for v in range(n)} | pairs | {(q, p) for p, q in pairs}
    got = list(zip(dr.tolist(), dc.tolist()))
    assert len(got) == len(set(got)) and got == sorted(got)  # deduplicated, row-major
    assert set(got) == want
    assert not set(got) >= {(int(h), int(t)) for h, t in zip(*np.nonzero(a))}  # masking bites


def test_gt_layer_matches_a_loop_over_edges():
    n, d, heads = 6, 8, 2
    torch.manual_seed(0)
    layer = GTLayer(d, heads)
    x = 4 * torch.randn(n, d)  # large enough that several logits pass the [-10, 10] clamp
    rows = torch.tensor([0, 0, 0, 1, 2, 2, 4, 4, 4, 4])  # node 3 and 5: no edges
    cols = torch.tensor([0, 1, 2, 3, 2, 5, 0, 1, 3, 4])  # and not symmetric
    got = layer(x, Graph.from_edges(rows, cols, n)).detach().double().numpy()
    q, k, v = (x @ w for w in (layer.q, layer.k, layer.v))
    q, k, v = (t.detach().double().numpy() for t in (q, k, v))
    want, unclamped = np.zeros((n, d)), np.zeros((n, d))
    s = d // heads
    for h in range(n):
        edges = [e for e in range(len(rows)) if rows[e] == h]
        for hd in range(heads):
            sl = slice(hd * s, (hd + 1) * s)
            logits = np.array([q[h, sl] @ k[int(cols[e]), sl] for e in edges])
            for out, z in ((want, np.clip(logits, -10, 10)), (unclamped, logits)):
                w = np.exp(z)
                w = w / (w.sum() + 1e-8)
                for e, we in zip(edges, w):
                    out[h, sl] += we * v[int(cols[e]), sl]
    assert np.abs(want - unclamped).max() > 1e-2  # the clamp matters on this input
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def _lse_loop(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean([np.log(sum(np.exp(xi @ yj) for yj in y)) for xi in x]))


def test_chunked_lse_matches_logsumexp_and_its_gradient():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 4, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randn(5, 4, dtype=torch.float64, generator=g, requires_grad=True)
    for chunk in (1, 3, 7):  # chunks that do and do not divide the rows
        assert torch.autograd.gradcheck(lambda a, b, c=chunk: _LSE.apply(a, b, c, False), (x, y))
        torch.testing.assert_close(_LSE.apply(x, y, chunk, False), torch.logsumexp(x @ y.T, -1))
    big = torch.full((2, 3), 100.0)  # exp(30000) overflows the reference's log(exp(.).sum())
    assert torch.isfinite(lse(big, big))


def test_loss_terms_follow_the_literal_formulas():
    r = _random_r(4)
    m = _model(r, seed_num=3, reg_weight=1e-2, ssl_reg=0.7)
    users = torch.tensor([0, 3, 3, 5, 11, 0])  # duplicates: unique for the user-user term only
    pos = torch.tensor([1, 1, 2, 7, 7, 9])
    torch.manual_seed(1)
    final = m.encode(train=True)  # step 0: a redraw step
    loss, parts = m.backbone_loss(final, users, pos, torch.zeros(6, dtype=torch.long))
    torch.manual_seed(1)
    u = torch.rand(len(m.deg))
    scores = torch.log(local_scores(m.ones, m.deg, m.ego())) - torch.log(-torch.log(u))
    f = final.detach().double().numpy()
    fu, fi = f[: r.shape[0]], f[r.shape[0]:]
    ub, ib = users.tolist(), pos.tolist()
    rec = -np.mean([fu[a] @ fi[b] for a, b in zip(ub, ib)])
    reg = 1e-2 * sum(float((p.detach().double() ** 2).sum()) for p in m.parameters())
    cl = 0.7 * (_lse_loop(fu[sorted(set(ub))], fu) + _lse_loop(fi[sorted(set(ib))], fi)) + _lse_loop(fu[ub], fi)
    infomax = -float(scores.detach().mean())
    assert float(parts["rec"]) == pytest.approx(rec, rel=1e-5)
    assert float(parts["reg"]) == pytest.approx(reg, rel=1e-5)
    assert float(parts["cl"]) == pytest.approx(cl, rel=1e-5)
    assert float(parts["infomax"]) == pytest.approx(infomax, rel=1e-5)
    assert float(loss) == pytest.approx(rec + reg + cl + infomax, rel=1e-5)
    # the next step reuses the masks: no infomax term
    loss2, parts2 = m.backbone_loss(m.encode(train=True), users, pos, None)
    assert float(parts2["infomax"]) == 0.0
    assert float(loss2) == pytest.approx(sum(float(parts2[k]) for k in ("rec", "reg", "cl")), rel=1e-6)


def test_masks_are_redrawn_exactly_every_fix_steps_steps():
    m = _model(_random_r(5), seed_num=3, fix_steps=3)
    torch.manual_seed(0)
    seen, redraws, infomax = [], [], []
    for _ in range(10):
        _, parts = m.backbone_loss(m.encode(train=True), torch.tensor([0]), torch.tensor([1]), None)
        graphs = m.graphs()
        redraws.append(not seen or graphs is not seen[-1])
        seen.append(graphs)
        infomax.append(float(parts["infomax"]) != 0)
    assert redraws == [s % 3 == 0 for s in range(10)]
    assert infomax == redraws  # the infomax term comes with every draw, and only then
    assert int(m.step) == 10
    # different draws give different graphs
    assert not (torch.equal(seen[0][1].crow, seen[3][1].crow) and torch.equal(seen[0][1].col, seen[3][1].col))


def test_resumed_model_rebuilds_the_same_masked_graph_without_touching_the_rng():
    r = _random_r(6)
    a = _model(r, seed_num=4, fix_steps=4)
    torch.manual_seed(2)
    for _ in range(6):  # mid-way through the second draw
        a.encode(train=True)
    b = _model(r, seed_num=4, fix_steps=4)
    b.load_state_dict(a.state_dict())
    state = torch.get_rng_state()
    fb = b.encode(train=True)
    assert torch.equal(torch.get_rng_state(), state)  # rebuilt from buffers, no draw
    fa = a.encode(train=True)
    torch.testing.assert_close(fa, fb)
    # loading a state also drops the cache of a model that had one
    a.load_state_dict(b.state_dict())
    assert a._graphs is None


def test_eval_encode_uses_the_full_graph_and_is_deterministic():
    r = _random_r(7)
    m = _model(r, seed_num=3, layers=2)
    torch.manual_seed(0)
    m.encode(train=True)  # a training draw must not leak into evaluation
    state, step = torch.get_rng_state(), int(m.step)
    e1, e2 = m.encode(), m.encode()
    assert torch.equal(e1, e2) and torch.equal(torch.get_rng_state(), state) and int(m.step) == step
    a_hat = bipartite(sp.csr_matrix(r)).toarray()
    e0 = m.ego().detach().double().numpy()
    x1 = a_hat @ e0
    x2 = a_hat @ x1
    rows, cols = (torch.from_numpy(t.astype(np.int64)) for t in np.nonzero(a_hat))
    gt = m.gt[0](torch.from_numpy(x2).float(), Graph.from_edges(rows, cols, len(a_hat))).detach().double().numpy()
    np.testing.assert_allclose(e1.detach().numpy(), e0 + x1 + x2 + gt, rtol=1e-4, atol=1e-5)


def test_config_switches():
    from recpipe.config import ParamError, parse

    n = sum(R.shape)
    m = _model(seed_num=100)  # more seeds than nodes: capped at N
    torch.manual_seed(0)
    m.encode(train=True)
    assert sorted(m.seeds.tolist()) == list(range(n))
    assert m.graphs()[0].a.values().abs().sum() == 0  # every edge masked
    with pytest.raises(ParamError, match="heads"):
        parse(AutoCFConfig, {"embedding_size": 32, "heads": 5}, "graph")
    # gt_layers=0: no decoder, the eval encode is Σ_l Â^l E0
    m0 = _model(gt_layers=0, layers=3)
    a_hat = bipartite(sp.csr_matrix(R)).toarray()
    e0 = m0.ego().detach().double().numpy()
    want = e0 + a_hat @ e0 + a_hat @ a_hat @ e0 + a_hat @ a_hat @ a_hat @ e0
    np.testing.assert_allclose(m0.encode().detach().numpy(), want, rtol=1e-5, atol=1e-6)
    assert not any(n.startswith("gt.") for n, _ in m0.named_parameters())
    # deeper masks remove more edges
    r = _random_r(8)
    removed = []
    for depth in (1, 2):
        md = _model(r, seed_num=2, mask_depth=depth)
        md.seeds.copy_(torch.tensor([0, 40]))
        md.draw_seed.fill_(3)
        removed.append(int((md.graphs()[0].a.values() == 0).sum()))
    assert 0 < removed[0] < removed[1]


def test_con_alignment_ignores_negatives():
    from recpipe.graph.align import AlignConfig, wrap

    r = _random_r(9)
    rng = np.random.default_rng(0)
    m = wrap("con", _model(r, seed_num=3, fix_steps=100), rng.normal(size=(r.shape[0], 5)),
             rng.normal(size=(r.shape[1], 5)), AlignConfig())
    users, pos = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    torch.manual_seed(0)
    m.loss(users, pos, torch.tensor([0, 1, 2]))  # step 0 draws the masks
    a, _ = m.loss(users, pos, torch.tensor([6, 7, 8]))
    b, _ = m.loss(users, pos, torch.tensor([9, 10, 11]))
    assert float(a) == float(b)


def test_masks_are_redrawn_at_every_epoch_start_as_in_the_reference(small_split):
    """The reference redraws at batch i % fix_steps == 0 of each epoch: with 3 batches an
    epoch and fix_steps 10, every epoch's first batch redraws (not only every 10th batch)."""
    from recpipe.eval.protocol import resolve
    from recpipe.graph.run import fit
    from recpipe.train.loop import TrainConfig

    draws = []
    from recpipe.graph import autocf

    orig = autocf.AutoCF.draw

    def counting(self, *a, **k):
        draws.append(int(self.step))
        return orig(self, *a, **k)

    autocf.AutoCF.draw = counting
    try:
        batch = -(-small_split.train.nnz // 3)  # 3 batches an epoch
        fit("autocf", "none", small_split, (None, None), TrainConfig(batch_size=batch, epochs=3, eval_every=5),
            resolve({"preset": "unified"}), 0, overrides={"seed_num": 10}, progress=False)
    finally:
        autocf.AutoCF.draw = orig
    assert draws == [1, 1, 1]  # one draw per epoch, each at the epoch's first step


# Amazon-book in RLMRec's release: 11,000 users + 9,332 items
AMAZON_N = 20_332


def test_float32_edge_decode_reproduces_the_reference_rounding_on_a_literal_edge():
    """Edge (3719, 15279) of an N = 20,332 graph has code 3719·N + 15279 = 75,629,987. The
    reference's `((code - col) / N).long()` runs in float32 and truncates: row 3718."""
    from recpipe.graph.autocf_mask import decode_edges

    code = torch.tensor([75_629_987])
    assert 3719 * AMAZON_N + 15279 == 75_629_987
    assert [int(t) for t in decode_edges(code, AMAZON_N, "exact")] == [3719, 15279]
    assert [int(t) for t in decode_edges(code, AMAZON_N, "float32")] == [3718, 15279]
    col = code % AMAZON_N
    assert int(((code - col) / AMAZON_N).long()) == 3718  # the reference's line, as written
    # the reference's device (CUDA) multiplies by float32(1/N): the same arithmetic in numpy
    x = np.float32(75_629_987 - 15279) * (np.float32(1) / np.float32(AMAZON_N))
    assert x.dtype == np.float32 and int(x) == 3718


def test_float32_edge_decode_moves_a_tenth_of_amazon_sized_edges_one_row_up():
    from recpipe.graph.autocf_mask import decode_edges

    g = torch.Generator().manual_seed(0)
    rows, cols = torch.randint(AMAZON_N, (2, 679_637), generator=g)  # a decoder's worth of pairs
    code = rows * AMAZON_N + cols
    r, c = decode_edges(code, AMAZON_N, "exact")
    assert torch.equal(r, rows) and torch.equal(c, cols)
    r, c = decode_edges(code, AMAZON_N, "float32")
    moved = r != rows
    assert torch.equal(c, cols) and torch.equal(r[moved], rows[moved] - 1)  # only ever one row up
    assert 0.10 < float(moved.float().mean()) < 0.115  # 10.7 %
    # the same in numpy float32 (CUDA's a * (1/b)); a small graph loses nothing
    want = ((code - cols).numpy().astype(np.float32) * (np.float32(1) / np.float32(AMAZON_N))).astype(np.int64)
    assert np.array_equal(r.numpy(), want)
    small = torch.arange(350 * 350)
    assert torch.equal(decode_edges(small, 350, "float32")[0], small // 350)


def test_parity_mode_decodes_in_float32_and_repeated_decoder_edges_count_twice():
    from recpipe.graph.presets import build_configs

    assert build_configs("autocf", "none", "amazon", "parity")[0].edge_decode == "float32"
    assert build_configs("autocf", "con", "amazon", "clean")[0].edge_decode == "exact"
    # an edge listed twice (a moved edge landing on a kept one) gets two shares of attention,
    # as the reference's uncoalesced decoder matrix gives it
    n, d, heads = 4, 8, 2
    torch.manual_seed(0)
    layer = GTLayer(d, heads)
    x = torch.randn(n, d)
    g = Graph.from_edges(torch.tensor([0, 0, 0, 1, 2]), torch.tensor([1, 2, 2, 3, 0]), n)
    assert g.values.tolist() == [1.0, 2.0, 1.0, 1.0]  # (0, 2) twice
    twice, once = (layer(x, g, c).detach() for c in (g.values, None))
    q, k, v = (x @ w for w in (layer.q, layer.k, layer.v))
    s = d // heads
    for hd in range(heads):
        sl = slice(hd * s, (hd + 1) * s)
        e1, e2 = ((q[0, sl] @ k[t, sl]).clamp(-10, 10).exp() for t in (1, 2))
        want = (e1 * v[1, sl] + 2 * e2 * v[2, sl]) / (e1 + 2 * e2)
        torch.testing.assert_close(twice[0, sl], want.detach(), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(twice[0], once[0]) and torch.equal(twice[1:], once[1:])
