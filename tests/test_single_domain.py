"""Single-domain baselines (issue 18, HUM's seesaw comparison): `DataView.domain_view` and
`SingleDomain`, one model per domain routed by the target's domain, through the one evaluator
and the baselines stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import stage
from test_hum import temporal  # noqa: F401  (the three-domain temporal split HUM's tests use)

from recpipe.config import ParamError, parse


def hum_cfg():
    from recpipe.eval.protocol import resolve

    return resolve({"preset": "hum", "average": "samples"})


def test_domain_view_is_the_domains_own_dataset(temporal):
    """Same users, the domain's items re-numbered in domain_items order; every part's matrix
    is that column slice and its rows are the part's rows of those items, re-numbered."""
    _, data = temporal
    assert len(data.domains) == 3
    total = 0
    for d in data.domains:
        items = data.domain_items(d)
        v = data.domain_view(d)
        assert (v.n_users, v.n_items, v.domains) == (data.n_users, len(items), [d])
        for part in ("train", "valid", "test"):
            want = data.part(part)[:, items].toarray()
            assert np.array_equal(v.part(part).toarray(), want), (d, part)
            r, full = v.rows[part], data.rows[part]
            keep = np.isin(full.iid, items)
            assert np.array_equal(items[r.iid], full.iid[keep])  # back to the original iids
            assert np.array_equal(r.uid, full.uid[keep]) and np.array_equal(r.ts, full.ts[keep])
        total += v.train.nnz
        # sequences of the view hold only the domain's items
        seq = v.sequences(("train",))
        assert all(len(seq[u].items) == v.train[u].nnz for u in range(0, data.n_users, 17))
    assert total == data.train.nnz  # the domains partition the interactions


def test_per_domain_pop_ranks_as_pop_within_each_domain(temporal):
    """MostPopular within a domain is MostPopular of that domain alone: routed through
    SingleDomain, every per-sample metric equals the merged model's exactly."""
    from recpipe.baselines.pop import MostPopular
    from recpipe.baselines.single_domain import SingleDomain
    from recpipe.eval.evaluator import evaluate

    _, data = temporal
    cfg = hum_cfg()
    merged = MostPopular().fit(data.train)
    single = SingleDomain(MostPopular).fit(data.train, data.valid, data, cfg)
    assert len(single.models) == 3
    a = evaluate(merged.scorer(), data, cfg, "test")
    b = evaluate(single.scorer(), data, cfg, "test")
    assert a.summary == pytest.approx(b.summary)
    assert a.per_unit.equals(b.per_unit)


def test_each_domain_model_learns_from_its_domain_alone(temporal):
    """BPR-MF per domain: dropping every training interaction of one domain leaves the other
    domains' scores unchanged (bit for bit, same seed) and changes that domain's."""
    from dataclasses import replace

    import scipy.sparse as sp

    from recpipe.baselines.bprmf import BPRMF, BPRMFParams
    from recpipe.baselines.single_domain import SingleDomain

    _, data = temporal
    cfg = hum_cfg()
    p = parse(BPRMFParams, {"dim": 8, "train": {"epochs": 2, "eval_every": 1}}, prefix="bprmf")
    users = np.arange(0, data.n_users, 7)

    def scores(view):
        m = SingleDomain(BPRMF, p, seed=5).fit(view.train, view.valid, view, cfg)
        return m.scorer()(users).numpy()

    full = scores(data)
    books = data.domain_items(data.domains[0])
    keep = np.ones(data.n_items, dtype=np.float32)
    keep[books] = 0
    tr = data.rows["train"]
    k = keep[tr.iid] > 0
    fewer = replace(data, train=(data.train @ sp.diags(keep, format="csr")).tocsr(),
                    rows={**data.rows, "train": tr._replace(uid=tr.uid[k], iid=tr.iid[k], ts=tr.ts[k])})
    fewer.train.eliminate_zeros()
    assert 0 < fewer.train.nnz < data.train.nnz
    less = scores(fewer)
    others = np.flatnonzero(keep)
    assert np.array_equal(full[:, others], less[:, others])
    assert not np.allclose(full[:, books], less[:, books])
    assert np.isfinite(full).all()  # every column is some domain's


