"""BPR-MF: matrix factorisation trained with Bayesian Personalized Ranking.

Paper: S. Rendle, C. Freudenthaler, Z. Gantner, L. Schmidt-Thieme, "BPR: Bayesian Personalized
Ranking from Implicit Feedback", UAI 2009. Reference code: RecBole
`recbole/model/general_recommender/bpr.py` (https://github.com/RUCAIBox/RecBole).

    score(u, i) = e_u . e_i                     e_u, e_i in R^dim
    loss = -mean log sigmoid(score(u, i) - score(u, j)) + reg/2 * mean(|e_u|^2 + |e_i|^2 + |e_j|^2)

over triples (u, i, j): every training pair (u, i) once per epoch, j drawn uniformly from the
items u did not interact with (recpipe.train.sampler.BPRBatches). Adam.

Training and selection are the shared loop's (recpipe.train.loop.fit, `baselines.bprmf.train`):
validation after 0-based epochs 0, 3, 6, ..., the best state by validation Recall@20 kept,
stop after 5 validations without improvement. Test is never looked at here: the caller
evaluates it once, on the kept state. The curve goes to dvclive (when `log_dir` is given) and
to `self.curve`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recpipe.baselines.curves import close_live, curve_rows, open_live
from recpipe.config import rng

# BPR-MF's training defaults (params.yaml `baselines.bprmf.train` keys replace them)
TRAIN_DEFAULTS = {"lr": 0.01, "batch_size": 4096, "epochs": 200, "eval_every": 3, "patience": 5,
                  "select_metric": "recall@20"}


@dataclass
class BPRMFParams:
    # embedding width of users and items
    dim: int = field(default=64, metadata=rng(1))
    # L2 weight: reg/2 x the batch mean of |e_u|^2 + |e_i|^2 + |e_j|^2
    reg: float = field(default=0.05, metadata=rng(0.0))
    # std of the normal initialisation (Rendle et al.: 0.1)
    init_std: float = field(default=0.1, metadata=rng(0.0, lo_open=True))
    # CPU threads for the training steps; 0 = torch's default. The steps are small
    # (batch x dim), so 1 thread is as fast on an idle machine and ~10x faster on a busy one
    threads: int = field(default=1, metadata=rng(0))
    # the training loop's keys (recpipe.train.loop.TrainConfig) over TRAIN_DEFAULTS
    train: dict = field(default_factory=dict)

    def validate(self) -> None:
        # a bad key or value stops the stage at parse time; the resolved keys (defaults filled
        # in) are what hparams.json records
        self.train = asdict(self.train_config())

    def train_config(self):
        from recpipe.train.loop import train_config

        return train_config(self.train, TRAIN_DEFAULTS, "baselines.bprmf.train")


def _module(n_users: int, n_items: int, p: BPRMFParams, seed: int):
    """The two embedding tables as an nn.Module with the loop's `loss(users, pos, neg)`."""
    import torch
    import torch.nn.functional as F

    class MF(torch.nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(seed)
            self.user = torch.nn.Parameter(torch.randn(n_users, p.dim, generator=g) * p.init_std)
            self.item = torch.nn.Parameter(torch.randn(n_items, p.dim, generator=g) * p.init_std)

        def loss(self, u, i, j):
            eu, ei, ej = self.user[u], self.item[i], self.item[j]  # (B, dim) each
            x = (eu * (ei - ej)).sum(dim=1)  # (B,) score(u, i) - score(u, j)
            l2 = (eu.pow(2).sum() + ei.pow(2).sum() + ej.pow(2).sum()) / (2 * len(u))
            return -F.logsigmoid(x).mean() + p.reg * l2

    return MF()


class BPRMF:
    Params = BPRMFParams

    def __init__(self, params: BPRMFParams | None = None, *, seed: int = 0, device: str = "cpu",
                 log_dir: str | Path | None = None):
        self.params = params or BPRMFParams()
        self.seed = seed
        self.device = device
        self.log_dir = log_dir
        self.user_emb: np.ndarray | None = None  # (n_users, dim) at the selected state
        self.item_emb: np.ndarray | None = None  # (n_items, dim)
        self.selected_epoch: int | None = None
        self.curve: list[dict] = []  # one dict per validation check

    def fit(self, train: sp.csr_matrix, valid: sp.csr_matrix | None = None, data=None,
            cfg=None) -> BPRMF:
        """Train on `train`; select on `data`'s validation part under eval config `cfg`."""
        from recpipe.eval.evaluator import evaluate
        from recpipe.train.loop import fit
        from recpipe.train.sampler import BPRBatches
        from recpipe.train.seeds import seed_everything

        p, tc = self.params, self.params.train_config()
        seed_everything(self.seed)
        model = _module(*train.shape, p, self.seed).to(self.device)
        selecting = valid is not None and data is not None and cfg is not None and valid.nnz > 0
        validate = (lambda m: evaluate(self._scorer(m), data, cfg, "valid").summary) if selecting else None
        live = open_live(self.log_dir, "bprmf")
        res = fit(model, BPRBatches(train, tc.batch_size, self.seed), tc, validate=validate,
                  device=self.device, live=live, desc="bprmf", step_threads=p.threads)
        self.curve = curve_rows(res.history)
        self.selected_epoch = res.best_epoch
        self.user_emb, self.item_emb = (w.detach().cpu().numpy().astype(np.float32)
                                        for w in (model.user, model.item))
        close_live(live, res, tc.select_metric)
        return self

    def _scorer(self, model):
        from recpipe.eval.scorers import EmbeddingScorer

        return EmbeddingScorer(model.user.detach().cpu().numpy(), model.item.detach().cpu().numpy(),
                               device=self.device)

    def scorer(self, part: str = "test"):
        from recpipe.eval.scorers import EmbeddingScorer

        if self.user_emb is None:
            raise RuntimeError("BPRMF.scorer() called before fit()")
        return EmbeddingScorer(self.user_emb, self.item_emb, device=self.device)
