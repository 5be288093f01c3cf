"""Benchmark of RLMRec's Con item term in clean mode: in-batch duplicates left out of the InfoNCE
denominator, forward + backward per training step.

    python benchmarks/bench_info_nce.py                    # batch 4096, the sample's 1,500 items
    python benchmarks/bench_info_nce.py --items 9332 --batch 4096 2048

recpipe (`recpipe.graph.losses.info_nce_by_id(..., mask_duplicates=True)`): the term once per
distinct item in the batch, each item's logit shifted by the log of its copies, through the
chunked log-sum-exp. Two baselines on the same inputs: the per-row form recpipe used before
(`info_nce_sum(..., repeats=k)`: one row per batch triple, the same chunked log-sum-exp), and
the literal dense form before that, a (B, B) logit matrix with the copies masked to -inf.
They run alternating, the median of `--repeat` steps counts, and the script checks that the
losses and gradients agree. The user term (anchors the batch's users, candidates all users:
Con, SGL and SimGCL) is timed the same way, by id against per row.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import print_table


def dense_masked(a, p, c, tau, items):
    """The baseline: (B, B) logits, duplicates of the anchor's item masked out."""
    import torch

    from recpipe.graph.losses import _normalize

    a, p, c = _normalize(a), _normalize(p), _normalize(c)
    pos = (a * p).sum(-1) / tau
    dup = (items[:, None] == items[None, :]) & ~torch.eye(len(items), dtype=torch.bool)
    logits = ((a / tau) @ c.T).masked_fill(dup, float("-inf"))
    return (-pos + torch.logsumexp(logits, dim=-1)).sum()


def per_row(a, p, c, tau, items):
    import torch

    from recpipe.graph.losses import info_nce_sum

    _, inv, counts = torch.unique(items, return_inverse=True, return_counts=True)
    return info_nce_sum(a, p, c, tau, repeats=counts[inv])


def by_id_item(emb, table, ids, tau):
    from recpipe.graph.losses import info_nce_by_id

    return info_nce_by_id(emb, table, ids, tau, mask_duplicates=True)


def by_id_user(emb, table, ids, tau):
    from recpipe.graph.losses import info_nce_by_id

    return info_nce_by_id(emb, table, ids, tau, candidates=table)


def per_row_user(emb, table, ids, tau):
    from recpipe.graph.losses import info_nce_sum

    return info_nce_sum(emb[ids], table[ids], table, tau)


# each form takes the tables and the batch's ids, as recpipe.graph.align.Con has them
ITEM_TERM = {
    "by id": by_id_item,
    "per row": lambda emb, table, ids, tau: per_row(emb[ids], table[ids], table[ids], tau, ids),
    "dense": lambda emb, table, ids, tau: dense_masked(emb[ids], table[ids], table[ids], tau, ids),
}
USER_TERM = {"by id": by_id_user, "per row": per_row_user}


def step(fn, emb, table, ids, tau):
    """One forward + backward of the term; (seconds, loss)."""
    t0 = time.perf_counter()
    loss = fn(emb, table, ids, tau)
    loss.backward()
    return time.perf_counter() - t0, float(loss.detach())


def race(fns: dict, emb, table, ids, repeat: int) -> dict:
    """Check that every form agrees with the first (loss and gradients), then the median
    seconds of each over `repeat` alternating steps (the first step of each dropped)."""
    import torch

    ref = None
    for name, fn in fns.items():
        loss = fn(emb, table, ids, 0.2)
        grads = torch.autograd.grad(loss, (emb, table))
        if ref is None:
            ref = (float(loss.detach()), grads)
            continue
        assert abs(float(loss.detach()) - ref[0]) <= 1e-4 * abs(ref[0]), (name, loss, ref[0])
        assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(grads, ref[1])), name
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            times[name].append(step(fn, emb, table, ids, 0.2)[0])
            emb.grad = table.grad = None
    return {k: statistics.median(v[1:]) for k, v in times.items()}


def zipf(n: int, size: int, power: float, seed: int):
    """Ids drawn by popularity, as BPR batches draw them from training pairs."""
    import numpy as np
    import torch

    w = 1.0 / np.arange(1, n + 1) ** power
    return torch.from_numpy(np.random.default_rng(seed).choice(n, size, p=w / w.sum()))


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[4096])
    ap.add_argument("--items", type=int, default=1500)
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=32, help="the graph's embedding width")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for b in args.batch:
        g = torch.Generator().manual_seed(0)
        for term, n, fns, power in (("item", args.items, ITEM_TERM, 0.8),
                                    ("user", args.users, USER_TERM, 0.3)):
            emb = torch.randn(n, args.dim, generator=g, requires_grad=True)
            table = torch.randn(n, args.dim, generator=g, requires_grad=True)
            ids = zipf(n, b, power, 0)
            med = race(fns, emb, table, ids, args.repeat)
            print(f"{term} term, batch {b}, {n} {term}s ({len(ids.unique())} distinct), dim "
                  f"{args.dim}: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in med.items()))
            for base in list(fns)[1:]:
                rows.append([f"Con {term} term, batch {b} vs {base} (ms/step)",
                             f"{med['by id'] * 1e3:.1f}", f"{med[base] * 1e3:.1f}",
                             f"{med[base] / med['by id']:.2f}x"])
    print_table(rows, baseline="per row / dense")


if __name__ == "__main__":
    main()
