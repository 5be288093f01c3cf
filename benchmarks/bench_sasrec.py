"""SASRec, ours against the E4SRec reference run unchanged: epoch time and test accuracy.

    python benchmarks/bench_sasrec.py --epochs 3 --seeds 42                 # speed, side by side
    python benchmarks/bench_sasrec.py --epochs 300 --seeds 42 43 44         # fidelity (hours on CPU)

Workload (issue 14): Beauty from ../shared/data/s3rec_seq (byte-identical to E4SRec's
datasets/sequential/Beauty/Beauty.txt), leave-one-out on the full sequences as the reference
splits them (items[:-2] train, items[-2] valid, items[-1] test), E4SRec's hyperparameters
(d 64, 2 blocks, maxlen 50, dropout 0.5, Adam 1e-3 betas (0.9, 0.98), batch 128, StepLR 0.5 per
100 epochs, BCE with one negative), 2 CPU threads for both.

The reference is HestiaSky/E4SRec `baseline/main_sequential.py` from a `fetch`ed mirror
(`--e4srec GITDIR`), copied to a temporary folder and run as a subprocess, unchanged:
`--cuda -1 --epochs N --seed S --save 1`. It prints each epoch's time, which is what we compare
with our loop's `epoch_s`. Its own evaluation needs `Beauty_sample.txt` (99 sampled negatives
per user, S3-Rec style); the mirror lacks that large file, so this script writes one (seeded,
negatives never in the user's sequence). That file only steers the reference's own checkpoint
choice (best sampled *test* Recall@10 every 5 epochs, its quirk); it never enters a number here.
Accuracy: the reference's saved weights load into recpipe's SASRec class (same parameter
names; its 1-based item rows are permuted into our ids), and both models are scored by the
one evaluator on the same split under `eval.preset: hellm` (full ranking, no history
exclusion, single target). Ours is selected on validation NDCG@10, every 5 epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import SHARED  # noqa: E402

FILES = ["baseline/main_sequential.py", "baseline/model.py", "baseline/data_utils.py",
         "baseline/eval_utils.py", "datasets/sequential/Beauty/Beauty.txt"]


def split(tmp: Path) -> Path:
    """Beauty LOO on the full sequences (no truncation, no re-filtering: it is 5-core)."""
    from recpipe.config import parse
    from recpipe.data.ingest import ingest
    from recpipe.data.processed import build
    from recpipe.params import DatasetParams, IngestParams, SplitParams

    src = SHARED / "s3rec_seq"
    if not (src / "Beauty.txt").exists():
        sys.exit(f"{src}/Beauty.txt is missing (../shared/data beside the repo)")
    ingest(parse(DatasetParams, {"format": "seqtxt", "path": str(src)}, prefix="dataset"),
           parse(IngestParams, {"categories": ["Beauty"]}, prefix="ingest"), tmp / "interim")
    build(tmp / "interim", tmp / "processed",
          parse(SplitParams, {"protocol": "loo", "user_core": 0, "item_core": 0}, prefix="split"), 2023)
    return tmp / "processed"


def reference_dir(gitdir: str, tmp: Path) -> Path:
    """The reference's files, unchanged, plus the sampled-negatives file it reads."""
    import numpy as np

    for f in FILES:
        out = tmp / "e4srec" / f
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(subprocess.run(["git", "--git-dir", gitdir, "show", f"HEAD:{f}"],
                                       check=True, capture_output=True).stdout)
    seqs = [list(map(int, line.split())) for line in
            (tmp / "e4srec/datasets/sequential/Beauty/Beauty.txt").read_text().splitlines()]
    n_items = max(max(s[1:]) for s in seqs)
    g = np.random.default_rng(0)
    lines = []
    for s in seqs:
        seen, neg = set(s[1:]), []
        while len(neg) < 99:
            j = int(g.integers(1, n_items + 1))
            if j not in seen and j not in neg:
                neg.append(j)
        lines.append(f"{s[0]} {' '.join(map(str, neg))}")
    (tmp / "e4srec/datasets/sequential/Beauty/Beauty_sample.txt").write_text("\n".join(lines) + "\n")
    return tmp / "e4srec"


