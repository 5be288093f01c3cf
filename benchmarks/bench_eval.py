"""Benchmark of the evaluator: speed against a plain per-user Python loop, and peak memory
against the `eval.memory_mb` budget.

    python benchmarks/bench_eval.py            # full run (about 3-5 minutes on 2 cores)
    python benchmarks/bench_eval.py --quick    # small run (under a minute)

1. RLMRec Amazon-book test split (11,000 users x 9,332 items, from ../shared/data/rlmrec/amazon;
   a synthetic split of the same shape when that folder is absent), seeded Gaussian embeddings
   d = 32, `rlmrec` preset (train masked, K = 5, 10, 20). The evaluator (`evaluate`, torch
   backend) and a per-user loop (numpy dot product, train items -inf, full `np.argsort`, top 20,
   set membership, recall/NDCG) run in the same process on the same users; the loop's
   recall@20/NDCG@20 must equal the evaluator's.
2. Peak memory of `evaluate` at several `memory_mb` budgets, each in a fresh subprocess after
   a 50-user warm-up: the peak RSS (VmHWM, reset via /proc/self/clear_refs just before
   `evaluate`; ru_maxrss where that is not possible) minus the RSS before the call.
3. Synthetic 50,000 users x 90,000 items, d = 64, default budget (1024 MiB): users/s and peak
   RSS over a subset of users (5,000 by default; the catalogue and the masks stay full size),
   and the plain loop on 200 of them.

Times are given as wall seconds and as process CPU seconds: on a shared machine the wall time
stretches with the load, the CPU time much less.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recpipe.eval.data import SplitData  # noqa: E402

KS = [5, 10, 20]


class Timing(NamedTuple):
    """Wall seconds and process CPU seconds (all threads). On a shared, loaded machine the
    wall time stretches; CPU time shows the work done."""

    wall: float
    cpu: float

    def rate(self, n: int) -> str:
        return f"{self.wall:7.2f} s wall {n / self.wall:9,.0f} users/s | {self.cpu:7.2f} s CPU {n / self.cpu:9,.0f} users/CPU-s"


# ------------------------------------------------------------------ data

def load_rlmrec(shared: Path, tmp: Path) -> tuple[SplitData, str]:
    """The RLMRec Amazon-book split through the project's own ingest + split stages."""
    from recpipe.config import parse
    from recpipe.data.ingest import ingest
    from recpipe.data.processed import build
    from recpipe.eval.data import load_split
    from recpipe.params import DatasetParams, IngestParams, SplitParams

    src = shared / "rlmrec" / "amazon"
    if not src.exists():
        return synthetic(11000, 9332, train_per_user=11, test_per_user=4, seed=0), \
            f"synthetic 11,000 x 9,332 ({src} is missing)"
    ingest(DatasetParams(format="rlmrec", path=str(src)), IngestParams(), tmp / "interim")
    build(tmp / "interim", tmp / "processed", parse(SplitParams, {"protocol": "rlmrec"}, prefix="split"), 2023)
    return load_split(tmp / "processed"), "RLMRec amazon (real)"


def synthetic(n_users: int, n_items: int, train_per_user: int, test_per_user: int, seed: int,
              rows: int | None = None) -> SplitData:
    """Random interactions: Zipf-like item popularity, `train_per_user` train and
    `test_per_user` test items per user (duplicates collapse). Only the first `rows` users get
    interactions (the others are never evaluated, so they need none)."""
    rng = np.random.default_rng(seed)
    rows = n_users if rows is None else rows
    p = 1.0 / np.arange(1, n_items + 1) ** 0.8
    p /= p.sum()

    def part(per_user: int) -> sp.csr_matrix:
        uid = np.repeat(np.arange(rows), per_user)
        iid = rng.choice(n_items, len(uid), p=p)
        m = sp.csr_matrix((np.ones(len(uid), np.float32), (uid, iid)), shape=(n_users, n_items))
        m.sum_duplicates()
        m.data[:] = 1
        return m

    train, test = part(train_per_user), part(test_per_user)
    test = test - test.multiply(train)  # a test item is never a train item (split dedupes)
    test.eliminate_zeros()
    valid = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    return SplitData(n_users, n_items, train.tocsr(), valid, test.tocsr(),
                     np.zeros(n_items, np.int32), ["all"])


def first_users(data: SplitData, n: int) -> SplitData:
    """Only the first n users' rows keep their test items; the catalogue stays whole."""
    keep = sp.diags((np.arange(data.n_users) < n).astype(np.float32))
    test = (keep @ data.test).tocsr()
    test.eliminate_zeros()
    return SplitData(data.n_users, data.n_items, data.train, data.valid, test,
                     data.item_domain, data.domains)


