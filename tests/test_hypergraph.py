"""MMHCL (recpipe.hypergraph): hypergraphs against dense numpy, the chunked InfoNCE against the
direct formula, the model against a dense forward, training through the shared loop, and
UserBatches (recpipe.train.sampler)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recpipe.config import ParamError, parse
from recpipe.graph.adjacency import bipartite
from recpipe.hypergraph import build
from recpipe.graph.losses import row_logsumexp
from recpipe.hypergraph.infonce import info_nce, info_nce_batch
from recpipe.hypergraph.mmhcl import MMHCL, PRESETS, MMHCLConfig, lr_lambda
from recpipe.train.loop import TrainConfig, fit
from recpipe.train.sampler import UserBatches

# torch's notice on CSR tensors (recpipe.graph.adjacency silences it; pytest resets filters)
pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support")


def toy_train(n_users=7, n_items=9, density=0.35, seed=0) -> sp.csr_matrix:
    rs = np.random.default_rng(seed)
    r = (rs.random((n_users, n_items)) < density).astype(np.float32)
    r[0] = 0  # a user without training items
    r[1, :2] = 1  # at least a few co-interactions
    r[2, :2] = 1
    return sp.csr_matrix(r)


def toy_modalities(n_items=9, seed=1):
    rs = np.random.default_rng(seed)
    return [rs.standard_normal((n_items, 5)), rs.standard_normal((n_items, 4))]


# ---------------------------------------------------------------- dense references


def dense_u2u(r: np.ndarray) -> np.ndarray:
    a = (r > 0).astype(np.float64)
    a = a @ a.T
    np.fill_diagonal(a, 0)
    deg = a.sum(1, keepdims=True)
    return np.divide(a, deg, out=np.zeros_like(a), where=deg > 0)


def dense_knn(f: np.ndarray, k: int, mode: str = "clean") -> np.ndarray:
    x = f / np.linalg.norm(f, axis=1, keepdims=True)
    s = x @ x.T
    keep = np.argsort(-s, axis=1)[:, :k]
    out = np.zeros_like(s)
    np.put_along_axis(out, keep, np.take_along_axis(s, keep, 1), axis=1)
    if mode == "clean":
        np.put_along_axis(out, keep, 1.0, axis=1)
    else:  # the reference: scatter the kept values, then set the positive ones to 1
        out[out > 0] = 1.0
    return out


def dense_i2i(mods, k, mode="clean") -> np.ndarray:
    h = np.hstack([dense_knn(f, k, mode) for f in mods])
    a = h @ h.T
    d = a.sum(1)
    inv = d ** -0.5  # every item is its own neighbour: d > 0
    return inv[:, None] * a * inv[None, :]


# ---------------------------------------------------------------- hypergraphs


@pytest.mark.parametrize("chunk_rows", [2, 4096])
def test_u2u_matches_dense(chunk_rows):
    r = toy_train()
    a = build.u2u(r, chunk_rows=chunk_rows)
    assert a.dtype == np.float32 and a.shape == (7, 7)
    want = dense_u2u(r.toarray())
    np.testing.assert_allclose(a.toarray(), want, rtol=1e-6, atol=1e-7)
    assert np.all(a.diagonal() == 0)
    sums = np.asarray(a.sum(1)).ravel()
    np.testing.assert_allclose(sums[sums > 0], 1.0, rtol=1e-6)
    assert sums[0] == 0  # the user without items: an empty row


def test_i2i_matches_dense():
    mods = toy_modalities()
    a = build.i2i(mods, 3, 9)
    assert a.dtype == np.float32 and a.shape == (9, 9)
    np.testing.assert_allclose(a.toarray(), dense_i2i(mods, 3), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.toarray(), a.toarray().T, atol=1e-7)  # symmetric
    for m in mods:  # every item is among its own neighbours (self included)
        assert np.all(build.knn(m, 3).diagonal() == 1)


def test_knn_reference_binarisation_keeps_non_positive_values():
    rs = np.random.default_rng(3)
    f = rs.standard_normal((12, 2))  # 2-d: top-6 of 12 includes negative cosines
    k_ref = build.knn(f, 6, binarize="reference").toarray()
    np.testing.assert_allclose(k_ref, dense_knn(f, 6, "reference"), rtol=1e-5, atol=1e-6)
    assert (k_ref < 0).any() and set(np.unique(k_ref[k_ref > 0])) == {1.0}
    k_clean = build.knn(f, 6).toarray()
    assert set(np.unique(k_clean)) == {0.0, 1.0} and (k_clean.sum(1) == 6).all()


def test_faiss_and_torch_backends_agree():
    pytest.importorskip("faiss")
    f = np.random.default_rng(4).standard_normal((1500, 16)).astype(np.float32)
    a = build.knn(f, 7, backend="faiss")
    b = build.knn(f, 7, backend="torch")
    assert (a != b).nnz == 0 and a.nnz == 1500 * 7


def test_i2i_stays_sparse_for_many_items(monkeypatch):
    """60k items: a dense (n, n) float32 would be 14 GB. The exact kNN search costs ~15 s a
    modality on 2 cores, so it is replaced by a banded stub; everything after it is real."""
    n, k = 60_000, 5

    def banded(x, k):
        idx = (np.arange(len(x))[:, None] + np.arange(k)[None, :] * 7 * x.shape[1]) % len(x)
        return np.ones((len(x), k), dtype=np.float32), idx

    monkeypatch.setattr(build, "_topk_faiss", banded)
    mods = [np.ones((n, 3), dtype=np.float32), np.ones((n, 2), dtype=np.float32)]
    tracemalloc.start()
    a = build.i2i(mods, k, n, backend="faiss")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert a.shape == (n, n) and a.nnz <= n * (2 * k - 1) ** 2
    assert peak < 400e6, f"peak {peak / 1e6:.0f} MB"
    np.testing.assert_allclose(a[:5].toarray(), a[:, :5].toarray().T, atol=1e-7)


def test_bad_inputs_name_the_param():
    mods = toy_modalities()
    with pytest.raises(ParamError, match=r"mmhcl\.modalities"):
        build.i2i([], 3, 9)
    with pytest.raises(ParamError, match=r"mmhcl\.modalities\[1\] \(text\).*8.*n_items = 9"):
        build.i2i([mods[0], mods[1][:8]], 3, 9, names=["image", "text"])
    with pytest.raises(ParamError, match=r"mmhcl\.model\.topk.*n_items = 9"):
        build.i2i(mods, 10, 9)
    with pytest.raises(ParamError, match=r"mmhcl\.model\.topk"):
        build.i2i(mods, 0, 9)
    with pytest.raises(ParamError, match=r"mmhcl\.model\.binarize"):
        build.knn(mods[0], 3, binarize="soft")


# ---------------------------------------------------------------- InfoNCE


def direct_info_nce(z1, z2, tau):
    """The spec formula as written (hellm.md 3.3), dense."""
    a, b = torch.nn.functional.normalize(z1), torch.nn.functional.normalize(z2)
    refl, between = torch.exp(a @ a.T / tau), torch.exp(a @ b.T / tau)
    return -torch.log(between.diag() / (refl.sum(1) - refl.diag() + between.sum(1))).mean()


@pytest.mark.parametrize("chunk", [3, 10, 25])
def test_chunked_info_nce_matches_direct(chunk):
    rs = torch.Generator().manual_seed(0)
    z1 = torch.randn(10, 4, generator=rs, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(10, 4, generator=rs, dtype=torch.float64, requires_grad=True)
    got = info_nce(z1, z2, 0.3, chunk=chunk)
    want = direct_info_nce(z1, z2, 0.3)
    torch.testing.assert_close(got, want)
    g_got = torch.autograd.grad(got, (z1, z2))
    g_want = torch.autograd.grad(want, (z1, z2))
    for x, y in zip(g_got, g_want):
        torch.testing.assert_close(x, y)
    assert torch.autograd.gradcheck(lambda x, y: info_nce(x, y, 0.3, chunk=chunk), (z1, z2))
    # the masked log-sum-exp alone (normalisation hides errors along the self direction)
    q, k = z1.detach().clone().requires_grad_(), torch.cat([z1, z2]).detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: row_logsumexp(x, y, chunk, skip_self=True), (q, k))
    lse = row_logsumexp(q, k, chunk, skip_self=True)
    full = q @ k.T
    full[torch.arange(10), torch.arange(10)] = float("-inf")
    torch.testing.assert_close(lse, torch.logsumexp(full, 1))


def test_info_nce_stable_at_small_tau_and_batch_variant():
    z1, z2 = torch.randn(50, 8), torch.randn(50, 8)
    assert torch.isfinite(info_nce(z1, z2, 0.01, chunk=7))  # e^{1/τ} = e^100 overflows float32
    idx = torch.tensor([4, 9, 9, 17, 30])  # a repeat counts once
    want = direct_info_nce(z1[[4, 9, 17, 30]], z2[[4, 9, 17, 30]], 0.5)
    torch.testing.assert_close(info_nce_batch(z1, z2, 0.5, idx), want)


# ---------------------------------------------------------------- model


def toy_model(**over):
    r = toy_train()
    cfg = parse(MMHCLConfig, {"dim": 4, "ui_layers": 2, "u_layers": 2, "i_layers": 1,
                              "topk": 3, "lambda_u": 0.5, "lambda_i": 0.2, **over})
    ig, ug = build.i2i(toy_modalities(), cfg.topk, 9), build.u2u(r)
    return MMHCL(7, 9, r, ig, ug, cfg, seed=1), r, ig, ug


def test_forward_matches_dense():
    m, r, ig, ug = toy_model()
    adj = bipartite(r).toarray().astype(np.float64)
    ego = torch.cat([m.user_ui, m.item_ui]).detach().double().numpy()
    ui = (ego + adj @ ego + adj @ adj @ ego) / 3
    uu = np.linalg.matrix_power(ug.toarray().astype(np.float64), 2) @ m.uu.detach().double().numpy()
    ii = ig.toarray().astype(np.float64) @ m.ii.detach().double().numpy()

    def l2(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)

    u, i = m.forward()
    np.testing.assert_allclose(u.detach().numpy(), ui[:7] + l2(uu), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(i.detach().numpy(), ui[7:] + l2(ii), rtol=1e-5, atol=1e-6)
    out = m.export()
    assert out["user"].dtype == np.float32 and out["item"].shape == (9, 4)
    np.testing.assert_allclose(out["item"], i.detach().numpy())


def test_loss_parts_follow_the_formula():
    m, *_ = toy_model(regs=0.01)
    users, pos, neg = torch.tensor([1, 2, 3]), torch.tensor([0, 1, 2]), torch.tensor([5, 6, 7])
    loss, parts = m.loss(users, pos, neg)
    u, i, uu, ii = m.encode()
    ub, pb, nb = u[users], i[pos], i[neg]
    bpr = -torch.nn.functional.logsigmoid((ub * pb).sum(1) - (ub * nb).sum(1)).mean()
    reg = 0.01 * 0.5 * (ub.square().sum() + pb.square().sum() + nb.square().sum()) / 3
    want = bpr + reg + 0.2 * direct_info_nce(i, ii, 0.6) + 0.5 * direct_info_nce(u, uu, 0.6)
    torch.testing.assert_close(loss, want)
    assert set(parts) == {"bpr", "reg", "cl_item", "cl_user"}
    assert all(isinstance(v, float) for v in parts.values())
    assert parts["reg"] == pytest.approx(float(reg.detach()))


@pytest.mark.parametrize("which", ["u", "i"])
def test_zero_lambda_skips_its_branch(which):
    m, r, *_ = toy_model(**{f"lambda_{which}": 0.0})
    loss, parts = m.loss(torch.tensor([1, 2]), torch.tensor([0, 1]), torch.tensor([5, 6]))
    loss.backward()
    skipped, kept = (m.uu, m.ii) if which == "u" else (m.ii, m.uu)
    assert skipped.grad is None and kept.grad is not None
    assert parts["cl_user" if which == "u" else "cl_item"] == 0.0
    adj = torch.from_numpy(bipartite(r).toarray())
    ego = torch.cat([m.user_ui, m.item_ui]).detach()
    ui = (ego + adj @ ego + adj @ adj @ ego) / 3
    u, i = m.forward()
    plain = u if which == "u" else i
    torch.testing.assert_close(plain.detach(), ui[:7] if which == "u" else ui[7:])


def test_loss_decreases_with_adam():
    m, *_ = toy_model()
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    batch = torch.tensor([1, 2, 3, 4]), torch.tensor([0, 1, 2, 3]), torch.tensor([8, 7, 6, 5])
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss, _ = m.loss(*batch)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]


def test_fit_two_epochs_with_user_batches():
    m, r, *_ = toy_model(infonce_chunk=4)
    data = UserBatches(r, batch_size=4, seed=0)

    def validate(model):
        u, i = model.embeddings()
        top = torch.topk(u @ i.T, 3).indices.numpy()
        hit = np.take_along_axis(r.toarray(), top, 1).sum(1) / np.maximum(r.toarray().sum(1), 1)
        return {"recall@20": float(hit.mean())}

    cfg = TrainConfig(epochs=2, eval_every=1, lr=1e-2, batch_size=4, patience=0)
    res = fit(m, data, cfg, validate=validate, progress=False, lr_lambda=lr_lambda)
    assert res.epochs == 2 and res.steps == 2 * len(data)
    assert all("valid/recall@20" in row for row in res.history)


def test_presets_parse_and_lr_schedule():
    for over in PRESETS.values():
        cfg = parse(MMHCLConfig, over, prefix="mmhcl")
        assert cfg.dim == 64 and cfg.ui_layers == 2
    assert PRESETS["beauty"]["lambda_u"] == 0.9 and PRESETS["toys"]["tau"] == 0.3
    assert lr_lambda(0) == 1.0 and lr_lambda(0.99) == 1.0
    assert lr_lambda(50.5) == pytest.approx(0.96)
    with pytest.raises(ParamError, match="mmhcl.infonce"):
        parse(MMHCLConfig, {"infonce": "some"}, prefix="mmhcl")


# ---------------------------------------------------------------- UserBatches


def test_user_batches():
    r = toy_train(40, 25, density=0.15, seed=5)
    dense = r.toarray() > 0
    data = UserBatches(r, batch_size=16, seed=3)
    assert len(data) == r.nnz // 16 + 1
    for users, pos, neg in data.epoch():
        assert users.dtype == pos.dtype == neg.dtype == np.int64
        assert len(np.unique(users)) == 16 and dense[users].any(1).all()
        assert dense[users, pos].all() and not dense[users, neg].any()
    # positives are uniform over each user's items: in 300 draws every training pair shows up
    seen = np.zeros_like(dense)
    for users, pos, _ in UserBatches(r, 16, seed=2, steps=300).epoch():
        seen[users, pos] = True
    assert np.array_equal(seen, dense)
    a = list(UserBatches(r, 16, seed=9, steps=3).epoch())
    b = list(UserBatches(r, 16, seed=9, steps=3).epoch())
    assert all(np.array_equal(x, y) for p, q in zip(a, b) for x, y in zip(p, q))
    # resuming from a saved state continues the same stream
    src = UserBatches(r, 16, seed=9, steps=2)
    list(src.epoch())
    st = src.state()
    nxt = list(src.epoch())
    other = UserBatches(r, 16, seed=123, steps=2)
    other.load_state(st)
    assert all(np.array_equal(x, y) for p, q in zip(nxt, list(other.epoch())) for x, y in zip(p, q))
