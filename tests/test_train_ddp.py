"""Data-parallel training through the one loop: 2 gloo processes on a CPU, started by
`recpipe launch`, train tiny-llama (LoRA + ID-token rows) to the same losses and weights as one
process with twice the gradient accumulation (examples/ddp_lm.py does the training)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "ddp_lm.py"


def _run(out: Path, grad_accum: int, processes: int = 1) -> tuple[dict, dict]:
    from safetensors.torch import load_file

    cmd = [sys.executable, str(SCRIPT), str(out), str(grad_accum)]
    if processes > 1:
        cmd = [sys.executable, "-m", "recpipe.cli", "launch", "-n", str(processes), *cmd[1:]]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((out / "fit.json").read_text()), load_file(str(out / "trained.safetensors"))


def test_two_processes_match_one_with_doubled_accumulation(tmp_path):
    import torch

    one, w_one = _run(tmp_path / "one", grad_accum=2)
    two, w_two = _run(tmp_path / "two", grad_accum=1, processes=2)
    plain, w_plain = _run(tmp_path / "plain", grad_accum=1)
    assert (one["world"], two["world"]) == (1, 2)
    assert one["steps"] == two["steps"] == 8 and plain["steps"] == 16
    assert one["losses"] == pytest.approx(two["losses"], rel=1e-5)
    assert set(w_one) == set(w_two) and any("lora_B" in k for k in w_one)
    assert any("token_adapter" in k or "trainable_tokens" in k for k in w_one), list(w_one)[:5]
    for k in w_one:  # SGD: equal weights after 8 steps = equal summed gradients
        assert torch.allclose(w_one[k], w_two[k], atol=1e-5), k
    # and the comparison can fail: one process without the doubled accumulation ends elsewhere
    assert not all(torch.allclose(w_one[k], w_plain[k], atol=1e-5) for k in w_one)


def test_launch_runs_in_place_for_one_process_or_inside_a_launcher(monkeypatch):
    from recpipe.llm.launch import command, launch

    assert launch(1, "x.py", []) is None
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert launch(4, "x.py", []) is None  # torchrun / accelerate launch started us already
    assert command(2, "s.py", ["a"])[1:5] == ["-m", "torch.distributed.run", "--standalone",
                                              "--nproc_per_node=2"]
    with pytest.raises(ValueError, match="processes must be >= 1"):
        launch(0, "x.py", [])
