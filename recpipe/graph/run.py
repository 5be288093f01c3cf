"""One graph run, composed the same way wherever it happens (the `graph` stage, the
benchmarks, the 18-run grid): preset configs -> adjacency -> backbone -> alignment (`build`),
then recpipe.train.loop.fit on BPR batches with validation selection, and valid and test
evaluated once at the kept state (`train`). The loop's TrainConfig defaults are RLMRec's
(lr 1e-3, batch 4096, validate every 3 epochs, patience 5, at most 3000 epochs).
"""

from __future__ import annotations

from pathlib import Path


def scorer(model, device):
    """The evaluator's view of a graph model: its final user and item embeddings."""
    from recpipe.eval.scorers import EmbeddingScorer

    u, i = model.embeddings()
    return EmbeddingScorer(u.detach().cpu().numpy(), i.detach().cpu().numpy(), device=str(device))


def build(model: str, align: str, data, sem, seed: int, *, mode: str = "clean",
          kind: str = "amazon", overrides: dict | None = None, device: str = "cpu", configs=None):
    """The backbone `model` on `data`'s training graph, wrapped for `align`, on `device`.

    `sem` = (user (U, S), item (I, S)) semantic tables or (None, None) for align=none;
    `configs` = an already built (backbone config, AlignConfig) pair (else from the presets,
    with `overrides`: flat backbone/alignment keys, clean mode only).
    """
    from recpipe.graph import get_backbone
    from recpipe.graph.adjacency import Graph, bipartite
    from recpipe.graph.align import wrap
    from recpipe.graph.allocator import retain_freed_memory
    from recpipe.graph.presets import build_configs
    from recpipe.train.seeds import seed_everything

    bb_cfg, al_cfg = configs or build_configs(model, align, kind, mode, overrides)
    retain_freed_memory()  # each step frees and reallocates (N, d) tensors: keep the pages
    seed_everything(seed)
    graph = Graph(bipartite(data.train, getattr(bb_cfg, "self_loops", False)), device)
    backbone = get_backbone(model)(data.n_users, data.n_items, graph, bb_cfg)
    return wrap(align, backbone, sem[0], sem[1], al_cfg, seed=seed).to(device)


def select(model, data, tr_cfg, eval_cfg, seed: int, *, device: str = "cpu",
           ckpt: str | Path | None = None, live=None, signature: str = "", progress: bool = True,
           desc: str = "graph", step_threads: int = 0):
    """Train a built graph model on BPR batches, selecting on validation; the model ends at the
    kept state. Returns recpipe.train.loop.FitResult."""
    from recpipe.eval.evaluator import evaluate
    from recpipe.train.loop import fit
    from recpipe.train.sampler import BPRBatches

    return fit(model, BPRBatches(data.train, tr_cfg.batch_size, seed), tr_cfg, device=device,
               ckpt=ckpt, signature=signature, live=live, progress=progress, desc=desc,
               step_threads=step_threads,
               validate=lambda m: evaluate(scorer(m, device), data, eval_cfg, part="valid").summary)


def train(model, data, tr_cfg, eval_cfg, seed: int, *, device: str = "cpu",
          ckpt: str | Path | None = None, live=None, signature: str = "", progress: bool = True,
          desc: str = "graph") -> dict:
    """`select`, then valid and test evaluated once at the kept state; return {"valid",
    "test": EvalResult, "best_epoch", "history", "scorer", "fit": FitResult}."""
    from recpipe.eval.evaluator import evaluate

    res = select(model, data, tr_cfg, eval_cfg, seed, device=device, ckpt=ckpt, live=live,
                 signature=signature, progress=progress, desc=desc)
    s = scorer(model, device)
    return {"valid": evaluate(s, data, eval_cfg, part="valid"),
            "test": evaluate(s, data, eval_cfg, part="test"),
            "best_epoch": res.best_epoch, "history": res.history, "scorer": s, "fit": res}


def fit(model: str, align: str, data, sem, tr_cfg, eval_cfg, seed: int, *, mode: str = "clean",
        kind: str = "amazon", overrides: dict | None = None, device: str = "cpu",
        ckpt: str | Path | None = None, live=None, signature: str = "", progress: bool = True,
        configs=None) -> dict:
    """`build` then `train`: one backbone x alignment run on `data` (SplitData)."""
    wrapped = build(model, align, data, sem, seed, mode=mode, kind=kind, overrides=overrides,
                    device=device, configs=configs)
    return train(wrapped, data, tr_cfg, eval_cfg, seed, device=device, ckpt=ckpt, live=live,
                 signature=signature, progress=progress, desc=f"{model}-{align}")
