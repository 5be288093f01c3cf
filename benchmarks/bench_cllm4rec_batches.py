"""CLLM4Rec's collaborative training steps on the embedded sample: length-grouped batches
(`cllm4rec.group_by_length: true`) against plain random batches, side by side in one run.

    python benchmarks/bench_cllm4rec_batches.py                  # smollm2-135m, ~3 min, 2 cores
    python benchmarks/bench_cllm4rec_batches.py --model tiny-gpt2 --steps 4

The data: the embedded sample at its defaults (2,000 users x 1,500 items, seed 2023),
generated, ingested and split in a temporary folder. The model: CLLM4Rec on `--model`
with every user (cllm4rec.users: 0) and the collaborative LM alone. Each side draws
`--steps` batches of `--batch` users from its own PretrainBatches epoch (the same seed) and
runs forward, backward and an Adam step on each, the two sides alternating batch by batch.
Reported per side: real tokens (ID tokens and prompt words, no padding), computed tokens
(batch x padded width), the median step time and real tokens/s. The first step of each side
warms up and is not counted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import print_table


def sample_split(tmp: Path, seed: int) -> Path:
    from recpipe.config import parse
    from recpipe.data.ingest import ingest
    from recpipe.data.processed import build
    from recpipe.data.sample import SampleConfig, generate
    from recpipe.params import DatasetParams, IngestParams, SplitParams

    generate(SampleConfig(seed=seed), tmp / "raw")
    ingest(DatasetParams(path=str(tmp / "raw")), IngestParams(), tmp / "interim")
    build(tmp / "interim", tmp / "processed", parse(SplitParams, {}, prefix="split"), seed)
    return tmp / "processed"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--steps", type=int, default=9, help="counted steps per side")
    ap.add_argument("--batch", type=int, default=20, help="users a batch (the reference's 20)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=2023)
    args = ap.parse_args()

    import torch

    from recpipe.cllm4rec.batches import PretrainBatches
    from recpipe.cllm4rec.params import CLLM4RecParams
    from recpipe.cllm4rec.run import build, setup
    from recpipe.config import parse
    from recpipe.data.view import load_view

    if args.threads:
        torch.set_num_threads(args.threads)
    p = parse(CLLM4RecParams, {"model": args.model, "users": 0, "pretrain": {"content": False}},
              prefix="cllm4rec")
    with tempfile.TemporaryDirectory() as tmp:
        processed = sample_split(Path(tmp), args.seed)
        s = setup(p, processed, load_view(processed), args.seed)
    model = build(s)
    opt = torch.optim.Adam([w for w in model.parameters() if w.requires_grad], lr=1e-3)
    sides = {}
    for name, group in (("grouped", True), ("random", False)):
        src = PretrainBatches(s.users, [], s.ids, s.pieces, args.batch, args.seed, warmup=0,
                              reorder=True, max_tokens=p.max_tokens, group=group)
        sides[name] = {"it": src.epoch(), "t": [], "real": 0, "computed": 0}
    for k in range(args.steps + 1):
        for side in sides.values():
            b = next(side["it"])
            batch = {key: torch.as_tensor(v) if key in ("ids", "mask", "start") else v
                     for key, v in b.items()}
            t0 = time.perf_counter()
            loss, _ = model.loss(**batch)
            loss.backward()
            opt.step()
            opt.zero_grad()
            if k:  # step 0 warms up
                side["t"].append(time.perf_counter() - t0)
                side["real"] += int(b["mask"].sum())
                side["computed"] += b["mask"].size
    rows, med = [], {}
    for name, side in sides.items():
        med[name] = statistics.median(side["t"])
        tps = side["real"] / sum(side["t"])
        print(f"{name:8s} {args.steps} steps of {args.batch} users: median step {med[name]:.2f} s, "
              f"real tokens {side['real']:,}, computed {side['computed']:,} "
              f"({side['computed'] / side['real']:.2f}x), {tps:.0f} real tokens/s")
        side["tps"] = tps
    g, r = sides["grouped"], sides["random"]
    rows.append(["collaborative step, real tokens/s", f"{g['tps']:.0f}", f"{r['tps']:.0f}",
                 f"{g['tps'] / r['tps']:.2f}x"])
    rows.append(["computed / real tokens", f"{g['computed'] / g['real']:.2f}",
                 f"{r['computed'] / r['real']:.2f}", "–"])
    print_table(rows, baseline="random batches")


if __name__ == "__main__":
    main()
