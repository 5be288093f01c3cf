"""The run's seed: read from one place, applied by one function.

Every stage takes the top-level `seed` of params.yaml (default 2023) unless its own section
pins seeds (`graph.seeds`, `baselines.seeds`: recpipe.eval.seeds runs each). Models draw from
their own generators seeded from it; `seed_everything` covers the global ones (python, numpy,
torch on every device) that library code may still touch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


_HINT = "write a list of distinct non-negative integers, e.g. [1, 2, 3]; [] = the top-level seed"


@dataclass(frozen=True)
class Seed:
    """One seed of a run; `multi` = several seeds ran, so each writes into its own folder."""

    value: int
    multi: bool = False

    def under(self, root: str | Path) -> Path:
        """`root/seed<k>` when several seeds run, else `root` itself (today's layout)."""
        return Path(root) / f"seed{self.value}" if self.multi else Path(root)


def parse_seeds(value, default: int, key: str) -> list[int]:
    """`value` of params key `key` -> the seeds to run, in the given order.

    None or [] -> [default]. Raises ParamError naming `key` for anything but a list of
    distinct non-negative ints (a bare int is refused: `seeds: 3` reads as "three seeds").
    """
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return [default]
    if not isinstance(value, (list, tuple)):
        raise ParamError(f"{key}: {value!r} is not a list of seeds; {_HINT}")
    seen: set[int] = set()
    for v in value:
        if not _is_int(v):
            raise ParamError(f"{key}: {v!r} is not an integer seed; {_HINT}")
        if v < 0:
            raise ParamError(f"{key}: {v} is negative; {_HINT}")
        if v in seen:
            raise ParamError(f"{key}: seed {v} is listed twice; {_HINT}")
        seen.add(v)
    return list(value)


def seed_everything(seed: int) -> None:
    """Seed python's `random`, numpy's global generator and torch (CPU and every CUDA device)."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds all CUDA devices, lazily


def subsample(n: int, k: int, seed: int, salt: int):
    """k of n ids drawn without replacement with (seed, salt), sorted; None when k = 0 or
    k >= n (all). The LLM stages' CPU subsamples (training and evaluated users, samples): a
    salt per purpose keeps the draws independent of one another."""
    import numpy as np

    if not k or k >= n:
        return None
    return np.sort(np.random.default_rng([seed, salt]).choice(n, k, replace=False))
