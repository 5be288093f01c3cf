"""The run's seed: read from one place, applied by one function.

Every stage takes the top-level `seed` of params.yaml (default 2023) unless its own section
pins seeds (`graph.seeds`, `baselines.seeds`: recpipe.eval.seeds runs each). Models draw from
their own generators seeded from it; `seed_everything` covers the global ones (python, numpy,
torch on every device) that library code may still touch.
"""

from __future__ import annotations

from recpipe.config import ParamError

DEFAULT_SEED = 2023  # RLMRec's seed; the value params.yaml ships with


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def top_seed(params: dict) -> int:
    """The top-level `seed` (default 2023), checked to be an integer."""
    seed = params.get("seed", DEFAULT_SEED)
    if not _is_int(seed):
        raise ParamError(f"seed: {seed!r} is not an integer")
    return seed


def seed_everything(seed: int) -> None:
    """Seed python's `random`, numpy's global generator and torch (CPU and every CUDA device)."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds all CUDA devices, lazily
