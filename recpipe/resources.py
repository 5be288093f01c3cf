"""One line per stage run: its wall time and peak memory, for the grid's collector.

Every stage script ends with `sys.exit(report("graph", main))`. On exit, whatever the status,
it prints to stderr

    recpipe-resources: stage=graph rc=0 wall_s=12.3 peak_rss_mib=456 peak_gpu_mib=0

`peak_rss_mib` is the larger of this process's and its waited-for children's peak resident
set (an `accelerate launch` stage's workers are children); `peak_gpu_mib` is torch's peak
allocated CUDA memory when the stage used CUDA, else 0. The line goes to the stage's log,
which `dvc queue logs` keeps for every queued experiment, so `recpipe grid collect` reads it
for each cell (recpipe/grid/collect.py) without timing anything itself. Timings stay out of
the metrics files: the same seed gives the same metrics.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable

PREFIX = "recpipe-resources:"
LINE = re.compile(PREFIX + r" stage=(?P<stage>\S+) rc=(?P<rc>-?\d+) wall_s=(?P<wall>[\d.]+) "
                  r"peak_rss_mib=(?P<rss>\d+) peak_gpu_mib=(?P<gpu>\d+)")


def peak_rss_mib() -> int:
    import resource

    kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KiB on Linux
    return int(kib // 1024) if sys.platform != "darwin" else int(kib // 2**20)  # macOS: bytes


def peak_gpu_mib() -> int:
    torch = sys.modules.get("torch")  # never import torch just to ask
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return 0
    return int(torch.cuda.max_memory_allocated() // 2**20)


def report(stage: str, main: Callable[[], int]) -> int:
    """Run `main()` and print the stage's resource line, also when it raises."""
    t0, rc = time.perf_counter(), 1
    try:
        rc = main()
        return rc
    except SystemExit as e:  # argparse's exits keep their code
        rc = e.code if isinstance(e.code, int) else 1
        raise
    finally:
        if _reports():
            print(f"{PREFIX} stage={stage} rc={rc} wall_s={time.perf_counter() - t0:.1f} "
                  f"peak_rss_mib={peak_rss_mib()} peak_gpu_mib={peak_gpu_mib()}",
                  file=sys.stderr, flush=True)


def _reports() -> bool:
    """One line per stage run: not from a relaunched stage's processes (the process that
    started them reports, its children's peak included), nor from a launcher's process other
    than 0."""
    import os

    return "RECPIPE_RELAUNCHED" not in os.environ and os.environ.get("RANK", "0") == "0"


def parse(log: str) -> list[dict]:
    """Every resource line of a log: [{stage, rc, wall_s, peak_rss_mib, peak_gpu_mib}]."""
    return [{"stage": m["stage"], "rc": int(m["rc"]), "wall_s": float(m["wall"]),
             "peak_rss_mib": int(m["rss"]), "peak_gpu_mib": int(m["gpu"])}
            for m in LINE.finditer(log)]
