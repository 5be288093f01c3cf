"""The one training loop: `fit(model, data, cfg, validate=...) -> FitResult`.

Every trained model (graph backbones, BPR-MF, and the sequence and LLM models after them)
runs this loop, so selection, early stopping, resume and curves mean the same everywhere:

- training by epochs (`epochs`) with optional caps on optimiser steps (`max_steps`) and
  wall-clock seconds (`time_budget_s`, validation passes included);
- validation after 0-based epoch e when e % eval_every == 0 (RLMRec's cadence: epochs 0, 3, 6,
  ...) and after the last epoch a cap ends on; the state with the best `select_metric` is kept;
  `patience` counts validations without improvement (0 = never stop early), and stops no
  earlier than `min_epochs` (a slow start's plateau is not the end). Test is never looked at
  here: callers evaluate it once, on the kept state;
- `grad_accum` micro-batches per optimiser step (their losses scaled by 1/grad_accum, so k
  micro-batches of b give the gradient of one batch of k*b when the loss is a batch mean);
- optional autocast (`amp: bf16 | fp16`; fp16 with a gradient scaler, on CUDA only);
- a resumable checkpoint written at every validation (recpipe.train.checkpoint): model,
  optimiser, best state, the loop's counters and every RNG, so a killed run resumed with the
  same signature ends exactly as an uninterrupted one;
- dvclive curves (`train/loss` every epoch, `valid/<metric>` every validation) and a progress bar.

What the loop needs from its arguments (duck-typed, so a model is a plain nn.Module):
    model.loss(*batch) -> loss or (loss, parts)   the batch's mean loss (a 0-d tensor)
    model.on_epoch_start()                        optional per-epoch hook (AutoCF's counter;
                                                  not called when resuming inside an epoch)
    model.on_step(steps)                          optional, after each optimiser step (1-based
                                                  count; HUM's domain-weight update)
    model.rng                                     optional numpy Generator, checkpointed
    model.batch_tokens(*batch) -> int             optional: the epoch row then has tokens_per_s,
                                                  samples_per_s and peak_mem_gb (all processes)
    model.flops_per_token, model.peak_flops       optional floats: the row also has mfu
                                                  (recpipe.llm.flops computes both)
    data.epoch() -> iterable of batches           one epoch; a batch is a tuple of arrays
    data.state() / data.load_state(s)             the batch source's RNG state (JSON-able)
    len(data), data.epoch_len()                   batches per epoch (data-parallel runs need
                                                  it); epoch_len, when epochs differ: the next
    model.ddp_unused_parameters                   optional True: a step may leave parameters
                                                  without a gradient (DDP must look for them)
    validate(model) -> {metric: value}            the validation summary (no grad, eval mode)

Everything device-specific goes through `recpipe.train.backend.Backend`, the seam where the LLM
stages plug in accelerate (its `backward`, `autocast` and main-process test) without a second loop.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from recpipe.config import ParamError, choice, parse, rng

CAPS = ("epochs", "max_steps", "time_budget_s", "min_epochs")  # where training stops, not what it computes
_NOT_RESUME = (*CAPS, "save_every")
# per-epoch throughput columns, for models that count their tokens (module docstring)
THROUGHPUT = ("tokens_per_s", "samples_per_s", "mfu", "peak_mem_gb")  # how often a checkpoint is written is not what it holds


@dataclass
class TrainConfig:
    # maximum epochs (one epoch = one pass of the batch source; early stopping usually ends sooner)
    epochs: int = field(default=3000, metadata=rng(1))
    # maximum optimiser steps over the whole run; 0 = no cap
    max_steps: int = field(default=0, metadata=rng(0))
    # wall-clock seconds for training and its validations; 0 = no cap. The state at the cap is
    # validated too, so a capped run still returns its best validated state
    time_budget_s: float = field(default=0.0, metadata=rng(0.0))
    # validate after 0-based epochs 0, k, 2k, ... (RLMRec: 3)
    eval_every: int = field(default=3, metadata=rng(1))
    # validations without improvement before stopping (RLMRec: 5); 0 = never stop early
    patience: int = field(default=5, metadata=rng(0))
    # patience stops training no earlier than after this many epochs (0 = whenever it runs
    # out). A model that first learns popularity can sit on that plateau for `patience`
    # validations before it finds the users' tastes (LightGCN on the embedded sample)
    min_epochs: int = field(default=0, metadata=rng(0))
    # validation metric that selects the kept state (one the eval preset computes); several
    # joined by "|" (MMHCL's "recall@20|ndcg@20") keep a state when any of them beats its own
    # best; a sum of several joined by "+" is one score (CLLM4Rec's "recall@20+recall@40+ndcg@100")
    select_metric: str = "recall@20"
    # Adam learning rate
    lr: float = field(default=1e-3, metadata=rng(0.0, None, lo_open=True))
    # examples per micro-batch (the batch source's batch size)
    batch_size: int = field(default=4096, metadata=rng(1))
    # micro-batches per optimiser step
    grad_accum: int = field(default=1, metadata=rng(1))
    # autocast dtype: none | bf16 | fp16 (fp16: CUDA only, with a gradient scaler)
    amp: str = field(default="none", metadata=choice("none", "bf16", "fp16"))
    # torch.use_deterministic_algorithms while training: the same seed gives bit-identical runs
    # at a given thread count. Without it, CPU index_put_ accumulation (embedding gradients)
    # adds in thread order, and two runs drift apart in the last bits after ~20 epochs
    deterministic: bool = True
    # also checkpoint every k optimiser steps inside an epoch (0 = only at validations): for
    # epochs long enough that a kill should not cost one (the LLM stages)
    save_every: int = field(default=0, metadata=rng(0))

    def resume_key(self) -> dict:
        """The fields a checkpoint must agree on to be continued (not the caps: a run stopped
        by its budget continues when resumed with a larger one)."""
        return {k: v for k, v in asdict(self).items() if k not in _NOT_RESUME}


def train_config(given: dict | None, defaults: dict, key: str) -> TrainConfig:
    """Parse a `<stage>.train` mapping over the model's own defaults; errors name `key`."""
    return parse(TrainConfig, {**defaults, **(given or {})}, prefix=key)


