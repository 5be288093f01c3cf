"""HUM's training step against a bare transformers + peft loop, and evaluation with the item
vectors cached against re-encoding the catalogue, side by side in one run.

    python benchmarks/bench_hum.py --threads 1 --batch 4 --steps 2   # smollm2-135m: ~4 min
    python benchmarks/bench_hum.py --model tiny-qwen2 --threads 1    # both parts tiny: ~1 min
    python benchmarks/bench_hum.py --only eval --eval-model smollm2-135m --n-items 500

On a shared 2-core machine use `--threads 1`: with 2 OpenMP threads and other jobs running,
single forwards vary 40x (the threads wait for each other), and both sides slow down by 5-10x.

Data: the synthetic three-domain sample (`--users` x `--n-items`, titles, about 10 reviews a
user) through ingest and HUM's global temporal split (user_core 0, item_core 0), built in a
temporary folder; nothing is written into the repository.

Training step (issue target: ours >= 0.9 of bare). `--steps` + 1 batches of `--batch` samples
from `HUMBatches` (each: the users' prompt + last 10 titles + <|emb|> + eos, the distinct
target and negative items' prompt + title + <|emb|> + eos, right-padded), precomputed once and
fed to both sides. Ours: the model and AdamW of `recpipe.hum.run.build` (LoRA r 8 on q/k/v/o,
domain weights on), `model.loss(*batch)`, backward, step, `on_step`. Bare: the same backbone
loaded again, <|emb|> added by hand (its row the mean of the vocabulary), `peft.get_peft_model`
of the decoder with the same LoraConfig under the same seed, forward of the user and item ids,
gather at `mask.sum(-1) - 2`, einsum with the candidate indices, cross-entropy, backward, AdamW
with the same settings. One warm-up step each (not timed), then `--steps` timed steps each,
alternating ours/bare on the same batch. Tokens = `model.batch_tokens` (the real tokens of the
users and the distinct items). Before training, both encode the first batch's users in eval
mode: the largest difference shows they compute the same thing.

Evaluation (issue target: cached >= 10x at 5k items). The first `--eval-users` users scored
against all `--n-items` items, `--eval-batch` users at a time (HUM's `eval_batch_size`), by
`HUMScorer` (user-level: the last 10 items of the training sequence). Ours: `item_vectors`
once, then every batch of users encoded and multiplied with the cached vectors. Baseline: the
same model and code, but the whole catalogue encoded again for every batch of users (a loop
without the cache). The baseline runs on `--baseline-batches` batches spread evenly over the
users (0 = all); its time is extrapolated linearly to all batches, and its scores are compared
with ours on those batches. The ratio approaches the number of batches as the catalogue's
share of the work grows. The evaluation uses `--eval-model` (tiny-qwen2 by default: one pass
of SmolLM2-135M over 5,000 titles takes several minutes on a CPU).
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


def make_data(args, folder: Path):
    """The synthetic sample under HUM's temporal split, as a DataView."""
    from recpipe.config import parse
    from recpipe.data.ingest import ingest
    from recpipe.data.processed import build
    from recpipe.data.sample import SampleConfig, generate
    from recpipe.data.view import load_view
    from recpipe.params import DatasetParams, IngestParams, SplitParams

    generate(SampleConfig(n_users=args.users, n_items=args.n_items, reviews_per_user_mean=10.0,
                          seed=3), folder / "raw")
    ingest(DatasetParams(path=str(folder / "raw")), IngestParams(), folder / "interim")
    split = {"protocol": "temporal", "user_core": 0, "item_core": 0}
    build(folder / "interim", folder / "processed", parse(SplitParams, split, prefix="split"), 3)
    return load_view(folder / "processed")


def hum_params(model: str, **keys):
    from recpipe.config import parse
    from recpipe.hum.params import HUMParams

    return parse(HUMParams, {"model": model, "device": "cpu", "dtype": "float32", **keys},
                 prefix="hum")