def embeddings(n_users: int, n_items: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n_users, d), dtype=np.float32),
            rng.standard_normal((n_items, d), dtype=np.float32))


# ------------------------------------------------------------------ the two contenders

def run_evaluator(user_emb, item_emb, data: SplitData, memory_mb: int = 1024):
    from recpipe.eval.evaluator import evaluate
    from recpipe.eval.protocol import resolve
    from recpipe.eval.scorers import EmbeddingScorer

    cfg = resolve({"preset": "rlmrec", "memory_mb": memory_mb})
    scorer = EmbeddingScorer(user_emb, item_emb)
    t0, c0 = time.perf_counter(), time.process_time()
    res = evaluate(scorer, data, cfg, "test")
    return res, Timing(time.perf_counter() - t0, time.process_time() - c0)


def run_loop(user_emb, item_emb, data: SplitData, users: np.ndarray):
    """The plain way: one user at a time, numpy scores, full argsort, set membership."""
    disc = 1.0 / np.log2(np.arange(2, 22))
    out = {}
    t0, c0 = time.perf_counter(), time.process_time()
    for u in users:
        s = item_emb @ user_emb[u]  # (n_items,)
        s[data.train.indices[data.train.indptr[u]:data.train.indptr[u + 1]]] = -np.inf
        top = np.argsort(-s, kind="stable")[:20]
        targets = set(data.test.indices[data.test.indptr[u]:data.test.indptr[u + 1]].tolist())
        hits = np.array([int(i) in targets for i in top], dtype=np.float64)
        m = {}
        for k in KS:
            idcg = disc[:min(k, len(targets))].sum()
            m[f"recall@{k}"] = hits[:k].sum() / len(targets)
            m[f"ndcg@{k}"] = float(hits[:k] @ disc[:k]) / idcg
        out[int(u)] = m
    return out, Timing(time.perf_counter() - t0, time.process_time() - c0)


# ------------------------------------------------------------------ memory (subprocess)

def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _hwm_mb() -> float | None:
    try:
        text = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024
    except (OSError, AttributeError):
        return None


def peak_during(fn):
    """Run fn(); return (its result, RSS before in MiB, peak RSS during it in MiB, method).
    The kernel's peak-RSS counter (VmHWM) is reset first, so earlier peaks do not count."""
    before = _rss_mb()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        how = "VmHWM"
    except OSError:  # not Linux, or not allowed: the process-lifetime peak instead
        how = "ru_maxrss"
    out = fn()
    peak = _hwm_mb() if how == "VmHWM" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out, before, peak, how


def child_memory(cache: Path, memory_mb: int) -> None:
    """Subprocess body: load the cached split + embeddings, warm up, then measure `evaluate`."""
    z = np.load(cache / "emb.npz")
    mats = {p: sp.load_npz(cache / f"{p}.npz").tocsr() for p in ("train", "valid", "test")}
    n_users, n_items = mats["train"].shape
    data = SplitData(n_users, n_items, mats["train"], mats["valid"], mats["test"],
                     np.zeros(n_items, np.int32), ["all"])
    from recpipe.eval.evaluator import _batch_size
    from recpipe.eval.protocol import resolve

    # warm-up on 50 users: imports, torch thread pools and kernels are set up outside the peak
    run_evaluator(z["user"], z["item"], first_users(data, 50), memory_mb)
    (res, secs), before, peak, how = peak_during(
        lambda: run_evaluator(z["user"], z["item"], data, memory_mb))
    bs = _batch_size(resolve({"preset": "rlmrec", "memory_mb": memory_mb}), n_items)
    print(json.dumps({"memory_mb": memory_mb, "batch_users": bs, "rss_before_mb": before,
                      "peak_mb": peak, "extra_mb": peak - before, "how": how, "seconds": secs.wall,
                      "recall@20": res.summary["recall@20"]}))


