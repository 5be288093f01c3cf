"""A per-line Python parser (e.g. `ast.literal_eval` for Steam and Amazon 2014 meta) run over
chunks in a process pool, results in file order; the slow parsers need every core."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

from recpipe.data.lines.chunks import iter_chunks


def default_workers(workers: int = 0) -> int:
    return workers if workers > 0 else max(1, len(os.sched_getaffinity(0)))


def map_chunks(
    fn: Callable[[list[int], list[bytes]], object],
    path: str | Path,
    workers: int = 0,
    chunk_lines: int = 50_000,
) -> Iterator[object]:
    """Apply `fn(nums, lines)` to every chunk of `path`, in order, in `workers` processes.

    `fn` must be a module-level function (picklable). With one worker no pool is started.
    """
    workers = default_workers(workers)
    chunks = iter_chunks(path, chunk_lines)
    if workers == 1:
        for nums, lines in chunks:
            yield fn(nums, lines)
        return
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: polars (and later torch) hold thread pools that fork can deadlock.
    # ProcessPoolExecutor, not Pool: a worker that dies (OOM kill) raises BrokenProcessPool
    # here instead of hanging forever on a lost task.
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        # a bounded window of chunks in flight, so neither input nor results pile up
        window: deque = deque()
        for nums, lines in chunks:
            window.append(pool.submit(fn, nums, lines))
            if len(window) >= 2 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