@dataclass
class FitResult:
    """What `fit` returns; the model holds the kept state when it returns."""

    best_epoch: int  # 0-based epoch of the kept state (the last epoch run when nothing validated)
    best_score: float | None  # its validation `select_metric` (None without validation)
    select_metric: str
    epochs: int  # epochs run, resumed ones included
    steps: int  # optimiser steps, resumed ones included
    stopped: str  # patience | epochs | max_steps | time_budget
    elapsed_s: float  # training + validation seconds, resumed ones included
    history: list[dict] = field(default_factory=list)  # one row per epoch: loss, timings, valid/*


def _log(live, row: dict) -> None:
    """One epoch's row as one dvclive step: the training loss and the validation metrics."""
    if live is None:
        return
    live.step = row["epoch"]
    live.log_metric("train/loss", row["loss"])
    for k in THROUGHPUT:
        if k in row:
            live.log_metric(f"train/{k}", row[k])
    for k, v in row.items():
        if k.startswith("valid/") and "@" in k:  # metrics only: not `units` or domain counts
            live.log_metric(k, v)
    live.next_step()


@dataclass
class _State:
    """The loop's counters: what a checkpoint restores besides tensors and RNGs."""

    epoch: int = 0  # next epoch to run
    steps: int = 0
    best: float = float("-inf")  # the first select metric's value at the kept state
    bests: dict = field(default_factory=dict)  # each select metric's best so far
    best_epoch: int = -1
    bad: int = 0
    elapsed_s: float = 0.0
    stopped: str = ""
    history: list = field(default_factory=list)
    # mid-epoch position (save_every): batches of epoch `epoch` consumed, the batch source's
    # state when that epoch began (replayed up to `pos` on resume), the epoch's loss so far
    pos: int = 0
    epoch_data: dict | None = None
    part_loss: float = 0.0
    part_n: int = 0


