"""HUM's Long-tail and Hetero blocks (hum.md section 7), with the project's own definitions.

The paper reports every metric three times: Overall, on long-tail targets and on
heterogeneous users. Its filters are not released, so these are ours, stated as parameters:

- **longtail**: the sample's target is among the least popular `longtail_share` (0.8) of its
  domain's items, ranked by training interactions (ties by item id). The top 20 % are the head.
- **hetero**: the sample's history, every interaction of the user before the target, spans at
  least two domains.

`summaries(per_unit, samples, data, cfg)` adds `<subset>/<metric>` (the mean over the
subset's samples), `<subset>/units` and, under eval.candidates=target_domain,
`<subset>/<metric>/<domain>` to a sample-level summary.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recpipe.data.schema import SPLIT_NAMES


def longtail_items(data, share: float) -> np.ndarray:
    """(n_items,) bool: the least popular `share` of each domain's items by training count."""
    counts = np.asarray(data.train.sum(axis=0)).ravel()
    tail = np.zeros(data.n_items, dtype=bool)
    for d in range(len(data.domains)):
        items = data.domain_items(d)
        order = items[np.lexsort((items, -counts[items]))]  # most popular first, ties by id
        head = int(np.ceil((1.0 - share) * len(items)))
        tail[order[head:]] = True
    return tail


def masks(samples, data, share: float) -> dict[str, np.ndarray]:
    """{"longtail", "hetero"}: (n,) bool over the samples (they need `pos`, the target's row
    in data.sequences(SPLIT_NAMES))."""
    if samples.pos is None:
        raise ValueError("the Long-tail and Hetero subsets need per-interaction samples "
                         "(Samples.per_interaction: eval.average=samples)")
    target = samples.targets.indices[samples.targets.indptr[:-1]]  # one target per sample
    seqs = data.sequences(SPLIT_NAMES)
    start = seqs.indptr[samples.uid]
    hetero = np.array([len(np.unique(seqs.domain[a:b])) >= 2 for a, b in zip(start, samples.pos)],
                      dtype=bool)
    return {"longtail": longtail_items(data, share)[target], "hetero": hetero}


def summaries(per_unit: pl.DataFrame, metrics: list[str], samples, data, cfg) -> dict:
    out = {}
    by_domain = cfg.candidates == "target_domain"
    for name, keep in masks(samples, data, cfg.longtail_share).items():
        sub = per_unit.filter(pl.Series(keep))
        out[f"{name}/units"] = sub.height
        if not sub.height:
            continue
        out.update({f"{name}/{m}": float(sub[m].mean()) for m in metrics})
        if by_domain:
            for (dom,), g in sub.group_by("domain", maintain_order=True):
                out.update({f"{name}/{m}/{dom}": float(g[m].mean()) for m in metrics})
    return out
