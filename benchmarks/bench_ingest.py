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

`--format amazon2023` does the same for an Amazon Reviews 2023 `<Category>.jsonl.gz` built by
repeating the review lines of the shared multi-category sample (millisecond `timestamp` and
`parent_asin` for the baseline too); `--folder DIR` first times the reader on DIR as it is (the
real 23-category sample by default: reviews plus meta of every category):

    python benchmarks/bench_ingest.py --format amazon2023 --lines 1000000
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
MULTICAT_2023 = SHARED / "amazon2023_multicat_sample"
# per format: the big file's name, and the baseline's per-line mapping to the canonical columns
BIG_FILE = {"amazon2018": "Big_5.json.gz", "amazon2023": "Big.jsonl.gz"}


def run_recpipe(folder: str, out: str, fmt: str = "amazon2018") -> None:
    from recpipe.data.ingest import ingest
    from recpipe.params import DatasetParams, IngestParams

    ingest(DatasetParams(format=fmt, path=folder), IngestParams(), Path(out))


def _row_2023(r: dict, domain: str) -> dict:
    ts = r.get("timestamp")
    return {
        "user": r.get("user_id"),
        "item": r.get("parent_asin") or r.get("asin"),
        "rating": r.get("rating"),
        "ts": ts // 1000 if isinstance(ts, int) else None,
        "review": r.get("text"),
        "domain": domain,
    }


def run_baseline(folder: str, out: str, fmt: str = "amazon2018") -> None:
    import pandas as pd

    if fmt == "amazon2023":
        rows = []
        for path in sorted(Path(folder).glob("[A-Z]*.jsonl.gz")):
            with gzip.open(path, "rt") as f:
                rows += [_row_2023(json.loads(line), path.name.split(".")[0])
                         for line in f if line.strip()]
        Path(out).mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_parquet(Path(out) / "interactions.parquet")
        return
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


def measure(kind: str, folder: Path, out: Path, fmt: str = "amazon2018") -> tuple[float, float, float]:
    """Run one reader in a fresh process; return (seconds, CPU seconds, peak RSS in MiB)."""
    code = (
        f"import sys, time, resource; sys.path.insert(0, {str(ROOT / 'benchmarks')!r});"
        f"import bench_ingest as b; t = time.perf_counter();"
        f"b.run_{kind}({str(folder)!r}, {str(out)!r}, {fmt!r});"
        f"r = resource.getrusage(resource.RUSAGE_SELF);"
        f"print(time.perf_counter() - t, r.ru_utime + r.ru_stime, r.ru_maxrss)"
    )
    # cwd=ROOT: the checkout's recpipe, whatever is installed
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    secs, cpu, rss_kb = res.stdout.split()[-3:]
    return float(secs), float(cpu), int(rss_kb) / 1024


def reviews_2023_gz(folder: Path, dst: Path) -> Path:
    """Every review line of a 2023 folder (`<Category>.jsonl[.gz]`, not meta) in one gzip file,
    the source `make_file` repeats."""
    lines = []
    for path in sorted(folder.glob("[A-Z]*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            lines += [ln.rstrip(b"\n") for ln in f if ln.strip()]
    with gzip.open(dst, "wb", compresslevel=1) as f:
        f.write(b"\n".join(lines) + b"\n")
    return dst


def time_folder(folder: Path, fmt: str, repeat: int, tmp: Path) -> None:
    """The reader on a real folder as it is: every file, meta included (best of `repeat`)."""
    import polars as pl

    best = (float("inf"), float("inf"), 0.0)
    for k in range(repeat):
        secs, cpu, rss = measure("recpipe", folder, tmp / f"out-folder-{k}", fmt)
        best = (min(best[0], secs), min(best[1], cpu), max(best[2], rss))
    n = pl.scan_parquet(tmp / "out-folder-0" / "interactions.parquet").select(pl.len()).collect().item()
    print(f"{folder} ({fmt}): {n:,} interactions, best of {repeat}: {best[0]:.2f} s "
          f"(CPU {best[1]:.2f} s, process start and imports included), {n / best[0]:,.0f} "
          f"interactions/s, peak RSS {best[2]:.0f} MiB", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--format", default="amazon2018", choices=sorted(BIG_FILE))
    ap.add_argument("--src", type=Path, default=None,
                    help="file whose lines are repeated (amazon2018: a <Cat>_5.json.gz) or, for "
                         "amazon2023, a folder of <Category>.jsonl[.gz] review files")
    ap.add_argument("--folder", type=Path, default=None,
                    help="also time the reader on this folder as it is (amazon2023 default: the "
                         "shared multi-category sample)")
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=2,
                    help="runs per reader, alternating; the fastest counts (less machine noise)")
    args = ap.parse_args()
    fmt = args.format
    src = args.src or (DEFAULT_SRC if fmt == "amazon2018" else MULTICAT_2023)
    if not src.exists():
        sys.exit(f"source {src} not found (needs ../shared/data beside the repo)")
    folder_as_is = args.folder or (MULTICAT_2023 if fmt == "amazon2023" else None)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if folder_as_is is not None:
            time_folder(folder_as_is, fmt, max(args.repeat, 3), tmp)
        if fmt == "amazon2023":
            src = reviews_2023_gz(src, tmp / "source.jsonl.gz") if src.is_dir() else src
        big = BIG_FILE[fmt]
        results = {}
        for label, n in (("quarter", args.lines // 4), ("full", args.lines)):
            folder = tmp / label
            folder.mkdir()
            make_file(src, folder / big, n)
            mb = (folder / big).stat().st_size / 2**20
            print(f"{label}: {n:,} lines, {mb:.0f} MiB gzipped", flush=True)
            kinds = ("recpipe", "baseline") if label == "full" else ("recpipe",)
            for _ in range(args.repeat):
                for kind in kinds:
                    secs, cpu, rss = measure(kind, folder, tmp / f"out-{kind}-{label}", fmt)
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