def fit(model, data, cfg: TrainConfig, *, validate: Callable[[object], dict] | None = None,
        device: str = "cpu", ckpt: str | Path | None = None, signature: str = "", live=None,
        progress: bool = True, desc: str = "train", optimizer=None,
        step_threads: int = 0, lr_lambda: Callable[[float], float] | None = None) -> FitResult:
    """Train `model` on `data` under `cfg`, select on `validate`, return a FitResult.

    `optimizer`: default Adam(lr); `lr_lambda(e) -> factor`: before every optimiser step each
    parameter group's lr is its initial lr x factor, e the fractional epoch (epoch + batch /
    batches per epoch, when the batch source has a len; else the integer epoch). A schedule is
    a pure function of e, so a resumed run follows it exactly (floor(e) gives a per-epoch one,
    as SASRec's StepLR and MMHCL's LambdaLR); `step_threads`: torch CPU threads for the training steps only
    (0 = leave as is); `signature`: the caller's fingerprint, a checkpoint under another one is
    ignored (recpipe.train.checkpoint.fingerprint).
    """
    with _deterministic(cfg.deterministic, device):
        return _fit(model, data, cfg, validate, device, ckpt, signature, live, progress, desc,
                    optimizer, step_threads, lr_lambda)


@contextmanager
def _deterministic(on: bool, device: str):
    """torch.use_deterministic_algorithms for the block, then the caller's setting again.
    warn_only: an op without a deterministic kernel warns rather than stopping training."""
    import os

    import torch

    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    if on and str(device).startswith("cuda"):  # cuBLAS needs a fixed workspace to be repeatable
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def _fit(model, data, cfg, validate, device, ckpt, signature, live, progress, desc, optimizer,
         step_threads, lr_lambda) -> FitResult:
    import torch
    from tqdm import tqdm

    from recpipe.train import checkpoint
    from recpipe.train.backend import make_backend
    from recpipe.train.device import torch_threads

    be = make_backend(device, cfg.amp)  # one process, or data-parallel under a launcher
    net = be.wrap(model)
    counting = hasattr(model, "batch_tokens")
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=cfg.lr)
    base_lr = [g["lr"] for g in opt.param_groups]  # before a checkpoint's (scheduled) lr loads
    per_epoch = len(data) if hasattr(data, "__len__") else 0
    if be.world > 1 and not per_epoch:
        raise ValueError(f"{desc}: data-parallel training needs a batch source with a len()")
    usable = be.usable(per_epoch) if per_epoch else None  # batches trained per epoch, all ranks
    mine = usable // be.world if per_epoch else None  # of which this process's
    st, best_state = _State(), None
    if ckpt is not None and checkpoint.exists(ckpt):
        if checkpoint.signature(ckpt) != signature:
            print(f"{desc}: ignoring checkpoint {ckpt}: another configuration, split or code")
        else:
            best_state, meta, rngs = checkpoint.load(ckpt, model, opt, be.device)
            st = _State(**meta["loop"])
            data.load_state(rngs["data"])
            if "model" in rngs:
                model.rng.bit_generator.state = rngs["model"]
            if be.scaler is not None and "scaler" in meta:
                be.scaler.load_state_dict(meta["scaler"])
            if st.stopped and not _can_continue(st, cfg):
                st.epoch = cfg.epochs  # that run had ended: nothing left to train
            st.stopped = ""
            if st.pos:  # killed inside an epoch: replay its batch order up to the position
                data.load_state(st.epoch_data)
            where = f", batch {st.pos}" if st.pos else ""
            print(f"{desc}: resumed from {ckpt} at epoch {st.epoch}{where}")
            for row in st.history:  # a fresh dvclive directory: the curves start from 0 again
                _log(live, row)

    def save():
        if ckpt is None or not be.is_main:
            return
        rngs = {"data": data.state()}
        if getattr(model, "rng", None) is not None:
            rngs["model"] = model.rng.bit_generator.state
        meta = {"loop": asdict(st), "signature": signature}
        if be.scaler is not None:
            meta["scaler"] = be.scaler.state_dict()
        checkpoint.save(ckpt, model, opt, best_state, meta, rngs)

    t_start = time.perf_counter() - st.elapsed_s

    def over_budget() -> bool:
        return bool(cfg.time_budget_s) and time.perf_counter() - t_start >= cfg.time_budget_s

    def consumed(b: int) -> int:
        """Batches of the epoch used up when this process's batch b completes a step: the end
        of b's group of W (one per process), the same on every process, so all of them agree
        on a mid-epoch checkpoint and resume from one position."""
        return b - be.rank + be.world

    def step(micro: int, at: float, pos: int, total, n: int) -> None:
        """One optimiser step over `micro` accumulated micro-batches at fractional epoch `at`;
        then the caps, and a mid-epoch checkpoint every `save_every` steps (`pos` batches of
        the epoch consumed, `total` / `n` its loss so far)."""
        if lr_lambda is not None:
            for g, lr0 in zip(opt.param_groups, base_lr):
                g["lr"] = lr0 * lr_lambda(at)
        if micro < cfg.grad_accum:  # an epoch's remainder: its grads were scaled 1/grad_accum
            for g in (q.grad for q in model.parameters() if q.grad is not None):
                g.mul_(cfg.grad_accum / micro)
        be.step(opt)
        st.steps += 1
        if hasattr(model, "on_step"):
            model.on_step(st.steps)
        if cfg.max_steps and st.steps >= cfg.max_steps:
            st.stopped = "max_steps"
        elif over_budget():
            st.stopped = "time_budget"
        if cfg.time_budget_s and be.world > 1:  # clocks differ: process 0 decides for all
            st.stopped = be.share(st.stopped)
        if cfg.save_every and st.steps % cfg.save_every == 0 and not st.stopped and \
                (not per_epoch or pos < usable):  # the epoch's end saves anyway
            st.pos, st.part_n = pos, n
            st.part_loss = be.mean(float(total))  # all processes resume with the same sum
            st.elapsed_s = time.perf_counter() - t_start
            save()

    # else TQDM_DISABLE=1 still hides it; under a launcher only process 0 draws one
    quiet = {} if progress and be.is_main else {"disable": True}
    bar = tqdm(range(st.epoch, cfg.epochs), desc=desc, leave=False, mininterval=1.0, **quiet)
    for epoch in bar:
        net.train()
        if hasattr(model, "on_epoch_start") and not st.pos:  # a mid-epoch resume: the
            model.on_epoch_start()  # checkpoint holds the state the epoch's start had set
        if per_epoch and hasattr(data, "epoch_len"):  # epochs of their own length (CLLM4Rec's
            usable = be.usable(data.epoch_len())  # warm-up): every process must know it
            mine = usable // be.world
        t0, total, n, pending = time.perf_counter(), st.part_loss, st.part_n, 0
        tokens = samples = 0
        skip, st.pos, st.part_loss, st.part_n = st.pos, 0, 0.0, 0
        if not skip:
            st.epoch_data = data.state()

        with torch_threads(step_threads):
            for b, batch in enumerate(data.epoch()):
                if usable is not None and b >= usable:
                    break
                if b < skip or not be.mine(b):  # skip: trained before a mid-epoch resume
                    continue
                batch = be.to_device(batch)
                # gradients are all-reduced on the micro-batch that completes a step
                sync = pending + 1 == cfg.grad_accum or (mine is not None and n + 1 == mine)
                with be.autocast():  # a batch is a tuple of arrays or a mapping of named inputs
                    out = be.loss(net, batch, sync)
                loss = out[0] if isinstance(out, tuple) else out
                be.backward(loss / cfg.grad_accum if cfg.grad_accum > 1 else loss)
                total, n, pending = total + loss.detach().float(), n + 1, pending + 1  # no sync
                if counting:
                    tokens += model.batch_tokens(**batch) if isinstance(batch, dict) else \
                        model.batch_tokens(*batch)
                    samples += len(next(iter(batch.values())) if isinstance(batch, dict)
                                   else batch[0])
                if pending == cfg.grad_accum:
                    step(pending, epoch + b / per_epoch if per_epoch else epoch, consumed(b),
                         total, n)
                    pending = 0
                    if st.stopped:
                        break
            if pending:
                step(pending, epoch + b / per_epoch if per_epoch else epoch, consumed(b), total,
                     n)
        st.pos, st.part_loss, st.part_n = 0, 0.0, 0  # the epoch is whole: no position to keep
        row = {"epoch": epoch, "loss": be.mean(float(total) / max(n, 1)),
               "epoch_s": time.perf_counter() - t0}
        if counting:
            row.update(_throughput(model, be, tokens, samples, row["epoch_s"]))
        st.epoch = epoch + 1
        if not st.stopped and st.epoch >= cfg.epochs:
            st.stopped = "epochs"
        elif not st.stopped and over_budget():
            st.stopped = "time_budget"
        st.stopped = be.share(st.stopped)
        # on cadence, and whenever a cap ends training: the last state gets its validation too
        if validate is not None and (epoch % cfg.eval_every == 0 or st.stopped):
            scores = be.share(_validate(model, validate, cfg, row) if be.is_main else None)
            if any(v > st.bests.get(m, float("-inf")) for m, v in scores.items()):
                st.bests = {m: max(v, st.bests.get(m, float("-inf"))) for m, v in scores.items()}
                st.best, st.best_epoch, st.bad = next(iter(scores.values())), epoch, 0
                best_state = {k: v.detach().clone() for k, v in checkpoint.model_state(model).items()}
            else:
                st.bad += 1
            if cfg.patience and st.bad >= cfg.patience and st.epoch >= cfg.min_epochs:
                st.stopped = "patience"  # final, even when a cap ended this epoch as well
        st.history.append(row)
        _log(live, row)
        bar.set_postfix(loss=f"{row['loss']:.4f}", best=f"{st.best:.4f}")
        st.elapsed_s = time.perf_counter() - t_start
        if "eval_s" in row or st.stopped:
            save()
        if st.stopped:
            break
    bar.close()
    if best_state is not None:
        checkpoint.load_model_state(model, best_state)
    else:
        st.best_epoch = st.epoch - 1  # nothing validated: the last state is the result
    model.eval()
    return FitResult(best_epoch=st.best_epoch, select_metric=cfg.select_metric,
                     best_score=st.best if best_state is not None else None,
                     epochs=st.epoch, steps=st.steps, stopped=st.stopped or "epochs",
                     elapsed_s=st.elapsed_s, history=st.history)


