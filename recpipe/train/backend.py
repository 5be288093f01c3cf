"""Where a training step meets the device: autocast, backward, optimiser step, batch transfer,
and, under a launcher, the other processes.

The loop (recpipe/train/loop.py) calls only these members, so the one loop runs on one device
(`Backend`) or data-parallel over several processes (`DistBackend`, chosen by `make_backend`
when torchrun / `accelerate launch` / `recpipe launch` set WORLD_SIZE > 1). fp16 gets a
gradient scaler, whose state the checkpoint keeps.
"""

from __future__ import annotations

import os
from contextlib import nullcontext

from recpipe.config import ParamError


class Backend:
    """Plain torch on one device: autocast, backward and step (with a scaler for fp16)."""

    def __init__(self, device: str, amp: str):
        import torch

        self.device = torch.device(device)
        if amp == "fp16" and self.device.type != "cuda":
            raise ParamError(f"train.amp: 'fp16' needs a CUDA device (got {device}); use bf16 or none")
        self.dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
        self.scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
        self.is_main, self.rank, self.world = True, 0, 1

    # -- the data-parallel seam: one process keeps every batch and syncs nothing -------------
    def wrap(self, model):
        """The module the loop calls for losses (DDP wraps it in DistBackend)."""
        return model

    def loss(self, net, batch, sync: bool = True):
        """model.loss(*batch) through `net`; `sync=False` on micro-batches whose gradients are
        only accumulated (DistBackend skips the all-reduce for them)."""
        return net.loss(**batch) if isinstance(batch, dict) else net.loss(*batch)

    def usable(self, n_batches: int) -> int:
        """How many of an epoch's batches are trained on (all, on one process)."""
        return n_batches

    def mine(self, b: int) -> bool:
        """Is batch number b this process's?"""
        return True

    def mean(self, x: float) -> float:
        """The mean of x over processes."""
        return x

    def share(self, obj):
        """Process 0's obj on every process (validation runs on process 0 only)."""
        return obj

    def autocast(self):
        import torch

        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def backward(self, loss) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self, opt) -> None:
        if self.scaler:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)

    def to_device(self, batch):
        import numpy as np
        import torch

        def move(x):
            if isinstance(x, np.ndarray):
                return torch.from_numpy(x).to(self.device)
            return x.to(self.device) if torch.is_tensor(x) else x

        if isinstance(batch, dict):
            return {k: move(v) for k, v in batch.items()}
        return tuple(move(x) for x in batch)


def _loss_forward(model):
    """model, with model.loss as the forward() DDP calls: DDP syncs gradients only for work
    done through its forward, and the loop's models expose loss(), not forward()."""
    import torch

    class LossForward(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args, **kwargs):
            return self.inner.loss(*args, **kwargs)

    return LossForward(model)


class DistBackend(Backend):
    """Data-parallel training over the processes a launcher started (torchrun, `accelerate
    launch` or `recpipe launch`): accelerate's PartialState joins the process group (gloo on
    CPU, NCCL on GPUs) and picks this process's device; torch DDP averages gradients.

    Process r trains on batches r, r + W, r + 2W, ... of each epoch (every process draws the
    same seeded order), with `grad_accum` micro-batches per step, so one step sees
    W x grad_accum micro-batches: the gradient of one process with grad_accum x W (the DDP test
    checks it). The tail of an epoch beyond a multiple of W is skipped, so no process waits for
    a batch another one lacks. Only process 0 validates, checkpoints and logs; its selection
    decisions are shared, so every process stops at the same epoch.
    """

    def __init__(self, device: str, amp: str):
        from accelerate import PartialState

        state = PartialState(cpu=device == "cpu")
        super().__init__(str(state.device) if device != "cpu" else "cpu", amp)
        self.state = state
        self.is_main, self.rank, self.world = state.is_main_process, state.process_index, \
            state.num_processes

    def wrap(self, model):
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index or 0] if self.device.type == "cuda" else None
        # broadcast_buffers=False: buffers that hold per-process statistics (HUM's per-domain
        # loss sums) must not be overwritten by process 0's at every forward
        # a model whose batches each train a part of it (CLLM4Rec's two sets) says so: DDP
        # then looks for the parameters a step left without a gradient
        return DDP(_loss_forward(model), device_ids=ids, broadcast_buffers=False,
                   find_unused_parameters=getattr(model, "ddp_unused_parameters", False))

    def loss(self, net, batch, sync: bool = True):
        with nullcontext() if sync else net.no_sync():
            return net(**batch) if isinstance(batch, dict) else net(*batch)

    def usable(self, n_batches: int) -> int:
        return n_batches // self.world * self.world

    def mine(self, b: int) -> bool:
        return b % self.world == self.rank

    def mean(self, x: float) -> float:
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(x)], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t) / self.world

    def share(self, obj):
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def make_backend(device: str, amp: str) -> Backend:
    """DistBackend under a launcher that started several processes, else Backend."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return DistBackend(device, amp)
    return Backend(device, amp)
