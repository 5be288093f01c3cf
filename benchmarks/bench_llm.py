"""The LLM layer against bare transformers + peft: training-step and profiling throughput.

    python benchmarks/bench_llm.py                       # smollm2-135m, both measurements
    python benchmarks/bench_llm.py --model tiny-llama    # plumbing check, seconds

Training (issue 15: ours >= 0.9 of bare): the same LoRA model (r 8 on every projection, 1,000
new ID tokens trainable through trainable_token_indices), the same random token batches
(`--batch` x `--seq`), AdamW. Ours is recpipe.train.loop.fit (progress off, deterministic
kernels as the stages run it); bare is `loss = model(ids, labels=ids).loss; loss.backward();
opt.step(); opt.zero_grad()`. Each side first runs one warm-up step; rounds alternate
ours/bare and the median round counts.

Profiling (ours >= 0.9 of bare): the profile stage's item prompts for the first `--prompts`
items of data/processed (run `dvc repro` first), greedy, `--max-new` tokens. Ours is the hf
backend through the runner (cache, validation) with guided JSON off, so both sides decode the
same way; bare is a batched, left-padded generate() loop over the same chat-templated prompts
in their given order. The guided run is reported as a third row.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import print_table  # noqa: E402


def lora_model(name: str):
    from recpipe.llm.backbone import load_backbone
    from recpipe.llm.lora import LoraParams, apply_lora
    from recpipe.llm.tokens import add_id_tokens

    model, tok = load_backbone(name, device="cpu", seed=0)
    ids = add_id_tokens(model, tok, n_users=500, n_items=500, seed=0)
    model = apply_lora(model, LoraParams(r=8, dropout=0.05),
                       trainable_token_indices=list(range(ids.user_base, ids.end)))
    return model, ids.end


def train_round(model, batches, ours: bool) -> float:
    """Seconds for len(batches) optimiser steps (after one warm-up step)."""
    import torch

    from recpipe.train.loop import TrainConfig, fit
    from recpipe.train.sampler import ListBatches

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    model.train()
    warm = batches[0]
    model(input_ids=warm, labels=warm).loss.backward()
    opt.step()
    opt.zero_grad()
    t = time.perf_counter()
    if ours:
        model.loss = lambda ids: model(input_ids=ids, labels=ids).loss
        cfg = TrainConfig(epochs=1, eval_every=1, patience=0)
        fit(model, ListBatches(batches), cfg, optimizer=opt, progress=False)
    else:
        for ids in batches:
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    return time.perf_counter() - t


def bench_training(args) -> list[tuple]:
    import torch

    model, vocab = lora_model(args.model)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, vocab, (args.batch, args.seq), generator=g)
               for _ in range(args.steps)]
    tokens = args.batch * args.seq * args.steps
    times = {"ours": [], "bare": []}
    for r in range(args.rounds):
        for side in (("ours", "bare") if r % 2 == 0 else ("bare", "ours")):
            times[side].append(train_round(model, batches, side == "ours"))
    ours, bare = statistics.median(times["ours"]), statistics.median(times["bare"])
    return [("training step", f"{tokens / ours:.0f} tok/s", f"{tokens / bare:.0f} tok/s",
             f"{bare / ours:.2f}")]


def prompts(n: int):
    import polars as pl

    from recpipe.profiling import prompts as P
    from recpipe.profiling.base import Request
    from recpipe.profiling.profile import ProfileParams, item_jobs, train_rows

    proc = ROOT / "data" / "processed"
    if not (proc / "items.parquet").exists():
        sys.exit(f"{proc} is missing: run `dvc repro` first (the profiling half reads its items)")
    items = pl.read_parquet(proc / "items.parquet").head(n)
    inter = pl.read_parquet(proc / "interactions.parquet")
    jobs = item_jobs(items, train_rows(inter), P.TEMPLATES["amazon"], ProfileParams(), 0)
    return [Request(key=e, entity=e, system=s, prompt=p) for e, s, p in jobs]


def bench_profiling(args) -> list[tuple]:
    import torch

    from recpipe.profiling.backends.hf import HFBackend
    from recpipe.profiling.cache import ProfileCache
    from recpipe.profiling.runner import run

    reqs = prompts(args.prompts)
    kw = dict(device="cpu", batch_size=args.gen_batch, max_new_tokens=args.max_new)
    rows = []
    for guided in (False, True):
        be = HFBackend(args.model, guided=guided, **kw)
        be._load()
        jobs = [(r.entity, r.system, r.prompt) for r in reqs]
        with tempfile.TemporaryDirectory() as d, ProfileCache(Path(d) / "c.jsonl") as cache:
            t = time.perf_counter()
            _, st = run(be, jobs, cache, max_retries=0, progress=False)
            rows.append((guided, st.completion_tokens, time.perf_counter() - t, st.generated))
        if not guided:  # bare: the same model and prompts, no runner, given order
            tok, lm = be._tok, be._lm
            texts = [be.render(r) for r in reqs]
            t, n_tok = time.perf_counter(), 0
            for i in range(0, len(texts), args.gen_batch):
                enc = tok(texts[i:i + args.gen_batch], return_tensors="pt", padding=True,
                          add_special_tokens=False)
                with torch.inference_mode():
                    out = lm.generate(**enc, max_new_tokens=args.max_new, do_sample=False,
                                      pad_token_id=tok.pad_token_id)
                new = out[:, enc["input_ids"].shape[1]:]
                n_tok += int((new != tok.pad_token_id).sum())
            bare = (n_tok, time.perf_counter() - t)
    (_, ours_tok, ours_s, _), (_, g_tok, g_s, g_ok) = rows
    return [("profiling (free JSON)", f"{ours_tok / ours_s:.1f} tok/s, {ours_s / len(reqs):.2f} "
             f"s/prompt", f"{bare[0] / bare[1]:.1f} tok/s, {bare[1] / len(reqs):.2f} s/prompt",
             f"{bare[1] / ours_s:.2f}"),
            ("profiling (guided JSON)", f"{g_tok / g_s:.1f} tok/s, {g_s / len(reqs):.2f} "
             f"s/prompt, {g_ok}/{len(reqs)} parsed", "-", "-")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--gen-batch", type=int, default=8)
    ap.add_argument("--max-new", type=int, default=64)
    ap.add_argument("--skip", choices=["training", "profiling"])
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    rows = []
    if args.skip != "training":
        rows += bench_training(args)
    if args.skip != "profiling":
        rows += bench_profiling(args)
    print(f"\n{args.model}, {torch.get_num_threads()} CPU threads; training batch {args.batch} x "
          f"{args.seq}, {args.steps} steps x {args.rounds} rounds; profiling {args.prompts} "
          f"prompts, batch {args.gen_batch}, {args.max_new} new tokens\n")
    print_table(rows, "bare transformers + peft", "higher = ours faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
