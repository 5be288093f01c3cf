"""Start a stage on several processes: the one switch between 1 process and data parallel.

    rc = launch(processes, "stages/hellm.py", argv)   # None: already inside a launcher, or 1
    recpipe launch -n 2 stages/hellm.py --params params.yaml

With `processes` > 1 and no launcher around (no LOCAL_RANK in the environment), the script is
run again under torchrun (`python -m torch.distributed.run --standalone`), one process per
device, and its exit code returned; each process then trains through
recpipe.train.backend.DistBackend (gloo on CPUs, NCCL on GPUs). Started by torchrun or
`accelerate launch` already, it returns None and the stage goes on. Multi-node runs use either
launcher directly with its own rendezvous flags; the stages need nothing else.

The LLM stages (hellm, hum, cllm4rec_pretrain, cllm4rec_finetune) take the switch from their
section's `processes` key through `relaunch`. Under a launcher every process trains (DDP
averages the gradients); process 0 alone validates, evaluates and writes the outputs, and the
others (`is_worker()`) write nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import nullcontext

RELAUNCHED = "RECPIPE_RELAUNCHED"


def inside_launcher() -> bool:
    return "LOCAL_RANK" in os.environ


def command(processes: int, script: str, argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={processes}", script, *argv]


def launch(processes: int, script: str, argv: list[str]) -> int | None:
    """Run `script argv` on `processes` processes and return its exit code; None when this
    process should simply go on (one process, or started by a launcher already)."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    if processes == 1 or inside_launcher():
        return None
    env = dict(os.environ)
    # torchrun sets 1 thread per process when unset; keep the cores shared out, not oversubscribed
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    env[RELAUNCHED] = "1"  # this process reports the stage's resources; its children do not
    return subprocess.run(command(processes, script, argv), env=env).returncode


def is_worker() -> bool:
    """A launcher's process other than 0: it trains alongside, and leaves validation, test
    evaluation, curves and every file to process 0."""
    return int(os.environ.get("RANK", "0")) != 0


def relaunch(processes: int, script: str, argv: list[str] | None) -> int | None:
    """A stage's switch (`<section>.processes`): its exit code after running on `processes`
    processes, or None when this process should run the stage itself. `argv` None means the
    command line the stage was started with."""
    return launch(processes, script, sys.argv[1:] if argv is None else list(argv))


def stage_live(folder):
    """The stage's dvclive logger on process 0; an empty context (None) on the others, so no
    two processes write one curve folder."""
    if is_worker():
        return nullcontext()
    from dvclive import Live

    return Live(str(folder), dvcyaml=None, save_dvc_exp=False, report=None)