class Bare:
    """HUM's step written with plain transformers + peft calls (module docstring)."""

    def __init__(self, name: str, p, emb_id: int, seed: int = 0):
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AddedToken

        from recpipe.hum.params import EMB_TOKEN
        from recpipe.llm.backbone import load_backbone
        from recpipe.llm.lora import ROLES
        from recpipe.train.seeds import seed_everything

        # the same weights: SmolLM2's files, or the tiny model's seeded init
        lm, tok = load_backbone(name, device="cpu", dtype="float32", attn=p.attn, seed=seed)
        tok.add_tokens([AddedToken(EMB_TOKEN, special=True, normalized=False)],
                       special_tokens=True)
        emb = tok.convert_tokens_to_ids(EMB_TOKEN)
        assert emb == emb_id, (emb, emb_id)
        table = lm.get_input_embeddings()
        if table.num_embeddings <= emb:
            lm.resize_token_embeddings(emb + 1, mean_resizing=False)
            table = lm.get_input_embeddings()
        with torch.no_grad():
            table.weight[emb] = table.weight[:emb].mean(0)
        lora = p.lora_params()
        cfg = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                         target_modules=ROLES[lm.config.model_type][lora.targets])
        seed_everything(seed)  # as build() does right before LoRA: the same A matrices
        self.dec = get_peft_model(getattr(lm, lm.base_model_prefix), cfg)  # no LM head
        self.temperature = p.temperature
        tc = p.train_config()
        self.opt = torch.optim.AdamW([q for q in self.dec.parameters() if q.requires_grad],
                                     lr=tc.lr, eps=p.adam_eps, weight_decay=p.weight_decay)

    def encode(self, ids, mask):
        import torch

        h = self.dec(input_ids=ids, attention_mask=mask).last_hidden_state
        return h[torch.arange(len(ids)), mask.sum(-1) - 2]

    def step(self, u_ids, u_mask, i_ids, i_mask, cand, domain) -> float:
        import torch
        import torch.nn.functional as F

        u, v = self.encode(u_ids, u_mask), self.encode(i_ids, i_mask)
        logits = torch.einsum("bh,bnh->bn", u, v[cand]) / self.temperature
        loss = F.cross_entropy(logits, torch.zeros(len(u), dtype=torch.long))
        loss.backward()
        self.opt.step()
        self.opt.zero_grad()
        return loss.item()


