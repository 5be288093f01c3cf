"""BPR-MF: matrix factorisation trained with Bayesian Personalized Ranking.

Paper: S. Rendle, C. Freudenthaler, Z. Gantner, L. Schmidt-Thieme, "BPR: Bayesian Personalized
Ranking from Implicit Feedback", UAI 2009. Reference code: RecBole
`recbole/model/general_recommender/bpr.py` (https://github.com/RUCAIBox/RecBole); the
validation/selection loop follows HKUDS/RLMRec `encoder/trainer/trainer.py`
(https://github.com/HKUDS/RLMRec): check every 3 epochs, patience 5 checks.

    score(u, i) = e_u . e_i                     e_u, e_i in R^dim
    loss = -mean log sigmoid(score(u, i) - score(u, j)) + reg/2 * mean(|e_u|^2 + |e_i|^2 + |e_j|^2)

over triples (u, i, j): every training pair (u, i) once per epoch, j drawn uniformly from the
items u did not interact with (rejection sampling, vectorised over the whole epoch). Adam.

Model selection (evaluation.md sec. 6): every `eval_every` epochs the model is ranked on the
**validation** part; the best state by `select` (validation Recall@20) is kept and training
stops after `patience` checks without improvement. Test is never looked at here: the caller
evaluates it once, on the kept state. The curve goes to dvclive (when `log_dir` is given) and
to `self.curve`.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recpipe.config import rng


@dataclass
class BPRMFParams:
    # embedding width of users and items
    dim: int = field(default=64, metadata=rng(1))
    # Adam learning rate
    lr: float = field(default=0.01, metadata=rng(0.0, lo_open=True))
    # L2 weight: reg/2 x the batch mean of |e_u|^2 + |e_i|^2 + |e_j|^2
    reg: float = field(default=0.05, metadata=rng(0.0))
    # (u, i, j) triples per optimiser step
    batch_size: int = field(default=4096, metadata=rng(1))
    # maximum epochs (one epoch = every training pair once)
    epochs: int = field(default=200, metadata=rng(1))
    # validate every this many epochs (RLMRec: 3)
    eval_every: int = field(default=3, metadata=rng(1))
    # stop after this many validations without improvement (RLMRec: 5); 0 = never stop early
    patience: int = field(default=5, metadata=rng(0))
    # validation metric that selects the kept state (must be one the eval preset computes)
    select: str = "recall@20"
    # std of the normal initialisation (Rendle et al.: 0.1)
    init_std: float = field(default=0.1, metadata=rng(0.0, lo_open=True))
    # CPU threads for the training steps; 0 = torch's default. The steps are small
    # (batch x dim), so 1 thread is as fast on an idle machine and ~10x faster on a busy one
    threads: int = field(default=1, metadata=rng(0))


@contextmanager
def _threads(n: int):
    """Run the block with `n` torch CPU threads (0 = leave as is), then restore."""
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


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
        import torch
        from tqdm import tqdm

        from recpipe.train.sampler import NegativeSampler
        from recpipe.train.seeds import seed_everything

        p = self.params
        dev = torch.device(self.device)
        seed_everything(self.seed)
        gen = np.random.default_rng(self.seed)
        tgen = torch.Generator().manual_seed(self.seed)
        coo = train.tocoo()
        n_users, n_items = train.shape
        u_all, i_all = coo.row.astype(np.int64), coo.col.astype(np.int64)
        negatives = NegativeSampler(train, gen)  # uniform, training items excluded
        user_w = torch.nn.Parameter((torch.randn(n_users, p.dim, generator=tgen) * p.init_std).to(dev))
        item_w = torch.nn.Parameter((torch.randn(n_items, p.dim, generator=tgen) * p.init_std).to(dev))
        opt = torch.optim.Adam([user_w, item_w], lr=p.lr)
        selecting = valid is not None and data is not None and cfg is not None and valid.nnz > 0
        live = self._live()
        best, best_state, bad = -np.inf, None, 0
        bar = tqdm(range(1, p.epochs + 1), desc="bprmf", leave=False)  # TQDM_DISABLE=1 hides it
        for epoch in bar:
            order = gen.permutation(len(u_all))  # (nnz,) every training pair once
            u_ep, i_ep = u_all[order], i_all[order]
            j_ep = negatives.draw(u_ep)
            with _threads(p.threads):
                mean_loss = self._epoch(u_ep, i_ep, j_ep, user_w, item_w, opt)
            if live is not None:
                live.step = epoch
                live.log_metric("train/loss", mean_loss)
            check = selecting and (epoch % p.eval_every == 0 or epoch == p.epochs)
            if check:
                summary = self._validate(user_w, item_w, data, cfg)
                if p.select not in summary:
                    raise ValueError(f"baselines.bprmf.select={p.select!r} is not computed by the "
                                     f"eval preset; available: {', '.join(sorted(summary))}")
                row = {"epoch": epoch, "loss": mean_loss,
                       **{f"valid/{k}": v for k, v in summary.items() if "@" in k}}
                self.curve.append(row)
                if live is not None:
                    for k in dict.fromkeys((p.select, "recall@20", "ndcg@20")):  # ordered, no repeats
                        if k in summary:
                            live.log_metric(f"valid/{k}", summary[k])
                if summary[p.select] > best:
                    best, bad, self.selected_epoch = summary[p.select], 0, epoch
                    best_state = (user_w.detach().clone(), item_w.detach().clone())
                else:
                    bad += 1
                bar.set_postfix(loss=f"{mean_loss:.4f}", best=f"{best:.4f}@{self.selected_epoch}")
            if live is not None:
                live.next_step()
            if check and p.patience and bad >= p.patience:
                break
        if best_state is None:  # no validation: keep the last state
            best_state, self.selected_epoch = (user_w.detach(), item_w.detach()), epoch
        self.user_emb = best_state[0].cpu().numpy().astype(np.float32)
        self.item_emb = best_state[1].cpu().numpy().astype(np.float32)
        if live is not None:
            live.summary["selected_epoch"] = self.selected_epoch
            live.summary[f"best_valid/{p.select}"] = float(best) if np.isfinite(best) else None
            live.end()
        return self

    def _epoch(self, u_ep, i_ep, j_ep, user_w, item_w, opt) -> float:
        """One pass of Adam steps over the (u, i, j) triples; returns the mean loss."""
        import torch
        import torch.nn.functional as F

        p, dev, total = self.params, user_w.device, 0.0
        for s in range(0, len(u_ep), p.batch_size):
            u, i, j = (torch.from_numpy(a[s:s + p.batch_size]).to(dev) for a in (u_ep, i_ep, j_ep))
            eu, ei, ej = user_w[u], item_w[i], item_w[j]  # (B, dim) each
            x = (eu * (ei - ej)).sum(dim=1)  # (B,) score(u, i) - score(u, j)
            l2 = (eu.pow(2).sum() + ei.pow(2).sum() + ej.pow(2).sum()) / (2 * len(u))
            loss = -F.logsigmoid(x).mean() + p.reg * l2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(u)
        return total / len(u_ep)

    def _validate(self, user_w, item_w, data, cfg) -> dict:
        from recpipe.eval.evaluator import evaluate
        from recpipe.eval.scorers import EmbeddingScorer

        scorer = EmbeddingScorer(user_w.detach().cpu().numpy(), item_w.detach().cpu().numpy(),
                                 device=self.device)
        return evaluate(scorer, data, cfg, "valid").summary

    def _live(self):
        if self.log_dir is None:
            return None
        from dvclive import Live
        from scmrepo.exceptions import SCMError

        # dvcyaml=None / save_dvc_exp=False: log files only, never touch dvc.yaml or DVC exps
        try:
            return Live(str(self.log_dir), dvcyaml=None, save_dvc_exp=False)
        except (SCMError, OSError) as e:  # dvclive 3.49 fails in a git repo without commits
            warnings.warn(f"bprmf: no dvclive curve in {self.log_dir} ({type(e).__name__}: {e}); "
                          f"the curve is still returned. A first `git commit` fixes this.")
            return None

    def scorer(self):
        from recpipe.eval.scorers import EmbeddingScorer

        if self.user_emb is None:
            raise RuntimeError("BPRMF.scorer() called before fit()")
        return EmbeddingScorer(self.user_emb, self.item_emb, device=self.device)
