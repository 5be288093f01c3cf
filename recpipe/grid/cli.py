"""`recpipe grid plan | queue | collect`: the leaderboard grid from the command line.

    recpipe grid plan                        # the cells, and why the n/a ones do not apply
    recpipe grid queue && dvc queue start -j 2
    recpipe grid collect                     # reports/leaderboard_all.md, PNGs, grid_cells.json

Defaults: the CPU grid (datasets sample and giftcards, every method, seeds 1 2 3, data under
../shared/data). `queue` skips a cell whose experiment already exists (done, queued or
running), so queuing again after adding a seed or a method queues only the new cells;
`--retry-failed` removes failed ones first and queues them again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CPU_DATASETS = ["sample", "giftcards"]


def add_parser(sub) -> None:
    from recpipe.grid.plan import DATASETS, METHODS

    p = sub.add_parser("grid", help="the leaderboard grid as DVC experiments (plan, queue, collect)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["plan", "queue", "collect"])
    p.add_argument("--datasets", nargs="+", default=CPU_DATASETS, metavar="D",
                   help=f"default: {' '.join(CPU_DATASETS)}; any of {', '.join(DATASETS)}")
    p.add_argument("--methods", nargs="+", default=list(METHODS), metavar="M",
                   help="default: every method (see `recpipe grid plan`)")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--data-root", default="../shared/data",
                   help="the folder holding the public datasets (default ../shared/data)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="-S values added to every cell (a smaller scale, a device)")
    p.add_argument("--retry-failed", action="store_true", help="queue: requeue failed cells")
    p.add_argument("--dry-run", action="store_true", help="queue: print the commands only")
    p.add_argument("--out", default="reports", help="collect: the output folder")
    p.add_argument("--commits", type=int, default=1, metavar="N",
                   help="collect: read the experiments of the last N commits, each cell's newest "
                        "(a grid whose queues spanned code commits); default 1, HEAD's only")
    p.set_defaults(fn=run)


def _states() -> dict[str, str]:
    from recpipe.grid.collect import experiments

    res = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"dvc exp show failed: {res.stderr.strip()}")
    return {n: e["state"] for n, e in experiments(json.loads(res.stdout)).items()}


def missing_outputs() -> list[str]:
    """Outputs dvc.lock records that the cache does not hold. A queued experiment saves every
    output of the lock when it ends, so it fails on them (a fresh clone without `dvc repro` or
    `dvc pull`)."""
    res = subprocess.run(["dvc", "status", "--json"], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"dvc status failed: {res.stderr.strip()}")
    out = []
    for entries in json.loads(res.stdout or "{}").values():
        for e in entries if isinstance(entries, list) else []:
            if isinstance(e, dict):
                outs = e.get("changed outs") or {}
                out += [path for path, why in outs.items() if why == "not in cache"]
    return sorted(set(out))


def run(args) -> int:
    from recpipe.grid.collect import collect, write
    from recpipe.grid.plan import plan

    root = Path(args.data_root).resolve()  # queued runs execute in a copy of the repo
    try:
        cells = plan(args.datasets, args.methods, args.seeds, root, tuple(args.set))
    except ValueError as e:
        print(f"recpipe grid: {e}", file=sys.stderr)
        return 2
    if args.action == "plan":
        for c in cells:
            print(f"{c.name:32s} {'n/a: ' + c.na if c.na else ' '.join(c.argv()[6:])}")
        n = sum(not c.na for c in cells)
        print(f"{n} cells to run, {len(cells) - n} n/a")
        return 0
    if args.action == "collect":
        paths = write(collect(Path.cwd(), cells, commits=args.commits), Path(args.out))
        print("\n".join(map(str, paths)))
        return 0
    if not args.dry_run and (missing := missing_outputs()):
        print(f"recpipe grid: dvc.lock records {len(missing)} output(s) that are not in the DVC "
              f"cache ({', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}); every queued "
              f"experiment would fail saving them. Run `dvc repro` (or `dvc pull` from your "
              f"remote) first.", file=sys.stderr)
        return 2
    states = {} if args.dry_run else _states()
    queued = kept = 0
    for c in cells:
        state = states.get(c.name)
        if c.na or (state and not (state == "failed" and args.retry_failed)):
            kept += state is not None
            continue
        if args.dry_run:
            print(" ".join(c.argv()))
            continue
        if state == "failed":
            subprocess.run(["dvc", "queue", "remove", c.name], capture_output=True, check=False)
        res = subprocess.run(c.argv(), capture_output=True, text=True, check=False)
        if res.returncode != 0:
            print(f"recpipe grid: queueing {c.name} failed: {res.stderr.strip()}", file=sys.stderr)
            return 1
        queued += 1
        print(f"queued {c.name}", flush=True)
    if not args.dry_run:
        print(f"{queued} cells queued, {kept} kept from earlier runs; start them with "
              f"`dvc queue start -j N`, then `recpipe grid collect`")
    return 0
