"""One MMHCL run, composed the same way wherever it happens (the `mmhcl` stage, benchmarks):
the hypergraphs from the *training* matrix and the item modalities (`graphs`), the model, its
Adam and its `UserBatches` (`build`), then recpipe.train.loop.fit with the reference lr
schedule and validation selection, and valid and test evaluated once at the kept state (`fit`).

Leakage (evaluation.md 4): every graph (UI, U2U) and every training batch comes from
`data.train` alone; on a LOO split that is items[:-2], so no stage-1 input sees items[-2:].
The I2I graph reads item features only, no interactions.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def _log(msg: str) -> None:
    print(f"mmhcl: {msg}", flush=True)


def graphs(train: sp.csr_matrix, feats: list, names: list[str], cfg) -> tuple:
    """(item graph (I, I), user graph (U, U), {"u2u_s", "i2i_s"}) from the (U, I) training
    matrix and the modality matrices; a branch whose λ is 0 gets an empty graph (never read)."""
    from recpipe.hypergraph import build

    n_users, n_items = train.shape
    t0 = time.perf_counter()
    if cfg.lambda_u:
        ug = build.u2u(train)
        _log(f"U2U hypergraph {n_users:,} users, {ug.nnz:,} entries "
             f"({ug.nnz / max(n_users, 1):.0f} per user) in {time.perf_counter() - t0:.1f} s")
    else:
        ug = sp.csr_matrix((n_users, n_users), dtype=np.float32)
    t1 = time.perf_counter()
    if cfg.lambda_i:
        dims = ", ".join(f"{n} {f.shape[1]}-d" for n, f in zip(names, feats))
        ig = build.i2i(feats, cfg.topk, n_items, cfg.binarize, names=names)
        _log(f"I2I hypergraph {n_items:,} items from {dims}, top-{cfg.topk}: {ig.nnz:,} entries "
             f"({ig.nnz / max(n_items, 1):.0f} per item) in {time.perf_counter() - t1:.1f} s")
    else:
        if feats:  # bad input fails even when the branch is off; none at all is allowed then
            build.check_modalities(feats, cfg.topk, n_items, names)
        ig = sp.csr_matrix((n_items, n_items), dtype=np.float32)
    return ig, ug, {"u2u_s": t1 - t0, "i2i_s": time.perf_counter() - t1}


def build(data, p, feats: list, seed: int, device: str = "cpu"):
    """(model, Adam, UserBatches, graph timings) for `data` (DataView) under params `p`
    (MMHCLParams); `feats` are the matrices of p.modalities, in that order."""
    import torch

    from recpipe.graph.allocator import retain_freed_memory
    from recpipe.hypergraph.mmhcl import MMHCL
    from recpipe.train.sampler import UserBatches
    from recpipe.train.seeds import seed_everything

    cfg, tc = p.model_config(), p.train_config()
    retain_freed_memory()  # every step frees and reallocates (N, d) tensors: keep the pages
    ig, ug, t = graphs(data.train, feats, list(p.modalities), cfg)
    seed_everything(seed)
    model = MMHCL(data.n_users, data.n_items, data.train, ig, ug, cfg, seed=seed, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
    return model, opt, UserBatches(data.train, tc.batch_size, seed), t


def scorer(model, device):
    """The evaluator's view of MMHCL: the fused (U, d) users and (I, d) items, score uᵀi."""
    from recpipe.eval.scorers import EmbeddingScorer

    u, i = model.embeddings()
    return EmbeddingScorer(u.cpu().numpy(), i.cpu().numpy(), device=str(device))


def fit(data, p, eval_cfg, seed: int, *, modalities: list, device: str = "cpu",
        ckpt: str | Path | None = None, live=None, signature: str = "",
        progress: bool = True) -> dict:
    """Train one MMHCL; return {"valid", "test": EvalResult at the kept state, "best_epoch",
    "model", "fit": FitResult, "export": {"user": (U, d), "item": (I, d)} float32 numpy (the
    tables mmhcl.model.export names), "timings": seconds}."""
    from recpipe.eval.evaluator import evaluate
    from recpipe.hypergraph.mmhcl import lr_lambda
    from recpipe.train.loop import fit as loop_fit

    model, opt, batches, t = build(data, p, modalities, seed, device)
    t["graphs_s"] = t["u2u_s"] + t["i2i_s"]
    res = loop_fit(model, batches, p.train_config(), device=device, ckpt=ckpt, live=live,
                   signature=signature, progress=progress, desc="mmhcl", optimizer=opt,
                   step_threads=p.threads, lr_lambda=lr_lambda,
                   validate=lambda m: evaluate(scorer(m, device), data, eval_cfg, "valid").summary)
    t0 = time.perf_counter()
    s = scorer(model, device)
    out = {"valid": evaluate(s, data, eval_cfg, "valid"), "test": evaluate(s, data, eval_cfg, "test")}
    epochs = [row["epoch_s"] for row in res.history]
    evals = [row["eval_s"] for row in res.history if "eval_s" in row]
    t.update(epoch_s=float(np.mean(epochs)) if epochs else 0.0,  # training only, no validation
             valid_s=float(np.mean(evals)) if evals else 0.0, train_s=res.elapsed_s,
             final_eval_s=time.perf_counter() - t0)
    return {**out, "best_epoch": res.best_epoch, "model": model, "fit": res,
            "export": model.export(), "timings": t}
