"""CLLM4Rec's pretraining step against a bare HF loop, and the chunked item cross-entropy's
peak memory against the direct one, side by side in one run.

    python benchmarks/bench_cllm4rec.py                    # smollm2-135m, 6-8 min on 2 busy cores
    python benchmarks/bench_cllm4rec.py --threads 1        # the same, 3.5 min, steadier when busy
    python benchmarks/bench_cllm4rec.py --model tiny-gpt2  # ~2 minutes, nearly all the CE part

Pretraining step (target: ours >= 0.9 of bare). One content-LM batch: `--batch` documents
"<user_u> wrote the following review for <item_i>:" + random word ids, cut to `--seq` tokens,
right-padded, ID tokens for `--users` x `--items`; unregularised (the content warm-up epochs), so
both sides compute the same loss. Ours: `CLLM4Rec.loss(**batch)` (the "con" rows spliced into
the frozen decoder's inputs, chunked cross-entropy at the main-text positions through the LM
head), backward, Adam over the two sets. Bare: the same frozen LM, a plain nn.Embedding holding
a copy of the "con" rows spliced into `inputs_embeds` with torch.where, `lm(inputs_embeds=,
attention_mask=, labels=)` with prompt and padding labelled -100 (HF's loss over every
position's logits), backward, Adam. `--warmup` steps each (the first step's losses are compared),
then `--steps` each, alternating ours/bare; the median step counts (and the median ratio of
adjacent ours/bare pairs, steadier on a shared machine); tokens = the batch's real tokens.

Chunked cross-entropy (target: >= 4x lower peak). The collaborative LM's item head at Beauty's
scale: h [`--positions` = 20 users x 1,020 tokens, `--hidden`], W [`--ce-items`, `--hidden`],
both requiring grad, random targets; one forward + backward of `chunked_cross_entropy(h, W, t,
chunk)` against `F.cross_entropy(h @ W.T, t)`, each in a fresh subprocess after a small warm-up,
alternating over `--ce-rounds` rounds (medians). Memory: CUDA `max_memory_allocated` minus the
inputs; on CPU the peak RSS during the pass (VmHWM, reset through /proc/self/clear_refs;
ru_maxrss where not possible) minus the RSS before it: the pass's extra peak, gradients included.
Round one saves losses and gradients; their largest absolute differences are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import print_table  # noqa: E402


def content_batch(tok, ids, args) -> dict:
    import numpy as np

    from recpipe.cllm4rec.data import Pieces, doc_prompt, lm_batch

    g, pieces = np.random.default_rng(0), Pieces.of(tok)
    pairs = [(doc_prompt(ids, pieces, int(g.integers(args.users)), int(g.integers(args.items))),
              g.integers(0, ids.user_base, int(g.integers(args.seq // 2, args.seq))).tolist())
             for _ in range(args.batch)]
    b = lm_batch(pairs, "con", False, args.seq)
    return {k: torch.as_tensor(v) if k in ("ids", "mask", "start") else v for k, v in b.items()}


def step(loss, opt) -> float:
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss.item()


def bare_loss(lm, table, ids_tok, batch):
    """The step's loss written with plain HF calls (module docstring)."""
    ids, mask, start = batch["ids"], batch["mask"], batch["start"]
    is_id = (ids >= ids_tok.user_base) & (ids < ids_tok.end)
    words = lm.get_input_embeddings()(ids.masked_fill(is_id, 0))
    x = torch.where(is_id[..., None], table((ids - ids_tok.user_base).clamp(min=0)), words)
    pos = torch.arange(ids.shape[1])[None]
    labels = ids.masked_fill((pos < start[:, None]) | (mask == 0), -100)
    return lm(inputs_embeds=x, attention_mask=mask, labels=labels).loss


def bench_step(args) -> list[tuple]:
    from recpipe.cllm4rec.model import CLLM4Rec
    from recpipe.llm import smollm2
    from recpipe.llm.backbone import load_backbone
    from recpipe.llm.tokens import add_id_tokens

    if args.model == "smollm2-135m" and not smollm2.installed():
        print(f"SKIPPED the pretraining step: smollm2-135m is not installed ({smollm2.INSTALL}); "
              f"run with --model tiny-gpt2")
        return []
    lm, tok = load_backbone(args.model, device="cpu", dtype="float32")
    ids = add_id_tokens(None, tok, args.users, args.items)
    torch.manual_seed(0)
    model = CLLM4Rec(lm, ids, mode="clean", lambda_v=1.0, ce_chunk=1024)
    table = torch.nn.Embedding.from_pretrained(model.sets["con"].weight.detach().clone(),
                                               freeze=False)
    opt_ours = torch.optim.Adam(model.sets.parameters(), lr=1e-3)
    opt_bare = torch.optim.Adam(table.parameters(), lr=1e-3)
    batch = content_batch(tok, ids, args)
    sides = {"ours": lambda: step(model.loss(**batch)[0], opt_ours),
             "bare": lambda: step(bare_loss(lm, table, ids, batch), opt_bare)}
    diff = abs(sides["ours"]() - sides["bare"]())  # same weights before the first update
    for _ in range(args.warmup - 1):
        sides["ours"](), sides["bare"]()
    times = {"ours": [], "bare": []}
    for k in range(args.steps):
        for side in (("ours", "bare") if k % 2 == 0 else ("bare", "ours")):
            t = time.perf_counter()
            sides[side]()
            times[side].append(time.perf_counter() - t)
    print("\n".join(f"step seconds, {k}: {[round(x, 3) for x in v]}" for k, v in times.items()))
    n = int(batch["mask"].sum())
    o, b = statistics.median(times["ours"]), statistics.median(times["bare"])
    shape = f"{args.batch} x <= {args.seq} tokens ({n} real), {ids.end:,}-token vocabulary"
    pair = statistics.median(y / x for x, y in zip(times["ours"], times["bare"]))
    return [(f"{args.model}: content-LM step, {shape}, Adam", f"{n / o:,.0f} tok/s ({o:.3f} s)",
             f"{n / b:,.0f} tok/s ({b:.3f} s)", f"{b / o:.2f} (pairwise {pair:.2f})"),
            (f"{args.model}: first-step loss, ours - bare", f"{diff:.1e}", "-", "-")]


