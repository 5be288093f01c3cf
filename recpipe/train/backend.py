"""Where a training step meets the device: autocast, backward, optimiser step, batch transfer.

The loop (recpipe/train/loop.py) calls only these five members, so a multi-GPU backend (the
LLM stages' accelerate wrapper: `accelerator.autocast()`, `accelerator.backward(loss)`,
`accelerator.is_main_process`) replaces this class without a second loop. This one is plain
torch on one device; fp16 gets a gradient scaler, whose state the checkpoint keeps.
"""

from __future__ import annotations

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
        self.is_main = True

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
