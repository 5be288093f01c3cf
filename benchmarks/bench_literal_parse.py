"""Python-literal parsing speed: `recpipe.data.pyliteral` with one worker vs all cores.

Builds a large Python-2-literal file by repeating the real Steam games file (32,135 lines,
`../shared/data/steam_raw/steam_games.json.gz`) in a temporary folder, then streams it through
`iter_literal_chunks` once with `workers=1` and once with `workers=<all cores>`, each run in its
own subprocess so that the memory figures do not mix. Reports lines/s, the speed-up ratio and
peak RSS: of the main process alone and of the main process plus its pool workers (sampled
with psutil every 20 ms) and CPU seconds (main + workers, from getrusage). Records are counted
and dropped, so the numbers are the parser's (read + gunzip + literal_eval + pickling back to
the main process), not a reader's.

On a shared machine wall-clock speed-ups are only as good as the cores you actually get:
`--repeat R` alternates the two settings R times and keeps each one's best run, and the CPU
seconds show the pool's overhead independently of contention.

    python benchmarks/bench_literal_parse.py                  # 300,000 lines
    python benchmarks/bench_literal_parse.py --lines 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, SHARED, make_file

DEFAULT_SRC = SHARED / "steam_raw" / "steam_games.json.gz"


class PeakRss:
    """Background sampler of RSS: the process itself and the process plus all its children."""

    def __init__(self, every_s: float = 0.02):
        import psutil

        self.proc = psutil.Process()
        self.every_s = every_s
        self.main = self.total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                main = self.proc.memory_info().rss
                kids = sum(c.memory_info().rss for c in self.proc.children(recursive=True))
            except psutil.Error:  # a worker exited between listing and reading it
                continue
            self.main, self.total = max(self.main, main), max(self.total, main + kids)
            self._stop.wait(self.every_s)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def child(file: Path, workers: int, chunk_lines: int) -> dict:
    """One measured run (called in a fresh interpreter)."""
    from recpipe.data.pyliteral import iter_literal_chunks
    from recpipe.data.rejects import RejectLog

    rejects = RejectLog()
    with PeakRss() as rss:
        t0 = time.perf_counter()
        n_records = sum(len(r) for r in iter_literal_chunks(file, rejects, workers, chunk_lines))
        seconds = time.perf_counter() - t0
    # The pool has exited (and its workers were reaped) by now, so RUSAGE_CHILDREN holds them.
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime + u.ru_stime for u in usage)
    return {
        "workers": workers,
        "records": n_records,
        "rejects": len(rejects.rejects),
        "seconds": seconds,
        "cpu_s": cpu,
        "lines_per_s": sum(rejects.lines.values()) / seconds,
        "peak_rss_main_mb": rss.main / 2**20,
        "peak_rss_total_mb": rss.total / 2**20,
    }


def measure(file: Path, workers: int, chunk_lines: int) -> dict:
    cmd = [sys.executable, __file__, "--child", str(file), "--workers", str(workers),
           "--chunk-lines", str(chunk_lines)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=300_000, help="lines in the generated file")
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC, help="literal file to repeat")
    ap.add_argument("--chunk-lines", type=int, default=None, help="lines per pool task")
    ap.add_argument("--workers", type=int, default=None, help="the parallel run's workers")
    ap.add_argument("--repeat", type=int, default=1, help="alternate runs; keep each best")
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from recpipe.data.lines import default_workers
    from recpipe.data.pyliteral import CHUNK_LINES

    chunk = args.chunk_lines or CHUNK_LINES
    if args.child is not None:
        print(json.dumps(child(args.child, args.workers, chunk)))
        return
    if not args.src.is_file():
        sys.exit(f"source file {args.src} is missing (needs ../shared/data beside the repo)")
    all_cores = args.workers or default_workers(0)
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "steam_games_big.json.gz"
        n = make_file(args.src, file, args.lines)
        size = file.stat().st_size / 2**20
        print(f"file: {n:,} lines, {size:.1f} MiB gzip; chunk {chunk:,} lines", flush=True)
        best: dict[int, dict] = {}
        for _ in range(args.repeat):
            for w in (1, all_cores):
                r = measure(file, w, chunk)
                print(f"  run workers={w}: {r['lines_per_s']:,.0f} lines/s", flush=True)
                if w not in best or r["lines_per_s"] > best[w]["lines_per_s"]:
                    best[w] = r
    runs = [best[1], best[all_cores]]
    for r in runs:
        print(
            f"workers={r['workers']:>2}: {r['lines_per_s']:>9,.0f} lines/s  ({r['seconds']:.1f} s, "
            f"{r['records']:,} records, {r['cpu_s']:.1f} CPU s)  peak RSS main "
            f"{r['peak_rss_main_mb']:.0f} MiB, main+workers {r['peak_rss_total_mb']:.0f} MiB"
        )
    ratio = runs[1]["lines_per_s"] / runs[0]["lines_per_s"]
    print(f"speed-up workers={all_cores} vs 1: {ratio:.2f}x")


if __name__ == "__main__":
    main()
