"""HeLLM's training step against a bare transformers + peft loop, batched against per-user
scoring, and peak memory, side by side in one run.

    python benchmarks/bench_hellm.py                      # smollm2-135m and tiny-llama
    python benchmarks/bench_hellm.py --models tiny-llama  # plumbing check, seconds

Training (issue 16: ours >= 0.9 of bare). The same HeLLM module (LoRA on the FFN, projector,
10-slot prefix, frozen head), the same random histories (`--batch` users, `--items` items each,
left-padded to random lengths), AdamW. Ours is recpipe.train.loop.fit over `model.loss`; bare
is the computation written out once with plain HF calls: soft tokens concatenated between the
prompt's embeddings, the prefix pushed into a `DynamicCache` layer by layer, the decoder, the
head, cross-entropy, backward, step. Rounds alternate ours/bare; the median round counts.

Scoring (issue 16: batched >= 20x per-user on a GPU). The validation histories of `--users`
users scored `--eval-batch` at a time (left-padded, masked) and one user per forward, as the
reference does. The ratio is of wall time.

Memory: the training rounds' peak (CUDA: allocated; CPU: the process's peak RSS, which only
grows, so the smaller model runs first).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import print_table  # noqa: E402


def make(name: str, n_items: int, device: str):
    import numpy as np

    from recpipe.config import parse
    from recpipe.hellm.params import HeLLMParams
    from recpipe.hellm.run import build

    g = np.random.default_rng(0)
    mm = g.normal(size=(n_items, 64)).astype(np.float32)
    sa = g.normal(size=(n_items + 1, 64)).astype(np.float32)
    p = parse(HeLLMParams, {"model": name, "device": device}, prefix="hellm")
    return build(p, mm, sa, seed=0, device=device)


def histories(n: int, items: int, n_items: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    hist = torch.randint(0, n_items, (n, items), generator=g)
    lengths = torch.randint(1, items + 1, (n,), generator=g)
    hist[torch.arange(items)[None, :] < (items - lengths)[:, None]] = -1  # left padding
    return hist, torch.randint(0, n_items, (n,), generator=g)


def bare_step(model, hist, target, opt):
    """One step of HeLLM written with plain HF calls (module docstring)."""
    import torch
    from transformers import DynamicCache

    from recpipe.hellm.prefix import attention_modules, project_kv
    from recpipe.llm.scoring import decoder

    dec = decoder(model.lm)
    keep = hist >= 0
    ids = hist.clamp(min=0)
    B = hist.shape[0]
    soft = model.item_proj(torch.cat([model.e_mmhcl[ids], model.e_sasrec[ids + 1]], -1))
    emb = dec.get_input_embeddings()
    x = torch.cat([emb(model.instruct).expand(B, -1, -1), soft,
                   emb(model.response).expand(B, -1, -1)], 1)
    mask = torch.cat([torch.ones(B, len(model.instruct), dtype=torch.long), keep.long(),
                      torch.ones(B, len(model.response), dtype=torch.long)], 1)
    pre = model.prefix
    e = model.e_mmhcl[ids] * keep.unsqueeze(-1)
    g = (e.transpose(1, 2) @ e).flatten(1)
    k = pre.k_norm(pre.p_k + pre.k_mlp(g)[:, None, None])
    v = pre.v_norm(pre.p_v + pre.v_mlp(g)[:, None, None])
    cache = DynamicCache()
    for i, a in enumerate(attention_modules(dec)):
        cache.update(*project_kv(a, k[:, i].contiguous(), v[:, i].contiguous(), model.hd), i)
    s = pre.slots
    pos = (mask.cumsum(-1) - 1).clamp(min=0) + s
    mask = torch.cat([torch.ones(B, s, dtype=torch.long), mask], 1)
    h = dec(inputs_embeds=x, attention_mask=mask, position_ids=pos, past_key_values=cache,
            use_cache=True).last_hidden_state[:, -1]
    loss = torch.nn.functional.cross_entropy(model.head(h).float(), target)
    loss.backward()
    opt.step()
    opt.zero_grad()


def train_round(model, opt, batches, ours: bool) -> float:
    from recpipe.train.loop import TrainConfig, fit
    from recpipe.train.sampler import ListBatches

    model.train()
    bare_step(model, *batches[0], opt)  # warm-up
    t = time.perf_counter()
    if ours:
        cfg = TrainConfig(epochs=1, eval_every=1, patience=0)
        fit(model, ListBatches(batches), cfg, optimizer=opt, progress=False)
    else:
        for hist, target in batches:
            bare_step(model, hist, target, opt)
    return time.perf_counter() - t


def peak_gb(device: str) -> float:
    import resource

    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def bench(name: str, args) -> list[tuple]:
    import torch

    model, opt = make(name, args.n_items, args.device)
    batches = [histories(args.batch, args.items, args.n_items, s) for s in range(args.steps)]
    batches = [(h.to(args.device), t.to(args.device)) for h, t in batches]
    tokens = sum(model.batch_tokens(h, t) for h, t in batches)
    times = {"ours": [], "bare": []}
    for r in range(args.rounds):
        for side in (("ours", "bare") if r % 2 == 0 else ("bare", "ours")):
            times[side].append(train_round(model, opt, batches, side == "ours"))
    ours, bare = statistics.median(times["ours"]), statistics.median(times["bare"])
    mem = peak_gb(args.device)
    hist, _ = histories(args.users, args.items, args.n_items, 99)
    hist = hist.to(args.device)
    model.eval()
    with torch.no_grad():
        model.scores(hist[: args.eval_batch])  # warm-up
        t = time.perf_counter()
        for c in hist.split(args.eval_batch):
            model.scores(c)
        batched = time.perf_counter() - t
        t = time.perf_counter()
        for u in range(len(hist)):
            h = hist[u]
            model.scores(h[h >= 0][None])
        single = time.perf_counter() - t
    return [(f"{name}: training step", f"{tokens / ours:.0f} tok/s", f"{tokens / bare:.0f} tok/s",
             f"{bare / ours:.2f}"),
            (f"{name}: scoring {args.users} users", f"{batched:.2f} s (batch {args.eval_batch})",
             f"{single:.2f} s (one user a forward)", f"{single / batched:.1f}"),
            (f"{name}: peak memory, training", f"{mem:.2f} GB", "-", "-")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny-llama", "smollm2-135m"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n-items", type=int, default=12101, help="Beauty's catalogue")
    ap.add_argument("--batch", type=int, default=7)
    ap.add_argument("--items", type=int, default=10, help="history items per user (at most)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--users", type=int, default=64)
    ap.add_argument("--eval-batch", type=int, default=32)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    rows = [r for name in args.models for r in bench(name, args)]
    print(f"\n{args.device}, {torch.get_num_threads()} threads; batch {args.batch} users x <= "
          f"{args.items} items, {args.steps} steps x {args.rounds} rounds; {args.n_items:,} "
          f"items in the head\n")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
