"""The LLM stages' own multi-process switch (`<section>.processes`, recpipe/llm/launch.py).

Each stage is started as DVC starts it, `python stages/<stage>.py ...`, with processes 2: it
runs itself again under torchrun, two gloo processes train data-parallel, process 0 alone
evaluates and writes. Two processes with batch b equal one process with grad_accum 2 (the
loop's DDP test), so the stage's metrics must match that one-process run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_cllm4rec import stage_args as cllm4rec_args
from tests.test_hellm import outs, stage_files
from tests.test_hum import stage_args as hum_args
from tests.test_hum import temporal  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_stage(name: str, args: list[str], accelerate: str = "") -> subprocess.CompletedProcess:
    """`python stages/<name>.py args`, or under `accelerate launch --config_file <accelerate>`."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    for k in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "RECPIPE_RELAUNCHED"):
        env.pop(k, None)
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                accelerate] if accelerate else [sys.executable]
    res = subprocess.run([*launcher, f"stages/{name}.py", *args], capture_output=True,
                         text=True, env=env, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def set_params(path: Path, section: str, **keys) -> None:
    """Update params.yaml's `section` (a dotted key reaches a subsection) in place."""
    params = yaml.safe_load(path.read_text())
    for key, value in keys.items():
        d = params[section]
        *parents, last = key.split(".")
        for k in parents:
            d = d[k]
        d[last] = value
    path.write_text(yaml.safe_dump(params))


def one_resource_line(res) -> dict:
    from recpipe.resources import parse

    lines = parse(res.stderr)
    assert len(lines) == 1, res.stderr[-2000:]  # the children do not report a second time
    return lines[0]


def same_metrics(a: dict, b: dict, keys: list[str], rel: float = 1e-4) -> None:
    assert a["steps"] == b["steps"] > 0
    for k in keys:
        assert a[k] == pytest.approx(b[k], rel=rel, abs=1e-6), k


def losses(plots: Path) -> list[float]:
    rows = (plots / "plots" / "metrics" / "train" / "loss.tsv").read_text().split()[2::2]
    return [float(x) for x in rows]


def test_hum_on_two_processes_matches_one_with_doubled_accumulation(temporal, tmp_path):  # noqa: F811
    processed, _ = temporal
    # the reference's scoring (raw dot products): the tiny random model's centred cosines are
    # near-ties, so float-order differences between all-reduce and accumulation reorder
    # them; test_hum's launcher test checks the centred cosine's training under 2 processes
    args = hum_args(tmp_path, processed, "two", lora={"dropout": 0.0}, score="dot",
                    temperature=1.0, center="none")
    params = tmp_path / "params.yaml"
    set_params(params, "hum", processes=2)
    res = run_stage("hum", args)
    assert one_resource_line(res)["stage"] == "hum"
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert (tmp_path / "two" / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "two" / "hparams.json").is_file() and (tmp_path / "two.json").is_file()
    set_params(params, "hum", processes=1, **{"train.grad_accum": 2})
    run_stage("hum", args[:-6] + ["--out", str(tmp_path / "one"), "--metrics",
                                  str(tmp_path / "one.json"), "--plots", str(tmp_path / "p1")])
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert two["steps"] == 6  # 48 samples / (2 processes x 8) x 2 epochs
    same_metrics(one, two, ["test/recall@10", "test/ndcg@10", "valid/recall@10"])
    weights = [k for k in one if k.startswith("domain_weight/")]
    same_metrics(one, two, weights)


def test_hellm_under_accelerate_launch_writes_once(small_processed, tmp_path):
    """The README's accelerate config (one machine, 2 processes; gloo here): the stage finds
    itself inside a launcher and runs, process 0 writing. (HUM and CLLM4Rec above and below
    check the two-process result against one process; this one keeps CI under its cap.)"""
    from accelerate.commands.config.config_args import load_config_from_file

    from recpipe.data.view import load_view

    n_items = load_view(small_processed).n_items
    base = stage_files(tmp_path, small_processed, n_items)
    config = ROOT / "examples" / "accelerate" / "one_node.yaml"
    res = run_stage("hellm", base + outs(tmp_path, "two"), accelerate=str(config))
    assert one_resource_line(res)["stage"] == "hellm"
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert (tmp_path / "two" / "trainable.safetensors").is_file()
    assert (tmp_path / "two" / "adapter" / "adapter_model.safetensors").is_file()
    assert two["steps"] > 0 and 0 <= two["test/recall@20"] <= 1 and two["test/units"] <= 30
    assert len(losses(tmp_path / "plots_two")) == 2  # one curve, written by process 0
    # the multi-node example is a config accelerate reads: 2 machines, GPUs, one rendezvous
    nodes = load_config_from_file(str(config.with_name("two_nodes.yaml")))
    assert (nodes.num_machines, nodes.num_processes, nodes.use_cpu) == (2, 16, False)
    assert nodes.main_process_ip and nodes.main_process_port


def test_cllm4rec_stages_on_two_processes_match_one_with_doubled_accumulation(small_processed,
                                                                              tmp_path):
    """Both stages; a warm-up epoch is shorter than the alternating ones, and every process
    must split each epoch's own batches. Batch 5 makes every epoch's count even (30 users,
    147 documents), so two processes drop no tail that one process trains; tiny-llama has no
    dropout."""
    params = tmp_path / "params.yaml"
    for name, processes, accum in (("two", 2, 1), ("one", 1, 2)):
        pre, fine = cllm4rec_args(tmp_path, small_processed, name, model="tiny-llama",
                                  processes=processes)
        set_params(params, "cllm4rec", **{f"{ph}.train.{k}": v for ph in ("pretrain", "finetune")
                                          for k, v in (("batch_size", 5), ("grad_accum", accum))})
        assert one_resource_line(run_stage("cllm4rec_pretrain", pre))["stage"] == "cllm4rec_pretrain"
        assert one_resource_line(run_stage("cllm4rec_finetune", fine))["stage"] == "cllm4rec_finetune"
    one_pre, two_pre, one, two = (json.loads((tmp_path / n / "metrics.json").read_text())
                                  for n in ("one_pre", "two_pre", "one", "two"))
    assert two_pre["documents"] == 147 and two_pre["steps"] == one_pre["steps"] == 33  # 15+18 x 2
    assert one_pre["train/loss"] == pytest.approx(two_pre["train/loss"], rel=1e-4)
    same_metrics(one, two, ["test/recall@20", "test/ndcg@20", "valid/recall@40"], rel=2e-2)
