"""recpipe.train.seeds: one source for the run's seed, one function seeding the globals."""

from __future__ import annotations

import random

import numpy as np
import pytest

from recpipe.config import ParamError
from recpipe.train.seeds import DEFAULT_SEED, seed_everything, top_seed


def test_top_seed_is_the_one_source():
    assert top_seed({"seed": 7}) == 7
    assert top_seed({}) == DEFAULT_SEED == 2023
    for bad in ("7", 1.5, True):
        with pytest.raises(ParamError, match="seed: .* is not an integer"):
            top_seed({"seed": bad})


def test_seed_everything_repeats_python_numpy_and_torch():
    import torch

    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    seed_everything(11)
    a = draws()
    seed_everything(11)
    assert draws() == a
    seed_everything(12)
    assert draws() != a


def test_every_stage_reads_the_seed_through_top_seed():
    """The stages used to read it four ways, with defaults 0 and 2023."""
    from conftest import ROOT

    for stage in sorted((ROOT / "stages").glob("*.py")):
        text = stage.read_text()
        assert 'get("seed"' not in text, f"{stage.name} reads the seed itself; use top_seed"
