"""HUM's Long-tail and Hetero blocks (recpipe/eval/subsets.py) on the three-domain temporal
split: the subsets by their definitions, and the summary keys as means over them."""

from __future__ import annotations

import numpy as np
import pytest
from test_hum import temporal  # noqa: F401  (the three-domain temporal split HUM's tests use)


def test_longtail_is_the_least_popular_share_of_each_domain(temporal):
    from recpipe.eval.subsets import longtail_items

    _, data = temporal
    counts = np.asarray(data.train.sum(axis=0)).ravel()
    tail = longtail_items(data, 0.8)
    for d in range(len(data.domains)):
        items = data.domain_items(d)
        t, h = items[tail[items]], items[~tail[items]]
        assert len(h) == int(np.ceil(0.2 * len(items))) and len(t) + len(h) == len(items)
        assert counts[t].max() <= counts[h].min()  # nothing in the tail beats the head
    assert longtail_items(data, 1.0).all()


def test_subset_summaries_are_means_over_the_subsets_samples(temporal):
    from recpipe.baselines.pop import MostPopular
    from recpipe.data.schema import SPLIT_NAMES
    from recpipe.eval.evaluator import evaluate
    from recpipe.eval.protocol import resolve
    from recpipe.eval.samples import Samples
    from recpipe.eval.subsets import longtail_items

    _, data = temporal
    cfg = resolve({"preset": "hum", "average": "samples"})
    assert cfg.subsets and cfg.longtail_share == 0.8
    res = evaluate(MostPopular().fit(data.train).scorer(), data, cfg, "test")
    s, df = res.summary, res.per_unit
    samples = Samples.per_interaction(data, "test", by_domain=True)
    seqs = data.sequences(SPLIT_NAMES)
    target = samples.targets.indices  # one per sample, in sample order
    hetero = np.array([len(set(seqs.domain[seqs.indptr[u]:p])) > 1
                       for u, p in zip(samples.uid, samples.pos)])
    tail = longtail_items(data, 0.8)[target]
    assert 0 < hetero.sum() < samples.n and 0 < tail.sum() < samples.n
    assert s["hetero/units"] == hetero.sum() and s["longtail/units"] == tail.sum()
    for name, keep in (("hetero", hetero), ("longtail", tail)):
        want = df["recall@10"].to_numpy()[keep].mean()
        assert s[f"{name}/recall@10"] == pytest.approx(want)
        books = keep & (df["domain"].to_numpy() == data.domains[0])
        assert s[f"{name}/recall@10/{data.domains[0]}"] == pytest.approx(
            df["recall@10"].to_numpy()[books].mean())
    # popularity ranks the head first: its long-tail recall is far below its overall recall
    assert s["longtail/recall@10"] < s["recall@10"]
    off = evaluate(MostPopular().fit(data.train).scorer(), data,
                   resolve({"preset": "hum", "average": "samples", "subsets": False}), "test")
    assert not any(k.startswith(("longtail/", "hetero/")) for k in off.summary)
