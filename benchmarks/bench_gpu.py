"""The GPU benchmark (issue 19): every LLM stage's training step, the graph epochs and the
evaluator's throughput on one device, in one run, written as a markdown table.

    python benchmarks/bench_gpu.py                       # one GPU, bf16, SmolLM2-135M
    python benchmarks/bench_gpu.py --model /models/qwen2.5-1.5b --batch 16   # a larger backbone
    python benchmarks/bench_gpu.py --device cpu --dtype float32 --model tiny-llama --steps 2 \\
        --users 200 --items 150 --out reports/gpu_cpu.md  # plumbing on a CPU (tests run this)

Data: the synthetic three-domain sample (`--users` x `--items`, titles and reviews) through
ingest and the random split, in a temporary folder. HeLLM's stage-1 exports are random arrays of
their real shapes (the step's cost does not depend on their values).

LLM stages (hellm, cllm4rec_pretrain, cllm4rec_finetune, hum): each stage's own fit, through the
one training loop, `--steps` optimiser steps of `--batch` samples in `--dtype` (the first step's
warm-up included: raise `--steps` for a steadier rate). The loop's epoch row gives tokens/s (real tokens, no padding), MFU (model FLOPs
per token x tokens/s over the device's dense bf16 peak, recpipe/llm/flops.py) and peak memory
(CUDA: `max_memory_allocated`). CLLM4Rec's backbone is frozen, so its MFU counts the frozen
backward too; its FLOPs include the vocabulary head (an upper bound, README "CLLM4Rec").

Graph: LightGCN and SimGCL (align none) on the same split, the median epoch and validation
pass over `--graph-epochs`. Evaluation: the one evaluator on random 64-d embeddings of
`--eval-users` x `--eval-items`, users/s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout


def split(tmp: Path, users: int, items: int) -> Path:
    from recpipe.config import parse
    from recpipe.data.ingest import ingest
    from recpipe.data.processed import build
    from recpipe.data.sample import SampleConfig, generate
    from recpipe.params import DatasetParams, IngestParams, SplitParams

    generate(SampleConfig(n_users=users, n_items=items, seed=1), tmp / "raw")
    ingest(DatasetParams(path=str(tmp / "raw")), IngestParams(), tmp / "interim")
    build(tmp / "interim", tmp / "processed", parse(SplitParams, {}, prefix="split"), 1)
    return tmp / "processed"


def section(name: str, args, **keys):
    """The stage's params.yaml section with the benchmark's backbone, device and budget."""
    import yaml

    from recpipe.config import section as parse_section

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    s = params[name]
    s.update({"model": args.model, "device": args.device, "dtype": args.dtype, **keys})
    train = {"epochs": 1, "max_steps": args.steps, "batch_size": args.batch,
             "save_every": 0, "patience": 0}
    for sub in ("pretrain", "finetune") if name == "cllm4rec" else ("",):
        (s[sub] if sub else s).setdefault("train", {}).update(train)
    from recpipe.cllm4rec.params import CLLM4RecParams
    from recpipe.hellm.params import HeLLMParams
    from recpipe.hum.params import HUMParams

    cls = {"hellm": HeLLMParams, "hum": HUMParams, "cllm4rec": CLLM4RecParams}[name]
    return parse_section(params, name, cls)


def row(stage: str, fit, wall: float) -> dict:
    last = fit.history[-1]
    return {"stage": stage, "steps": fit.steps, "tokens_per_s": last.get("tokens_per_s"),
            "mfu": last.get("mfu"), "peak_mem_gb": last.get("peak_mem_gb"), "wall_s": wall}


def llm_rows(processed: Path, args) -> list[dict]:
    from recpipe.cllm4rec.finetune import finetune
    from recpipe.cllm4rec.run import pretrain, setup
    from recpipe.data.view import load_view
    from recpipe.eval.protocol import resolve
    from recpipe.hellm.run import fit as hellm_fit
    from recpipe.hum.run import fit as hum_fit

    data, ev = load_view(processed), resolve({"preset": "unified"})
    samples = args.batch * args.steps
    rng = np.random.default_rng(0)
    mm = rng.standard_normal((data.n_items, 64), dtype=np.float32)
    sa = rng.standard_normal((data.n_items + 1, 64), dtype=np.float32)
    out = []
    t = time.perf_counter()
    res = hellm_fit(data, section("hellm", args, users=samples, eval_users=args.llm_eval_users),
                    ev, 1, mm, sa, device=args.device, progress=False)
    out.append(row("hellm", res["fit"], time.perf_counter() - t))
    t = time.perf_counter()
    res = hum_fit(data, section("hum", args, train_samples=samples,
                                eval_users=args.llm_eval_users),
                  ev, 1, device=args.device, progress=False)
    out.append(row("hum", res["fit"], time.perf_counter() - t))
    p = section("cllm4rec", args, users=samples, eval_users=args.llm_eval_users)
    st = setup(p, processed, data, 1, args.device)
    t = time.perf_counter()
    model, fit = pretrain(st, progress=False)
    out.append(row("cllm4rec_pretrain", fit, time.perf_counter() - t))
    tables = {k: v.weight.detach().float().cpu() for k, v in model.sets.items()}
    t = time.perf_counter()
    res = finetune(st, tables, ev, progress=False)
    out.append(row("cllm4rec_finetune", res["fit"], time.perf_counter() - t))
    return out


def graph_rows(processed: Path, args) -> list[dict]:
    from recpipe.eval.data import load_split
    from recpipe.eval.protocol import resolve
    from recpipe.graph.run import fit
    from recpipe.train.loop import TrainConfig

    data, out = load_split(processed), []
    rng = np.random.default_rng(0)  # align none ignores them; the wrapper wants their shapes
    sem = (rng.standard_normal((data.n_users, 64), dtype=np.float32),
           rng.standard_normal((data.n_items, 64), dtype=np.float32))
    for model in ("lightgcn", "simgcl"):
        res = fit(model, "none", data, sem, TrainConfig(epochs=args.graph_epochs, patience=0,
                                                         eval_every=1),
                  resolve({"preset": "rlmrec"}), 1, device=args.device, progress=False)
        h = res["history"]
        out.append({"stage": f"graph {model}", "epoch_s": statistics.median(
            r["epoch_s"] for r in h[1:] or h), "eval_s": statistics.median(
            r["eval_s"] for r in h if "eval_s" in r)})
    return out


def eval_row(args) -> dict:
    import scipy.sparse as sp

    from recpipe.eval.data import SplitData
    from recpipe.eval.evaluator import evaluate
    from recpipe.eval.protocol import resolve
    from recpipe.eval.scorers import EmbeddingScorer

    n_u, n_i, rng = args.eval_users, args.eval_items, np.random.default_rng(0)
    uid = np.repeat(np.arange(n_u), 10)

    def part():
        m = sp.csr_matrix((np.ones(len(uid), np.float32), (uid, rng.integers(0, n_i, len(uid)))),
                          shape=(n_u, n_i))
        m.sum_duplicates()
        m.data[:] = 1
        return m

    train, test = part(), part()
    test = (test - test.multiply(train)).tocsr()
    test.eliminate_zeros()
    data = SplitData(n_u, n_i, train.tocsr(), sp.csr_matrix((n_u, n_i), dtype=np.float32), test,
                     np.zeros(n_i, np.int32), ["all"])
    scorer = EmbeddingScorer(rng.standard_normal((n_u, 64), dtype=np.float32),
                             rng.standard_normal((n_i, 64), dtype=np.float32), device=args.device)
    t = time.perf_counter()
    res = evaluate(scorer, data, resolve({"preset": "rlmrec"}), "test")
    wall = time.perf_counter() - t
    return {"stage": f"evaluate {n_u:,} x {n_i:,}", "users_per_s": res.summary["units"] / wall,
            "wall_s": wall}


def markdown(rows: list[dict], device: str, args) -> str:
    def f(v, fmt):
        return "–" if v is None else format(v, fmt)

    lines = [f"# GPU benchmark ({device}, {args.dtype}, backbone {args.model})", "",
             f"`python benchmarks/bench_gpu.py {' '.join(sys.argv[1:])}`".rstrip(), "",
             "| stage | tokens/s | MFU | peak GB | epoch s | validation s | users/s | wall s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['stage']} | {f(r.get('tokens_per_s'), ',.0f')} | "
                     f"{f(r.get('mfu'), '.1%')} | {f(r.get('peak_mem_gb'), '.2f')} | "
                     f"{f(r.get('epoch_s'), '.3f')} | {f(r.get('eval_s'), '.3f')} | "
                     f"{f(r.get('users_per_s'), ',.0f')} | {f(r.get('wall_s'), '.1f')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--steps", type=int, default=20, help="timed optimiser steps per LLM stage")
    ap.add_argument("--batch", type=int, default=16, help="samples per step")
    ap.add_argument("--users", type=int, default=2000, help="users of the synthetic sample")
    ap.add_argument("--items", type=int, default=1500, help="items of the synthetic sample")
    ap.add_argument("--llm-eval-users", type=int, default=64)
    ap.add_argument("--graph-epochs", type=int, default=5)
    ap.add_argument("--eval-users", type=int, default=50000)
    ap.add_argument("--eval-items", type=int, default=90000)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu.md"))
    args = ap.parse_args()
    import torch

    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    with tempfile.TemporaryDirectory() as tmp:
        processed = split(Path(tmp), args.users, args.items)
        rows = llm_rows(processed, args) + graph_rows(processed, args) + [eval_row(args)]
    md = markdown(rows, device, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(md)
    print(md)


if __name__ == "__main__":
    main()
