"""RLMRec's grid: backbones x {none, con, gen} x seeds on one processed split, as one table.

    python benchmarks/rlmrec_grid.py                                  # 18 runs, seed 2023
    python benchmarks/rlmrec_grid.py --models lightgcn --seeds 2023 2024 2025 --jobs 2

Each run is what `dvc exp run -S graph.model=M -S graph.align=A -S seed=S` computes (the same
`recpipe.graph.run.fit`, preset, selection on validation, one test at the best state), run in a
process pool so a many-core or GPU machine does the grid at once. Reads data/processed and
the embed stage's profile embeddings; writes a Markdown table (mean ± std over seeds, test
Recall/NDCG @5/10/20) to `--out` and every run's numbers to `--json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEYS = ["recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "ndcg@20"]


def one(job: dict) -> dict:
    import numpy as np
    import torch

    from recpipe.eval.data import load_split
    from recpipe.eval.protocol import resolve
    from recpipe.graph.run import fit
    from recpipe.train.loop import TrainConfig

    torch.set_num_threads(job["threads"])
    data = load_split(job["processed"])
    emb = Path(job["embeddings"])
    sem = (None, None)
    if job["align"] != "none":
        sem = tuple(np.load(emb / f"{s}_profile.npy") for s in ("user", "item"))
        if job["shuffle"]:  # control: the same vectors, attached to the wrong users/items
            rng = np.random.default_rng(job["seed"])
            sem = tuple(x[rng.permutation(len(x))] for x in sem)
    t0 = time.perf_counter()
    res = fit(job["model"], job["align"], data, sem, TrainConfig(**job["train"]),
              resolve({"preset": job["preset"]}), job["seed"], mode=job["mode"], device=job["device"],
              overrides=job["overrides"], progress=False)
    row = {k: job[k] for k in ("model", "align", "seed", "mode", "preset")}
    row.update({f"test/{k}": res["test"].summary[k] for k in KEYS})
    row.update({f"valid/{k}": res["valid"].summary[k] for k in KEYS})
    row.update(best_epoch=res["best_epoch"], seconds=time.perf_counter() - t0)
    print(f"{row['model']:9s} {row['align']:4s} seed {row['seed']}: test R@20 {row['test/recall@20']:.4f} "
          f"N@20 {row['test/ndcg@20']:.4f} (valid R@20 {row['valid/recall@20']:.4f}, epoch "
          f"{row['best_epoch']}, {row['seconds']:.0f} s)", flush=True)
    return row


def table(rows: list[dict], title: str) -> str:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["align"]), []).append(r)
    out = [f"## {title}", "", "| model | align | seeds | " + " | ".join(f"test {k}" for k in KEYS) +
           " | valid recall@20 | best epoch |", "|" + "---|" * (len(KEYS) + 5)]
    for (model, align), rs in groups.items():
        def cell(key):
            v = [r[key] for r in rs]
            return f"{statistics.mean(v):.4f}" + (f" ± {statistics.stdev(v):.4f}" if len(v) > 1 else "")
        epochs = "/".join(str(r["best_epoch"]) for r in rs)
        out.append(f"| {model} | {align} | {len(rs)} | " + " | ".join(cell(f"test/{k}") for k in KEYS) +
                   f" | {cell('valid/recall@20')} | {epochs} |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processed", default="data/processed")
    ap.add_argument("--embeddings", default="models/embeddings")
    ap.add_argument("--models", default="all", help="comma list or 'all'")
    ap.add_argument("--aligns", default="none,con,gen")
    ap.add_argument("--seeds", type=int, nargs="+", default=[2023])
    ap.add_argument("--mode", default="clean", choices=["clean", "parity"])
    ap.add_argument("--preset", default="unified", help="eval preset")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (each with --threads threads)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=3000)
    ap.add_argument("--patience", type=int, default=5, help="validation checks without gain before stopping")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a backbone/alignment key in every run (YAML value), e.g. kd_weight=0.1; "
                         "clean mode only (parity runs the official values)")
    ap.add_argument("--shuffle-semantic", action="store_true",
                    help="control run: permute the semantic rows so they describe other users/items")
    ap.add_argument("--out", type=Path, default=Path("reports/rlmrec_grid.md"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import yaml

    from recpipe.graph import BACKBONES

    if args.set and args.mode == "parity":
        ap.error("--set changes the official values that --mode parity runs; use --mode clean")
    overrides = {}
    for kv in args.set:
        key, sep, value = kv.partition("=")
        if not sep:
            ap.error(f"--set {kv!r}: expected KEY=VALUE")
        overrides[key] = yaml.safe_load(value)

    models = sorted(BACKBONES) if args.models == "all" else args.models.split(",")
    jobs = [{"model": m, "align": a, "seed": s, "mode": args.mode, "preset": args.preset,
             "device": args.device, "threads": args.threads, "processed": args.processed,
             "embeddings": args.embeddings, "train": {"epochs": args.epochs, "patience": args.patience}, "overrides": overrides,
             "shuffle": args.shuffle_semantic}
            for m in models for a in args.aligns.split(",") for s in args.seeds]
    t0 = time.perf_counter()
    print(f"{len(jobs)} runs, {args.jobs} at a time, device {args.device}, load {os.getloadavg()[0]:.1f}")
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as ex:
            rows = list(ex.map(one, jobs))
    else:
        rows = [one(j) for j in jobs]
    title = (f"{args.mode} mode, `{args.preset}` preset, {args.processed}, seeds "
             f"{', '.join(map(str, args.seeds))}{'; ' + ' '.join(args.set) if args.set else ''}"
             f"{'; semantic rows SHUFFLED' if args.shuffle_semantic else ''}"
             f"{f'; patience {args.patience}' if args.patience != 5 else ''}"
             f" ({time.perf_counter() - t0:.0f} s on {args.device})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table(rows, title))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