def ce_child(variant: str, args) -> None:
    """One forward + backward in this fresh process; prints extra peak bytes and seconds."""
    import torch.nn.functional as F

    from recpipe.llm.chunked import chunked_cross_entropy

    cuda = torch.cuda.is_available()
    dev, g = "cuda" if cuda else "cpu", torch.Generator().manual_seed(0)

    def inputs(n, c):
        h = torch.randn(n, args.hidden, generator=g).to(dev).requires_grad_()
        w = (torch.randn(c, args.hidden, generator=g) * 0.05).to(dev).requires_grad_()
        return h, w, torch.randint(0, c, (n,), generator=g).to(dev)

    def run(h, w, t):
        if variant == "chunked":
            return chunked_cross_entropy(h, w, t, args.chunk)
        return F.cross_entropy(h @ w.T, t)

    def mem(key: str) -> int:  # bytes
        if cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated()
        if how == "ru_maxrss":
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return 1024 * int(re.search(rf"{key}:\s+(\d+)", open("/proc/self/status").read())[1])

    run(*inputs(2 * args.chunk, 64)).backward()  # warm-up: first-call costs (checkpoint import)
    h, w, t = inputs(args.positions, args.ce_items)
    how = "CUDA max_memory_allocated"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    else:  # reset the kernel's peak-RSS counter, so that earlier peaks do not count
        try:
            Path("/proc/self/clear_refs").write_text("5")
            how = "extra peak RSS (VmHWM)"
        except OSError:
            how = "ru_maxrss"
    before, start = mem("VmRSS"), time.perf_counter()
    loss = run(h, w, t)
    loss.backward()
    extra, sec = mem("VmHWM") - before, time.perf_counter() - start
    if args.save:
        torch.save({"loss": loss.detach().cpu(), "h": h.grad.cpu(), "w": w.grad.cpu()}, args.save)
    print(json.dumps({"extra": extra, "sec": sec, "how": how}))


def bench_ce(args) -> list[tuple]:
    res, tmp = {"chunked": [], "direct": []}, Path(tempfile.mkdtemp(prefix="bench_cllm4rec_"))
    for r in range(args.ce_rounds):
        for v in (("direct", "chunked") if r % 2 == 0 else ("chunked", "direct")):
            cmd = [sys.executable, __file__, "--ce-child", v, "--positions", str(args.positions),
                   "--hidden", str(args.hidden), "--ce-items", str(args.ce_items),
                   "--chunk", str(args.chunk), "--threads", str(args.threads)] + (["--save", str(tmp / v)] if r == 0 else [])
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            res[v].append(json.loads(out.strip().splitlines()[-1]))
    a, b = torch.load(tmp / "chunked"), torch.load(tmp / "direct")
    diff = {k: float((a[k] - b[k]).abs().max()) for k in ("loss", "h", "w")}
    shutil.rmtree(tmp)
    for v, rs in res.items():
        print(f"CE {v}: extra MiB {[round(x['extra'] / 2**20) for x in rs]}, "
              f"seconds {[round(x['sec'], 2) for x in rs]}")
    c, d = ({k: statistics.median(x[k] for x in res[v]) for k in ("extra", "sec")}
            for v in ("chunked", "direct"))
    shape = f"h [{args.positions:,}, {args.hidden}], W [{args.ce_items:,}, {args.hidden}]"
    return [(f"item CE fwd+bwd, {shape}: {res['direct'][0]['how']}",
             f"{c['extra'] / 2**20:,.0f} MiB (chunk {args.chunk})",
             f"{d['extra'] / 2**20:,.0f} MiB (F.cross_entropy(h @ W.T))",
             f"{d['extra'] / max(c['extra'], 1):.1f}x lower"),
            ("item CE fwd+bwd, time", f"{c['sec']:.2f} s", f"{d['sec']:.2f} s",
             f"{d['sec'] / c['sec']:.2f}"),
            ("item CE, max abs difference chunked - direct",
             f"loss {diff['loss']:.1e}, dh {diff['h']:.1e}, dW {diff['w']:.1e}", "-", "-")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", help="smollm2-135m | tiny-gpt2 | ...")
    ints = {"users": 22363, "items": 12101, "batch": 20, "seq": 40, "warmup": 2, "steps": 5,
            "positions": 20 * 1020, "hidden": 768, "ce-items": 10000, "chunk": 1024,
            "ce-rounds": 2, "threads": 0}  # Beauty's users, items; threads 0: torch's default
    for k, v in ints.items():
        ap.add_argument(f"--{k}", type=int, default=v)
    ap.add_argument("--ce-child", choices=("chunked", "direct"), help=argparse.SUPPRESS)
    ap.add_argument("--save", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.ce_child:
        ce_child(args.ce_child, args)
        return 0
    load = os.getloadavg()[0]
    rows = bench_step(args) + bench_ce(args)
    print(f"\ncpu, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores; load average "
          f"{load:.1f} before, {os.getloadavg()[0]:.1f} after; medians of {args.steps} "
          f"alternating steps / {args.ce_rounds} CE rounds\n")
    print_table(rows, ratio="higher = recpipe better")
    return 0


if __name__ == "__main__":
    sys.exit(main())