def bench_train(args, data) -> list[tuple]:
    import torch

    from recpipe.hum.run import HUMBatches, build

    p = hum_params(args.model)
    model, opt, texts = build(p, data, seed=0, device="cpu")
    bare = Bare(args.model, p, model.emb_id)
    hb = HUMBatches(data, texts, p, args.batch, seed=0)
    epoch = hb.epoch()
    batches = [tuple(torch.from_numpy(x) for x in next(epoch)) for _ in range(args.steps + 1)]
    model.eval()
    bare.dec.eval()
    with torch.no_grad():  # the same computation: the same user vectors before training
        b = batches[0]
        diff = float((model.encode(b[0], b[1]) - bare.encode(b[0], b[1])).abs().max())
    model.train()
    bare.dec.train()
    calls = {"ours": 0}

    def ours(batch) -> float:
        loss = model.loss(*batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
        calls["ours"] += 1
        model.on_step(calls["ours"])
        return loss.item()

    sides = {"ours": ours, "bare": lambda batch: bare.step(*batch)}
    for side in sides.values():  # warm-up, not timed
        side(batches[0])
    times = {"ours": [], "bare": []}
    for k, batch in enumerate(batches[1:]):
        for side in (("ours", "bare") if k % 2 == 0 else ("bare", "ours")):
            t = time.perf_counter()
            sides[side](batch)
            times[side].append(time.perf_counter() - t)
            print(f"step {k + 1}, {side}: {times[side][-1]:.2f} s", flush=True)
    tokens = [model.batch_tokens(*b) for b in batches[1:]]
    print(f"step tokens (users + distinct items, real): {tokens}")
    o, b = sum(times["ours"]), sum(times["bare"])
    pair = statistics.median(y / x for x, y in zip(times["ours"], times["bare"]))
    u, i = batches[1][1].shape, batches[1][3].shape
    shape = (f"batch {args.batch} users (first timed: users {u[0]} x {u[1]}, items {i[0]} x "
             f"{i[1]} padded), {sum(tokens) // len(tokens):,} real tokens a step")
    return [(f"{args.model}: training step, {shape}, AdamW, {args.steps} steps",
             f"{sum(tokens) / o:,.0f} tok/s ({o / args.steps:.2f} s a step)",
             f"{sum(tokens) / b:,.0f} tok/s ({b / args.steps:.2f} s a step, bare HF + peft)",
             f"{b / o:.2f} (pairwise median {pair:.2f})"),
            (f"{args.model}: user vectors before training, max abs ours - bare", f"{diff:.1e}",
             "-", "-")]


def bench_eval(args, data) -> list[tuple]:
    import numpy as np
    import torch

    from recpipe.hum.run import HUMScorer, build, item_vectors

    bs = args.eval_batch
    p = hum_params(args.eval_model, eval_batch_size=bs)
    model, _, texts = build(p, data, seed=0, device="cpu")
    users = np.arange(min(args.eval_users, data.n_users))
    chunks = [users[a:a + bs] for a in range(0, len(users), bs)]
    k = len(chunks) if args.baseline_batches <= 0 else min(args.baseline_batches, len(chunks))
    probe = np.linspace(0, len(chunks) - 1, k).round().astype(int)  # spread over the users

    def scorer(items):
        return HUMScorer(model, data, texts, items, "valid", p.history, bs, "cpu")

    model.eval()
    with torch.no_grad():  # warm-up: first-call costs, not timed
        model.encode_all([texts.item(i) for i in range(bs)], texts.pad, bs, "cpu")
    t = time.perf_counter()
    items = item_vectors(model, texts, bs, "cpu")
    t_items = time.perf_counter() - t
    s = scorer(items)
    kept = {}
    for j, c in enumerate(chunks):
        scores = s(c)
        if j in probe:
            kept[j] = scores
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    diff = 0.0
    for j in probe:  # what a loop without the cache does for every batch
        got = scorer(item_vectors(model, texts, bs, "cpu"))(chunks[j])
        want = kept[j]
        diff = max(diff, float((got - want).abs().max()))
    t_base_k = time.perf_counter() - t
    t_base = t_base_k * len(chunks) / k
    how = "measured" if k == len(chunks) else \
        f"{t_base_k:.1f} s for {k} batches, extrapolated to {len(chunks)}"
    print(f"evaluation: catalogue encode {t_items:.2f} s, {len(users)} users scored "
          f"{t_ours - t_items:.2f} s; baseline {t_base_k / k:.2f} s a batch ({how})")
    what = (f"{args.eval_model}: scoring {len(users):,} users against {data.n_items:,} items, "
            f"{bs} users a batch ({len(chunks)} batches)")
    return [(what, f"{t_ours:.1f} s (catalogue once: {t_items:.1f} s)",
             f"{t_base:.1f} s (catalogue every batch; {how})", f"{t_base / t_ours:.1f}x"),
            (f"{args.eval_model}: scores, max abs cached - re-encoded ({k} batches)",
             f"{diff:.1e}", "-", "-")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m",
                    help="training step: smollm2-135m | tiny-qwen2 | tiny-llama | ...")
    ap.add_argument("--eval-model", default=None,
                    help="evaluation: tiny-qwen2 by default (or --model when that is a tiny one)")
    ap.add_argument("--only", choices=("train", "eval"), help="one of the two measurements")
    ints = {"threads": 0, "users": 1000, "n-items": 5000, "batch": 8, "steps": 3,
            "eval-users": 1000, "eval-batch": 32, "baseline-batches": 4}
    for k, v in ints.items():  # threads 0: torch's default
        ap.add_argument(f"--{k}", type=int, default=v)
    args = ap.parse_args(argv)
    if args.eval_model is None:
        args.eval_model = args.model if args.model.startswith("tiny-") else "tiny-qwen2"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    import peft
    import torch
    import transformers

    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_hum_") as tmp:
        data = make_data(args, Path(tmp))
        print(f"data: {data.n_users:,} users x {data.n_items:,} items, {data.train.nnz:,} "
              f"training interactions, domains {', '.join(data.domains)}")
        rows = [] if args.only == "eval" else bench_train(args, data)
        rows += [] if args.only == "train" else bench_eval(args, data)
    print(f"\ncpu, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores; load average "
          f"(1/5/15 min) {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after; torch {torch.__version__}, transformers "
          f"{transformers.__version__}, peft {peft.__version__}; training model {args.model}, "
          f"evaluation model {args.eval_model}\n")
    print_table(rows, ratio="higher = recpipe faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
