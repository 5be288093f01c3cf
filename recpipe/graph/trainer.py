"""Training loop shared by every graph backbone x alignment: BPR batches, validation-based
model selection, patience, resumable checkpoints, dvclive curves.

Selection follows the project rule (evaluation.md section 6): validate every `eval_every`
epochs on the *validation* part, keep the best state by `select_metric`, stop after
`patience` checks without improvement, then evaluate valid and test once at the best state.
Nothing here looks at test before the end.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from recpipe.config import rng
from recpipe.eval.evaluator import evaluate
from recpipe.eval.protocol import EvalConfig
from recpipe.eval.scorers import EmbeddingScorer
from recpipe.graph import checkpoint
from recpipe.graph.sampler import BPRSampler


@dataclass
class TrainConfig:
    lr: float = field(default=1e-3, metadata=rng(0.0, None, lo_open=True))
    batch_size: int = field(default=4096, metadata=rng(1))
    # maximum epochs (early stopping usually ends training long before)
    epochs: int = field(default=3000, metadata=rng(1))
    # validate at 0-based epochs 0, k, 2k, ... (RLMRec: 3)
    eval_every: int = field(default=3, metadata=rng(1))
    # checks without improvement before stopping (RLMRec: 5)
    patience: int = field(default=5, metadata=rng(1))
    # validation metric that selects the kept state
    select_metric: str = "recall@20"


def _scorer(model, device):
    u, i = model.embeddings()
    return EmbeddingScorer(u.cpu().numpy(), i.cpu().numpy(), device=str(device))


def _log(live, row: dict) -> None:
    """One epoch's row as one dvclive step (no-op without a Live)."""
    if live is None:
        return
    for k, v in row.items():
        # curves are metrics; a summary also names (and counts) domains without targets
        if k != "epoch" and "domains_without_targets" not in k and isinstance(v, (int, float)):
            live.log_metric(k, v)
    live.next_step()


def train(model, data, cfg: TrainConfig, eval_cfg: EvalConfig, seed: int, device="cpu",
          ckpt: str | Path | None = None, live=None, progress: bool = True,
          signature: str = "") -> dict:
    """Train `model` (an align wrapper) on `data` (SplitData); return results and curves.

    A checkpoint is resumed only when its `signature` (the caller's hash of config and data)
    matches, so a persisted checkpoint of another configuration is never continued.
    """
    from tqdm import tqdm

    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sampler = BPRSampler(data.train, cfg.batch_size, seed)
    start, best_state, best, best_epoch, bad, history = 0, None, -1.0, -1, 0, []
    if ckpt is not None and checkpoint.exists(ckpt) and checkpoint.signature(ckpt) != signature:
        print(f"ignoring checkpoint {ckpt}: it belongs to another configuration or split")
    elif ckpt is not None and checkpoint.exists(ckpt):
        best_state, meta, rng_state = checkpoint.load(ckpt, model, opt, device)
        start, best, best_epoch, bad, history = (meta["epoch"] + 1, meta["best"], meta["best_epoch"],
                                                 meta["bad"], meta["history"])
        sampler.load_state(rng_state["sampler"])
        if "gen" in rng_state:
            model.rng.bit_generator.state = rng_state["gen"]
        if bad >= cfg.patience:  # that run had already stopped early: nothing left to train
            start = cfg.epochs
        print(f"resumed from {ckpt} at epoch {start}")
        for row in history:  # a fresh dvclive directory: the curves start from epoch 0 again
            _log(live, row)
    bar = tqdm(range(start, cfg.epochs), desc="epochs", disable=not progress, mininterval=1.0)
    for epoch in bar:
        model.train()
        hook = getattr(getattr(model, "backbone", None), "on_epoch_start", None)
        if hook is not None:  # per-epoch state of a backbone (AutoCF's batch counter)
            hook()
        t0, total, steps = time.perf_counter(), 0.0, 0
        for u, p, n in sampler.epoch():
            loss, _ = model.loss(*(torch.from_numpy(x).to(device) for x in (u, p, n)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, steps = total + loss.detach(), steps + 1  # summed on the device: no sync a step
        row = {"epoch": epoch, "loss": float(total) / steps, "epoch_s": time.perf_counter() - t0}
        if epoch % cfg.eval_every == 0:
            model.eval()
            t1 = time.perf_counter()
            res = evaluate(_scorer(model, device), data, eval_cfg, part="valid")
            row.update({f"valid/{k}": v for k, v in res.summary.items() if "/" not in k},
                       eval_s=time.perf_counter() - t1)
            score = res.summary[cfg.select_metric]
            if score > best:
                best, best_epoch, bad = score, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad += 1
        history.append(row)
        _log(live, row)
        bar.set_postfix(loss=f"{row['loss']:.4f}", best=f"{best:.4f}")
        stop = bad >= cfg.patience
        if ckpt is not None and (epoch % cfg.eval_every == 0 or stop):
            rng_state = {"sampler": sampler.state()}
            if hasattr(model, "rng"):
                rng_state["gen"] = model.rng.bit_generator.state
            meta = {"epoch": epoch, "best": best, "best_epoch": best_epoch, "bad": bad,
                    "history": history, "signature": signature}
            checkpoint.save(ckpt, model, opt, best_state, meta, rng_state)
        if stop:
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    scorer = _scorer(model, device)
    return {
        "valid": evaluate(scorer, data, eval_cfg, part="valid"),
        "test": evaluate(scorer, data, eval_cfg, part="test"),
        "best_epoch": best_epoch,
        "history": history,
        "scorer": scorer,
    }