def measure_memory(data: SplitData, user_emb, item_emb, budgets: list[int], tmp: Path) -> list[dict]:
    cache = tmp / "memcache"
    cache.mkdir(exist_ok=True)
    np.savez(cache / "emb.npz", user=user_emb, item=item_emb)
    for p in ("train", "valid", "test"):
        sp.save_npz(cache / f"{p}.npz", data.part(p))
    rows = []
    for mb in budgets:
        out = subprocess.run([sys.executable, __file__, "--child-memory", str(cache), str(mb)],
                             check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def _batch_size_for(n_items: int, memory_mb: int = 1024) -> int:
    from recpipe.eval.evaluator import _batch_size
    from recpipe.eval.protocol import resolve

    return _batch_size(resolve({"preset": "rlmrec", "memory_mb": memory_mb}), n_items)


# ------------------------------------------------------------------ main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small run: subsets of users")
    ap.add_argument("--shared", type=Path,
                    default=Path(os.environ.get("RECPIPE_SHARED_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--large-users", type=int, default=None,
                    help="users evaluated in the 50,000 x 90,000 run (default 5,000; quick 500)")
    ap.add_argument("--budgets", type=int, nargs="+", default=[64, 256, 1024], help="memory_mb values")
    ap.add_argument("--child-memory", nargs=2, metavar=("CACHE", "MB"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_memory:
        child_memory(Path(args.child_memory[0]), int(args.child_memory[1]))
        return

    import torch

    print(f"# torch threads {torch.get_num_threads()}, cpu count {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        data, source = load_rlmrec(args.shared, tmp)
        if args.quick:
            data = first_users(data, 2000)
        user_emb, item_emb = embeddings(data.n_users, data.n_items, 32, seed=2023)

        # 1. speed: evaluator vs loop on the same users
        res, t_eval = run_evaluator(user_emb, item_emb, data)
        users = res.per_unit["uid"].to_numpy()
        loop, t_loop = run_loop(user_emb, item_emb, data, users)
        per = {r["uid"]: r for r in res.per_unit.iter_rows(named=True)}
        worst = max(abs(per[u][m] - loop[u][m]) for u in loop for m in loop[u])
        n = len(users)
        print(f"\n## {source}: {data.n_users:,} users x {data.n_items:,} items, d = 32, preset rlmrec, "
              f"{n:,} test users")
        print(f"evaluator : {t_eval.rate(n)}")
        print(f"plain loop: {t_loop.rate(n)}")
        print(f"speed-up  : {t_loop.wall / t_eval.wall:.1f}x wall, {t_loop.cpu / t_eval.cpu:.1f}x CPU   "
              f"(max |metric difference| {worst:.1e})")
        print(f"recall@20 {res.summary['recall@20']:.5f}  ndcg@20 {res.summary['ndcg@20']:.5f}")
        if worst > 1e-9:
            raise SystemExit("the loop and the evaluator disagree")

        # 2. memory against the budget, each in its own process
        print("\n## peak memory of evaluate (fresh subprocess per budget)")
        print("memory_mb | users/batch | extra peak RSS (MiB) | wall s")
        for row in measure_memory(data, user_emb, item_emb, args.budgets, tmp):
            print(f"{row['memory_mb']:9d} | {row['batch_users']:11,d} | {row['extra_mb']:20.0f} | "
                  f"{row['seconds']:.2f}   ({row['how']})")

    # 3. the large synthetic catalogue, default budget
    n_users, n_items, d = 50_000, 90_000, 64
    sub = args.large_users or (500 if args.quick else 5_000)
    big = synthetic(n_users, n_items, train_per_user=20, test_per_user=5, seed=1, rows=sub)
    u_big, i_big = embeddings(n_users, n_items, d, seed=1)
    (res, t_big), before, peak, how = peak_during(lambda: run_evaluator(u_big, i_big, big))
    n = res.summary["units"]
    print(f"\n## synthetic {n_users:,} users x {n_items:,} items, d = {d}, memory_mb 1024: "
          f"{n:,} users evaluated (a subset; catalogue and masks full size)")
    print(f"evaluator : {t_big.rate(n)}")
    print(f"            extra peak RSS {peak - before:,.0f} MiB over {before:,.0f} MiB before ({how}); "
          f"{_batch_size_for(n_items)} users per batch")
    print(f"            full pass of {n_users:,} users ~ {n_users * t_big.wall / n:,.0f} s wall here, "
          f"{n_users * t_big.cpu / n:,.0f} CPU-s")
    n_loop = min(200, n)
    loop_users = res.per_unit["uid"].to_numpy()[:n_loop]
    _, t_lb = run_loop(u_big, i_big, big, loop_users)
    print(f"plain loop: {t_lb.rate(n_loop)}  ({n_loop} users)")
    print(f"speed-up  : {(t_lb.wall / n_loop) / (t_big.wall / n):.1f}x wall, "
          f"{(t_lb.cpu / n_loop) / (t_big.cpu / n):.1f}x CPU")
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
