"""The `device` parameter of the torch stages: checked when params are parsed, resolved once.

    device: auto | cpu | cuda | cuda:N | mps

`check_device` fails at parse time, naming the key, for a value torch would only reject after
the data has loaded (`gpu`, `cuda:7` on a machine or a CPU-only torch without that GPU);
`pick_device` turns `auto` into cuda when torch sees a GPU, else cpu. torch is imported only
for values that need it.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager

from recpipe.config import ParamError

DEVICES = "auto, cpu, cuda, cuda:N or mps"


def check_device(value: str, key: str) -> None:
    """Raise ParamError naming `key` unless `value` is a device this machine's torch can use."""
    m = re.fullmatch(r"auto|cpu|mps|cuda(?::(\d+))?", value) if isinstance(value, str) else None
    if m is None:
        raise ParamError(f"{key}: {value!r} is not allowed; choose {DEVICES}")
    if value in ("auto", "cpu"):
        return
    import torch

    if value == "mps":
        if not torch.backends.mps.is_available():
            raise ParamError(f"{key}: {value!r} but torch {torch.__version__} sees no MPS device; "
                             f"use auto or cpu")
        return
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(m.group(1) or 0)
    if index >= n:
        seen = (f"sees {n} CUDA device(s): cuda:0..cuda:{n - 1}" if n else
                f"sees no CUDA device{' (a CPU-only build)' if torch.version.cuda is None else ''}")
        raise ParamError(f"{key}: {value!r} but torch {torch.__version__} {seen}; use auto or cpu")


def pick_device(value: str) -> str:
    """`auto` -> cuda when torch sees a GPU, else cpu; any other (checked) value as it is.
    Under a launcher that started several processes (LOCAL_RANK, WORLD_SIZE > 1), `auto` and
    `cuda` on a GPU machine mean this process's own GPU, cuda:LOCAL_RANK."""
    if value not in ("auto", "cuda"):
        return value
    import torch

    if not torch.cuda.is_available():
        return "cpu" if value == "auto" else value
    local = os.environ.get("LOCAL_RANK")
    if local is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"cuda:{int(local)}"
    return "cuda"


@contextmanager
def torch_threads(n: int):
    """Run the block with `n` torch CPU threads (0 = leave as is), then restore the old count.
    Small steps (batch x 64 lookups) run as fast on 1 thread on an idle machine and far faster
    on a busy one, while the validation pass around them keeps every core."""
    if not n:
        yield
        return
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