def _throughput(model, be, tokens: int, samples: int, seconds: float) -> dict:
    """The epoch's tokens/s and samples/s over all processes, peak memory (GPU: allocated by
    torch; CPU: the process's peak RSS) and MFU when the model states its FLOPs and peak."""
    import resource

    import torch

    world_tokens, world_samples = be.mean(tokens) * be.world, be.mean(samples) * be.world
    row = {"tokens_per_s": world_tokens / seconds, "samples_per_s": world_samples / seconds}
    if be.device.type == "cuda":
        row["peak_mem_gb"] = torch.cuda.max_memory_allocated(be.device) / 2**30
    else:  # ru_maxrss is KiB on Linux
        row["peak_mem_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    flops, peak = getattr(model, "flops_per_token", None), getattr(model, "peak_flops", None)
    if flops and peak:  # per device: each process's share of the tokens on its own peak
        row["mfu"] = row["tokens_per_s"] / be.world * flops / peak
    return row


def _can_continue(st: _State, cfg: TrainConfig) -> bool:
    """A resumed run that had stopped on a cap goes on when the new caps leave room."""
    if st.stopped == "patience":
        return False
    return (st.epoch < cfg.epochs and (not cfg.max_steps or st.steps < cfg.max_steps)
            and (not cfg.time_budget_s or st.elapsed_s < cfg.time_budget_s))


def _validate(model, validate, cfg: TrainConfig, row: dict) -> dict:
    """Run `validate` in eval mode without grad; add valid/* and eval_s to `row`; return the
    selection scores {metric: value}, in select_metric's order."""
    import torch

    model.eval()
    t = time.perf_counter()
    with torch.no_grad():
        summary = validate(model)
    row.update({f"valid/{k}": v for k, v in summary.items()
                if "/" not in k and isinstance(v, (int, float))}, eval_s=time.perf_counter() - t)
    metrics = cfg.select_metric.split("|")
    if missing := [m for m in metrics for part in m.split("+") if part not in summary]:
        have = ", ".join(sorted(k for k in summary if "@" in k))
        raise ParamError(f"train.select_metric: {missing[0]!r} is not computed by the "
                         f"eval preset; choose one of {have} (several joined by | or +)")
    scores = {m: float(sum(summary[part] for part in m.split("+"))) for m in metrics}
    row.update({f"valid/{m}": v for m, v in scores.items() if "+" in m})
    return scores
