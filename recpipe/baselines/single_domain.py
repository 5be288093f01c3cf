"""Single-domain baselines: one model per domain, each trained on its domain alone.

The comparison behind HUM's "domain seesaw" (Bao et al., RecSys 2025, section 5; hum.md 7):
a model trained on the merged domains against the same model trained per domain. Here
`baselines.single_domain: [bprmf]` adds the row `bprmf-single`: for every domain d, a fresh
BPR-MF is fit on `data.domain_view(d)` (the same users, d's items only, so negatives and
validation stay inside d), and each test unit is ranked by the model of its target's domain.

That routing is only a ranking when every unit's candidates lie in one domain, so it needs
`eval.candidates=target_domain` (the `hum` preset); under the unified protocol, which ranks
every item at once, the scores of separately trained models are not comparable and the stage
stops with a ParamError saying so. MostPopular per domain ranks exactly like MostPopular
within a domain, so `pop` is allowed but adds nothing.

    model = SingleDomain(BPRMF, params, seed=..., device=..., log_dir=...)
    model.fit(train, valid, data, cfg)   # D fits, one per domain
    model.scorer(part)                   # (B, I) scores: domain d's columns from model d
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recpipe.config import ParamError

SUFFIX = "-single"  # the row name: bprmf -> bprmf-single


class SingleDomain:
    def __init__(self, base: type, params=None, *, seed: int = 0, device: str = "cpu",
                 log_dir: str | Path | None = None):
        self.base, self.params, self.seed, self.device = base, params, seed, device
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.models: list = []  # one fitted base model per domain, in data.domains order
        self.items: list[np.ndarray] = []  # (I_d,) iids of each model's columns
        self.n_items = 0
        self.data = None  # the merged view (sample-level units are routed through it)
        self.selected_epoch = None  # one per domain, in `extras`
        self.extras: dict[str, int | None] = {}  # selected_epoch/<domain> for metrics.json
        self.curve: list[dict] = []  # the models' validation rows, each with its domain

    def fit(self, train, valid=None, data=None, cfg=None) -> SingleDomain:
        if data is None or cfg is None:
            raise ValueError("a single-domain model needs the data view and the eval config")
        if cfg.candidates != "target_domain":
            raise ParamError(
                f"baselines.single_domain: each domain's model ranks only its own items, so the "
                f"protocol must rank each unit within its target's domain "
                f"(eval.candidates=target_domain, as the `hum` preset sets); got "
                f"eval.candidates={cfg.candidates}. Use $(recpipe preset hum) or set "
                f"baselines.single_domain=[]")
        self.n_items, self.data = data.n_items, data
        for d in data.domains:
            view = data.domain_view(d)
            log = None if self.log_dir is None else self.log_dir / d
            m = self.base(self.params, seed=self.seed, device=self.device, log_dir=log)
            m.fit(view.train, view.valid, view, cfg)
            self.models.append(m)
            self.items.append(data.domain_items(d))
            self.extras[f"selected_epoch/{d}"] = m.selected_epoch
            self.curve += [{"domain": d, **row} for row in m.curve]
        return self

    def scorer(self, part: str = "test"):
        if not self.models:
            raise RuntimeError("SingleDomain.scorer() called before fit()")
        scorers = [m.scorer(part) for m in self.models]
        # only a history-reading model changes sample-level scores; the others are asked per user
        cls = RoutedSamples if any(hasattr(s, "scores_before") for s in scorers) else Routed
        return cls(scorers, self.items, self.n_items, self.data)


class Routed:
    """(B, I) scores whose column i comes from the scorer of i's domain."""

    def __init__(self, scorers: list, items: list[np.ndarray], n_items: int, data):
        self.scorers, self.items, self.n_items, self.data = scorers, items, n_items, data

    def _route(self, n: int, score) -> object:
        import torch

        out = torch.full((n, self.n_items), float("-inf"))
        for k, items in enumerate(self.items):
            out[:, torch.from_numpy(items.astype(np.int64))] = score(k).float().cpu()
        return out

    def __call__(self, users: np.ndarray):
        users = np.asarray(users, dtype=np.int64)
        return self._route(len(users), lambda k: self.scorers[k](users))


class RoutedSamples(Routed):
    """`Routed`, plus sample-level units: a domain scorer with `scores_before(users, ends)`
    (SASRec) is asked after the sample's history within its domain, the items of that domain
    before the target."""

    def sample_scores(self, rows: np.ndarray, samples):
        from recpipe.data.schema import SPLIT_NAMES

        seqs = self.data.sequences(SPLIT_NAMES)  # the merged sequences samples.pos points into
        uid, pos = samples.uid[rows], samples.pos[rows]
        start = seqs.indptr[uid]

        def score(k):
            s = self.scorers[k]
            if not hasattr(s, "scores_before"):
                return s(uid)
            # items of domain k before each target = the end of its history in domain k's view,
            # whose sequences are the merged ones filtered to k in the same order
            before = np.concatenate([[0], np.cumsum(seqs.domain == k)])  # (n + 1,)
            return s.scores_before(uid, before[pos] - before[start])

        return self._route(len(rows), score)
