"""Benchmark of the graph backbones: seconds per training epoch and per full validation pass.

    python benchmarks/bench_graph.py                       # LightGCN, parity, RLMRec Amazon-book
    python benchmarks/bench_graph.py --models all --epochs 7 --device cuda

The workload of issue #6's speed target: RLMRec's Amazon-book release (../shared/data/rlmrec/
amazon, 11,000 users x 9,332 items, 120,464 training pairs; `--processed DIR` takes an already
processed split instead), `graph.mode=parity`, `align=none` (or `--align`), the Amazon
preset, batch 4096 (30 steps an epoch), the `rlmrec` evaluation preset. Each model trains
`--epochs` epochs with a validation pass every 3rd; the trainer records each epoch's and each
pass's wall time, and the median is reported (the first epoch warms caches and is dropped).
The official code's figures (1.7 s an epoch, 1.9 s a pass, LightGCN on 2 CPU cores) come
from the issue. `--official DIR` (a checkout of HKUDS/RLMRec with its Amazon data, see
benchmarks/official_rlmrec.py) runs that code unchanged beside ours, one epoch each in turn
(official epoch k right after ours), and reports the ratio measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import SHARED  # noqa: E402

OFFICIAL = {"epoch_s": 1.7, "eval_s": 1.9}  # HKUDS/RLMRec LightGCN, --device cpu, 2 cores


def processed_release(tmp: Path) -> Path:
    from recpipe.config import parse
    from recpipe.data.ingest import ingest
    from recpipe.data.processed import build
    from recpipe.params import DatasetParams, IngestParams, SplitParams

    src = SHARED / "rlmrec" / "amazon"
    if not src.exists():
        sys.exit(f"{src} is missing: pass --processed DIR (a processed split) instead")
    ingest(parse(DatasetParams, {"format": "rlmrec", "path": str(src)}, prefix="dataset"),
           IngestParams(), tmp / "interim")
    build(tmp / "interim", tmp / "processed", parse(SplitParams, {"protocol": "rlmrec"}, prefix="split"), 2023)
    return tmp / "processed"


class _Turns:
    """Stands in for dvclive in the trainer: after each of our epochs, one official epoch."""

    def __init__(self, official):
        self.official = official

    def log_metric(self, *_):
        pass

    def next_step(self):
        self.official.epoch()


def bench(model: str, align: str, data, epochs: int, device: str, sem, official=None) -> dict:
    from recpipe.eval.protocol import resolve
    from recpipe.graph.run import fit
    from recpipe.train.loop import TrainConfig

    t0 = time.perf_counter()
    res = fit(model, align, data, sem, TrainConfig(epochs=epochs, patience=0),
              resolve({"preset": "rlmrec"}), 2023, mode="parity", device=device, progress=False,
              live=_Turns(official) if official else None)
    ep = [h["epoch_s"] for h in res["history"][1:]]
    ev = [h["eval_s"] for h in res["history"] if "eval_s" in h]
    row = {"model": model, "align": align, "device": device, "epoch_s": statistics.median(ep),
           "eval_s": statistics.median(ev), "epochs": epochs, "wall_s": time.perf_counter() - t0,
           "valid_recall@20": res["valid"].summary["recall@20"]}
    if official:
        o = official.rows
        row.update(official_epoch_s=statistics.median(r["epoch_s"] for r in o[1:]),
                   official_eval_s=statistics.median(r["eval_s"] for r in o if "eval_s" in r),
                   official_valid_recall20=[r["recall20"] for r in o if "recall20" in r][-1])
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processed", type=Path, help="a processed split (default: the RLMRec release)")
    ap.add_argument("--models", default="lightgcn", help="comma list or 'all'")
    ap.add_argument("--align", default="none", choices=["none", "con", "gen"])
    ap.add_argument("--epochs", type=int, default=7)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--official", type=Path, help="HKUDS/RLMRec checkout: time its LightGCN beside ours")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()

    import numpy as np
    import torch

    from recpipe.eval.data import load_split
    from recpipe.graph import BACKBONES

    if args.threads:
        torch.set_num_threads(args.threads)
    models = sorted(BACKBONES) if args.models == "all" else args.models.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        data = load_split(args.processed or processed_release(Path(tmp)))
    rng = np.random.default_rng(0)  # the release has 1536-d ada-002 vectors; any width times the same
    sem = (rng.normal(size=(data.n_users, 1536)).astype(np.float32),
           rng.normal(size=(data.n_items, 1536)).astype(np.float32))
    print(f"{data.n_users:,} users x {data.n_items:,} items, {data.train.nnz:,} training pairs; "
          f"device {args.device}, torch threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}")
    rows = []
    for model in models:
        official = None
        if args.official and model == "lightgcn" and args.align == "none" and args.device == "cpu":
            from benchmarks.official_rlmrec import Official

            official = Official(args.official, threads=args.threads)
        try:
            r = bench(model, args.align, data, args.epochs, args.device, sem, official)
        finally:
            if official:
                official.close()
        rows.append(r)
        extra = ""
        if official:
            extra = (f"\n{'official':9s} {args.align:4s} epoch {r['official_epoch_s']:.3f} s  validation pass "
                     f"{r['official_eval_s']:.3f} s  (valid R@20 after {args.epochs} epochs "
                     f"{r['official_valid_recall20']:.4f})\n  ratio, same run: epoch "
                     f"{r['official_epoch_s'] / r['epoch_s']:.1f}x, validation pass "
                     f"{r['official_eval_s'] / r['eval_s']:.1f}x faster than the official code")
        elif model == "lightgcn" and args.align == "none":
            extra = (f"  (issue's official CPU figures: {OFFICIAL['epoch_s'] / r['epoch_s']:.1f}x / "
                     f"{OFFICIAL['eval_s'] / r['eval_s']:.1f}x faster)")
        print(f"{model:9s} {args.align:4s} epoch {r['epoch_s']:.3f} s  validation pass {r['eval_s']:.3f} s"
              f"  (valid R@20 after {args.epochs} epochs {r['valid_recall@20']:.4f}){extra}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
