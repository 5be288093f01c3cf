"""Keep freed memory in the process instead of handing it back to the OS after every step.

Why: a graph training step allocates and frees a few (N, d) float tensors per layer. glibc
serves blocks above its mmap threshold with fresh `mmap` pages and returns freed heap tops to
the OS, so every step pays a page fault per 4 KiB touched; in a VM that made a LightGCN epoch
on the RLMRec Amazon-book split ~1.5x slower (0.61 s vs 0.38 s on 2 cores,
benchmarks/bench_graph.py). Raising the mmap and trim thresholds lets the heap keep those
blocks, so later steps reuse warm pages. Costs at most `trim` bytes of idle heap.

glibc only (Linux); elsewhere, or if libc cannot be loaded, it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# mallopt parameter numbers from glibc's malloc.h
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_done = False


def retain_freed_memory(mmap_threshold: int = 32 << 20, trim: int = 512 << 20,
                        top_pad: int = 64 << 20) -> bool:
    """Set glibc's malloc thresholds once per process; True when they were applied.

    32 MiB is the largest mmap threshold every 64-bit glibc accepts; blocks above it (graphs
    of ~250k nodes and more at d = 32) still come from mmap.
    """
    global _done
    if _done:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    # mallopt returns 1 on success; a fixed threshold also turns glibc's dynamic one off
    _done = all(libc.mallopt(k, v) == 1 for k, v in (
        (_M_MMAP_THRESHOLD, mmap_threshold), (_M_TRIM_THRESHOLD, trim), (_M_TOP_PAD, top_pad)))
    return _done