def test_unified_protocol_is_refused_naming_the_param(temporal):
    from recpipe.baselines.pop import MostPopular
    from recpipe.baselines.single_domain import SingleDomain
    from recpipe.eval.protocol import resolve

    _, data = temporal
    with pytest.raises(ParamError, match=r"eval\.candidates=target_domain.*preset hum"):
        SingleDomain(MostPopular).fit(data.train, data.valid, data, resolve({"preset": "unified"}))


def test_stage_writes_single_domain_rows_beside_the_merged_ones(temporal, tmp_path, monkeypatch):
    """`baselines.single_domain: [bprmf]` under the hum preset: the stage writes bprmf and
    bprmf-single with per-domain metrics and each domain's selected epoch; the report lists
    both in the per-domain table and tests against the best of them."""
    from recpipe.eval.samples import Samples

    monkeypatch.setenv("TQDM_DISABLE", "1")
    processed, data = temporal
    params = {"seed": 2023, "eval": {"preset": "hum", "average": "samples"},
              "baselines": {"models": ["bprmf"], "single_domain": ["bprmf"], "device": "cpu",
                            "bprmf": {"dim": 8, "train": {"epochs": 2, "eval_every": 1}}}}
    out = stage("baselines").run(params, processed, tmp_path / "metrics", tmp_path / "models" / "baselines")
    assert set(out) == {"bprmf", "bprmf-single"}
    n = Samples.per_interaction(data, "test", by_domain=True).n
    m = json.loads((tmp_path / "models" / "baselines" / "bprmf-single" / "metrics.json").read_text())
    assert m["model"] == "bprmf-single" and m["test/units"] == n
    assert {f"selected_epoch/{d}" for d in data.domains} <= set(m)
    assert {f"test/recall@10/{d}" for d in data.domains} | {"test/recall@10/spread"} <= set(m)
    assert m["test/recall@10"] != out["bprmf"]["test/recall@10"]  # another model
    assert (tmp_path / "metrics" / "bprmf-single.json").is_file()

    rep = stage("report")
    (tmp_path / "params.yaml").write_text("report: {}\n")
    assert rep.main(["--root", str(tmp_path), "--out", str(tmp_path / "reports"),
                     "--params", str(tmp_path / "params.yaml")]) == 0
    board = (tmp_path / "reports" / "leaderboard.md").read_text()
    assert "| bprmf-single | 1 |" in board and "| bprmf | 1 |" in board
    assert "Books" in board  # the per-domain table


def test_an_unknown_single_domain_model_names_the_choices():
    from recpipe.baselines import BaselinesParams

    with pytest.raises(ParamError, match=r"baselines\.single_domain.*bprmf"):
        parse(BaselinesParams, {"single_domain": ["hum"]}, prefix="baselines")
    with pytest.raises(ParamError, match=r"baselines\.sasrec\.seeds: set baselines\.seeds"):
        parse(BaselinesParams, {"sasrec": {"seeds": [1, 2]}}, prefix="baselines")


def tiny_sasrec(data, seed=0):
    from recpipe.seq.params import SASRecParams
    from recpipe.seq.run import build

    p = parse(SASRecParams, {"model": {"dim": 8, "maxlen": 6}}, prefix="sasrec")
    return build(data, p, seed)[0]


def test_sasrec_scores_each_sample_after_its_own_history(temporal):
    """Sample-level units (HUM's protocol): SASRec reads the items of the user's whole
    sequence before the sample's target, so two test samples of one user get different inputs;
    user-level units keep the part's history."""
    import torch

    from recpipe.data.schema import SPLIT_NAMES
    from recpipe.eval.samples import Samples
    from recpipe.seq.batches import shift
    from recpipe.seq.run import SeqScorer

    _, data = temporal
    model = tiny_sasrec(data).eval()
    s = SeqScorer(model, data, "test", "cpu")
    samples = Samples.per_interaction(data, "test", by_domain=True)
    seqs = data.sequences(SPLIT_NAMES)
    twice = np.flatnonzero(np.bincount(samples.uid) >= 2)
    rows = np.flatnonzero(samples.uid == twice[0])[:2]
    got = s.sample_scores(rows, samples).numpy()
    for k, r in enumerate(rows):
        u, pos = samples.uid[r], samples.pos[r]
        hist = seqs.items[seqs.indptr[u]:pos][-6:]  # the last maxlen items before the target
        assert samples.targets[r].indices[0] == seqs.items[pos] and len(hist)
        w = np.full(6, data.n_items)
        w[6 - len(hist):] = hist
        want = model.scores(torch.from_numpy(shift(w[None], data.n_items))).detach().numpy()[0]
        assert np.allclose(got[k], want, atol=1e-6)
    assert not np.allclose(got[0], got[1])  # the second sample's history holds the first target
    user = s(samples.uid[rows]).numpy()  # user level: train + valid, the same for both
    assert np.allclose(user[0], user[1])


