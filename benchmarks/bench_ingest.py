"""Amazon 2018 review ingestion: recpipe's streaming reader vs a plain json.loads + pandas loop.

Builds a large `<Cat>_5.json.gz` by repeating a real one (default: the shared Gift Cards file
to >= 2 M lines), then runs each reader in its own subprocess and reports lines/s, CPU seconds
(user + system of the child), peak RSS (ru_maxrss of the child) and the 1-minute load average
after the run. Both readers end with the same table on disk as Parquet. Peak memory is also
measured at a quarter of the size, to show whether it grows with the file. On a shared
machine wall time is noisy: the readers alternate, the fastest run counts, and the CPU-time
ratio (less sensitive to other load) is printed beside the wall-time one.

    python benchmarks/bench_ingest.py                 # 2 M lines (about 3 minutes)
    python benchmarks/bench_ingest.py --lines 200000  # quick look
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, SHARED, make_file

DEFAULT_SRC = SHARED / "amazon2018_gift_cards" / "Gift_Cards_5.json.gz"


def run_recpipe(folder: str, out: str) -> None:
    from recpipe.data.ingest import ingest
    from recpipe.params import DatasetParams, IngestParams

    ingest(DatasetParams(format="amazon2018", path=folder), IngestParams(), Path(out))


def run_baseline(folder: str, out: str) -> None:
    import pandas as pd

    rows = []
    for path in sorted(Path(folder).glob("*_5.json.gz")):
        with gzip.open(path, "rt") as f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)
                rows.append(
                    {
                        "user": r.get("reviewerID"),
                        "item": r.get("asin"),
                        "rating": r.get("overall"),
                        "ts": r.get("unixReviewTime"),
                        "review": r.get("reviewText"),
                        "domain": path.name.split("_5")[0],
                    }
                )
    df = pd.DataFrame(rows)
    Path(out).mkdir(parents=True, exist_ok=True)
    df.to_parquet(Path(out) / "interactions.parquet")


def measure(kind: str, folder: Path, out: Path) -> tuple[float, float, float]:
    """Run one reader in a fresh process; return (seconds, CPU seconds, peak RSS in MiB)."""
    code = (
        f"import sys, time, resource; sys.path.insert(0, {str(ROOT / 'benchmarks')!r});"
        f"import bench_ingest as b; t = time.perf_counter();"
        f"b.run_{kind}({str(folder)!r}, {str(out)!r});"
        f"r = resource.getrusage(resource.RUSAGE_SELF);"
        f"print(time.perf_counter() - t, r.ru_utime + r.ru_stime, r.ru_maxrss)"
    )
    # cwd=ROOT: the checkout's recpipe, whatever is installed
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    secs, cpu, rss_kb = res.stdout.split()[-3:]
    return float(secs), float(cpu), int(rss_kb) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC)
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=2,
                    help="runs per reader, alternating; the fastest counts (less machine noise)")
    args = ap.parse_args()
    if not args.src.exists():
        sys.exit(f"source file {args.src} not found (needs ../shared/data beside the repo)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results = {}
        for label, n in (("quarter", args.lines // 4), ("full", args.lines)):
            folder = tmp / label
            folder.mkdir()
            make_file(args.src, folder / "Big_5.json.gz", n)
            mb = (folder / "Big_5.json.gz").stat().st_size / 2**20
            print(f"{label}: {n:,} lines, {mb:.0f} MiB gzipped", flush=True)
            kinds = ("recpipe", "baseline") if label == "full" else ("recpipe",)
            for _ in range(args.repeat):
                for kind in kinds:
                    secs, cpu, rss = measure(kind, folder, tmp / f"out-{kind}-{label}")
                    best = results.get((kind, label), (0.0, float("inf"), 0.0))
                    results[(kind, label)] = (max(best[0], n / secs), min(best[1], cpu), max(best[2], rss))
                    print(f"  {kind:9s} {n / secs:>12,.0f} lines/s  {secs:6.2f} s  CPU {cpu:6.2f} s  "
                          f"peak RSS {rss:6.0f} MiB  load {os.getloadavg()[0]:.2f}", flush=True)
        ours, base = results[("recpipe", "full")], results[("baseline", "full")]
        print(f"\nbest of {args.repeat}: recpipe {ours[0]:,.0f} lines/s, baseline {base[0]:,.0f} lines/s")
        print(f"speed-up vs json.loads + pandas: {ours[0] / base[0]:.2f}x wall time (target >= 5x), "
              f"{base[1] / ours[1]:.2f}x CPU time")
        print(f"peak RSS: recpipe {ours[2]:.0f} MiB vs baseline {base[2]:.0f} MiB")
        q = results[("recpipe", "quarter")][2]
        print(f"recpipe peak RSS at 1/4 size {q:.0f} MiB vs full size {ours[2]:.0f} MiB "
              f"(ratio {ours[2] / q:.2f}; 1.0 = does not grow with the file)")


if __name__ == "__main__":
    main()