def run_reference(ref: Path, epochs: int, seed: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "main_sequential.py", "--model", "SASRec", "--dataset",
                          "Beauty", "--cuda", "-1", "--epochs", str(epochs), "--seed", str(seed),
                          "--save", "1"], cwd=ref / "baseline", env=env, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"the reference failed:\n{res.stderr[-3000:]}")
    times = [float(x) for x in re.findall(r"Epoch time: ([\d.]+)", res.stdout)]
    return {"epoch_s": times, "wall_s": time.perf_counter() - t,
            "weights": ref / "datasets/sequential/Beauty/SASRec.pth"}


def score_reference(weights: Path, data, eval_cfg) -> dict:
    """The reference's saved model, rows permuted into our ids, scored by our evaluator."""
    import numpy as np
    import torch

    from recpipe.eval.evaluator import evaluate
    from recpipe.seq.params import SASRecConfig
    from recpipe.seq.run import SeqScorer
    from recpipe.seq.sasrec import SASRec

    state = torch.load(weights, map_location="cpu", weights_only=True)["model"]
    rows = np.concatenate([[0], np.asarray(data.item_ids).astype(np.int64)])  # our row r <- reference row rows[r]
    state["embedding.weight"] = state["embedding.weight"][torch.from_numpy(rows)]
    model = SASRec(data.n_items, SASRecConfig(), 0)
    model.load_state_dict(state)
    model.eval()
    return evaluate(SeqScorer(model, data, "test", "cpu"), data, eval_cfg, "test").summary


def run_ours(data, epochs: int, seed: int, eval_cfg) -> dict:
    from recpipe.config import parse
    from recpipe.seq.params import SASRecParams
    from recpipe.seq.run import fit

    p = parse(SASRecParams, {"device": "cpu", "threads": 2, "train": {"epochs": epochs}}, prefix="sasrec")
    t = time.perf_counter()
    res = fit(data, p, eval_cfg, seed, progress=False)
    return {"epoch_s": [h["epoch_s"] for h in res["fit"].history], "wall_s": time.perf_counter() - t,
            "test": res["test"].summary, "best_epoch": res["best_epoch"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42])
    ap.add_argument("--e4srec", default="/work/.mirror/HestiaSky+E4SRec/repo",
                    help="git dir of a HestiaSky/E4SRec mirror")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    import torch

    from recpipe.data.view import load_view
    from recpipe.eval.protocol import resolve

    torch.set_num_threads(2)
    eval_cfg = resolve({"preset": "hellm"})
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data = load_view(split(tmp))
        ref = reference_dir(args.e4srec, tmp)
        rows = []
        for seed in args.seeds:  # ours, then the reference, per seed: the same machine state
            ours = run_ours(data, args.epochs, seed, eval_cfg)
            theirs = run_reference(ref, args.epochs, seed)
            theirs["test"] = score_reference(theirs.pop("weights"), data, eval_cfg)
            rows.append({"seed": seed, "ours": ours, "reference": theirs,
                         "load": os.getloadavg()[0]})
            print(f"seed {seed}: epoch s ours {statistics.median(ours['epoch_s']):.2f} vs reference "
                  f"{statistics.median(theirs['epoch_s']):.2f}; test ndcg@10 ours "
                  f"{ours['test']['ndcg@10']:.4f} (epoch {ours['best_epoch']}) vs reference "
                  f"{theirs['test']['ndcg@10']:.4f}", flush=True)
    mo = statistics.median([statistics.median(r["ours"]["epoch_s"]) for r in rows])
    mr = statistics.median([statistics.median(r["reference"]["epoch_s"]) for r in rows])
    no = statistics.mean(r["ours"]["test"]["ndcg@10"] for r in rows)
    nr = statistics.mean(r["reference"]["test"]["ndcg@10"] for r in rows)
    print(f"\n{args.epochs} epochs, seeds {args.seeds}: median epoch {mo:.2f} s vs {mr:.2f} s = "
          f"{mr / mo:.1f}x; mean test NDCG@10 {no:.4f} vs {nr:.4f} ({100 * (no / nr - 1):+.1f}%)")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
