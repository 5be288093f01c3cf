"""Benchmark of RLMRec's Con item term in clean mode: in-batch duplicates left out of the InfoNCE
denominator, forward + backward per training step.

    python benchmarks/bench_info_nce.py                    # batch 4096, the sample's 1,500 items
    python benchmarks/bench_info_nce.py --items 9332 --batch 4096 2048

recpipe (`recpipe.graph.losses.info_nce_sum(..., repeats=k)`): the chunked all-pairs
log-sum-exp, then each row's k - 1 copies of its own positive taken out in log space.
Baseline: the literal form recpipe used before, a (B, B) logit matrix with the copies
masked to -inf (a (B, B) equality mask minus the identity) and a dense logsumexp. Both run
on the same inputs, alternating, and the median of `--repeat` steps counts; the script also
checks that the two losses and gradients agree. Parity mode (copies kept) costs what recpipe's
clean mode costs now; it is printed for reference.
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


def ours(a, p, c, tau, items):
    import torch

    from recpipe.graph.losses import info_nce_sum

    _, inv, counts = torch.unique(items, return_inverse=True, return_counts=True)
    return info_nce_sum(a, p, c, tau, repeats=counts[inv])


def parity(a, p, c, tau, items):
    from recpipe.graph.losses import info_nce_sum

    return info_nce_sum(a, p, c, tau)


def step(fn, emb, table, items, tau):
    """One forward + backward of the item term as recpipe.graph.align.Con builds it."""
    t0 = time.perf_counter()
    loss = fn(emb[items], table[items], table[items], tau, items)
    loss.backward()
    return time.perf_counter() - t0, float(loss.detach())


def main() -> None:
    import numpy as np
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[4096])
    ap.add_argument("--items", type=int, default=1500)
    ap.add_argument("--dim", type=int, default=32, help="the graph's embedding width")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for b in args.batch:
        g = torch.Generator().manual_seed(0)
        emb = torch.randn(args.items, args.dim, generator=g, requires_grad=True)
        table = torch.randn(args.items, args.dim, generator=g, requires_grad=True)
        # training pairs' items follow popularity: a Zipf-like draw gives realistic duplicates
        w = 1.0 / np.arange(1, args.items + 1) ** 0.8
        items = torch.from_numpy(np.random.default_rng(0).choice(args.items, b, p=w / w.sum()))
        losses, grads = {}, {}
        for name, fn in (("ours", ours), ("dense", dense_masked)):
            loss = fn(emb[items], table[items], table[items], 0.2, items)
            grads[name] = torch.autograd.grad(loss, (emb, table))
            losses[name] = float(loss.detach())
        assert abs(losses["ours"] - losses["dense"]) <= 1e-4 * abs(losses["dense"]), losses
        assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(grads["ours"], grads["dense"]))
        times = {"ours": [], "dense": [], "parity": []}
        for _ in range(args.repeat):
            for name, fn in (("ours", ours), ("dense", dense_masked), ("parity", parity)):
                times[name].append(step(fn, emb, table, items, 0.2)[0])
                emb.grad = table.grad = None
        med = {k: statistics.median(v[1:]) for k, v in times.items()}
        copies = int(len(items) - len(items.unique()))
        print(f"batch {b}, {args.items} items ({copies} in-batch copies), dim {args.dim}: "
              f"recpipe {med['ours'] * 1e3:.1f} ms, dense masked {med['dense'] * 1e3:.1f} ms, "
              f"parity (copies kept) {med['parity'] * 1e3:.1f} ms; losses agree "
              f"({losses['ours']:.4f} vs {losses['dense']:.4f})")
        rows.append([f"Con item term, clean, batch {b} (ms/step)", f"{med['ours'] * 1e3:.1f}",
                     f"{med['dense'] * 1e3:.1f}", f"{med['dense'] / med['ours']:.2f}x"])
    print_table(rows, baseline="dense masked logsumexp")


if __name__ == "__main__":
    main()