def test_single_domain_sasrec_reads_the_samples_history_within_its_domain(temporal):
    """Routed sample scores ask domain d's SASRec after the sample's history in d: its view's
    sequence up to `end` is exactly the merged history before the target, cut to d's items."""
    from recpipe.baselines.single_domain import RoutedSamples
    from recpipe.data.schema import SPLIT_NAMES
    from recpipe.eval.samples import Samples

    _, data = temporal
    samples = Samples.per_interaction(data, "test", by_domain=True)
    seqs = data.sequences(SPLIT_NAMES)
    asked = {}

    class Recorder:  # a domain scorer with scores_before, recording what it is asked
        def __init__(self, k, n):
            self.k, self.n = k, n

        def scores_before(self, users, ends):
            import torch

            asked[self.k] = (users.copy(), ends.copy())
            return torch.zeros(len(users), self.n)

    items = [data.domain_items(d) for d in data.domains]
    routed = RoutedSamples([Recorder(k, len(i)) for k, i in enumerate(items)], items,
                           data.n_items, data)
    rows = np.arange(0, samples.n, 3)
    out = routed.sample_scores(rows, samples)
    assert out.shape == (len(rows), data.n_items) and np.isfinite(out.numpy()).all()
    checked = 0
    for k, d in enumerate(data.domains):
        view_seqs = data.domain_view(d).sequences(SPLIT_NAMES)
        new_id = {int(i): j for j, i in enumerate(items[k])}
        users, ends = asked[k]
        for r, u, e in zip(rows, users, ends):
            merged = seqs.items[seqs.indptr[u]:samples.pos[r]]
            want = [new_id[int(i)] for i in merged if int(i) in new_id]
            assert view_seqs[u].items[:e].tolist() == want
            checked += len(want) > 0
    assert checked > len(rows)  # most samples have history in several domains


@pytest.mark.parametrize("name", ["sasrec", "lightgcn"])
def test_stage_fits_sequential_and_graph_models_per_domain(name, temporal, tmp_path, monkeypatch):
    """`baselines.single_domain: [sasrec, lightgcn]`: one SASRec / LightGCN per domain, each
    trained and selected on its domain's view, with a curve per domain and per-domain rows."""
    monkeypatch.setenv("TQDM_DISABLE", "1")
    processed, data = temporal
    small = {"sasrec": {"model": {"dim": 8, "maxlen": 6}, "train": {"epochs": 2, "eval_every": 1}},
             "lightgcn": {"model": {"embedding_size": 8}, "train": {"epochs": 2, "eval_every": 1}}}
    params = {"seed": 2023, "eval": {"preset": "hum", "average": "samples"},
              "baselines": {"models": [], "single_domain": [name], "device": "cpu", **small}}
    models = tmp_path / "models" / "baselines"
    out = stage("baselines").run(params, processed, tmp_path / "metrics", models)
    m = out[f"{name}-single"]
    assert m["model"] == f"{name}-single"
    assert {f"selected_epoch/{d}" for d in data.domains} <= set(m)
    assert {f"test/recall@10/{d}" for d in data.domains} <= set(m)
    assert 0 <= m["test/recall@10"] <= 1
    for d in data.domains:  # each domain's own training curve
        assert (models / f"{name}-single" / "curves" / d / "metrics.json").is_file()
    h = json.loads((models / f"{name}-single" / "hparams.json").read_text())
    assert h["params"]["train"]["epochs"] == 2

    with pytest.raises(ParamError, match=r"baselines\.lightgcn\.model.*unknown key"):
        bad = {**params, "baselines": {**params["baselines"], "single_domain": ["lightgcn"],
                                       "lightgcn": {"model": {"depth": 2}}}}
        stage("baselines").run(bad, processed, tmp_path / "m2", tmp_path / "b2")
