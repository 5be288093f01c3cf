"""Stage `sasrec`: SASRec (E4SRec recipe) on the shared split, selected on validation.

Reads params: sasrec, eval, seed. Reads <processed> (the split; SASRec trains on each user's
*training* sequence only, so on a LOO split it never sees items[-2:]). Writes into <out>:
`item_emb.npy` (the export HeLLM reads: float32 [n_items + 1, d], row 0 = padding, row iid + 1
= item iid of <processed>/item_map.parquet), `metrics.json` (every metric, flat keys),
`per_user.parquet`, `hparams.json` (every hyperparameter it trained with) and the resumable
checkpoint `ckpt`; the headline keys to --metrics and the dvclive curves to --plots.
`sasrec.seeds: [1, 2, 3]` runs each seed into <out>/seed<k>/ and writes mean and _std.
Every path is a required argument; dvc.yaml passes them (its `paths` vars).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

# this checkout's recpipe before any installed one: DVC runs a queued experiment in a copy
# of the repo, and the copy must import the code it hashed as a dependency
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recpipe.config import ParamError, load_params, section


def configure(params: dict):
    """(SASRecParams, EvalConfig, seeds) from params.yaml; raises ParamError."""
    from recpipe.eval.protocol import resolve
    from recpipe.eval.seeds import parse_seeds
    from recpipe.seq.params import SASRecParams
    from recpipe.train.seeds import top_seed

    p = section(params, "sasrec", SASRecParams)
    return p, resolve(params.get("eval")), parse_seeds(p.seeds, top_seed(params), "sasrec.seeds")


def run(p, eval_cfg, seeds, processed: Path, out: Path, metrics: Path, plots: Path) -> dict:
    import torch
    from dvclive import Live

    from recpipe.data.sequences import NO_TS
    from recpipe.data.view import load_view
    from recpipe.eval.seeds import run_seeds
    from recpipe.io import write_hparams, write_npy
    from recpipe.seq.run import fit
    from recpipe.train.checkpoint import fingerprint
    from recpipe.train.device import pick_device

    device = pick_device(p.device)
    if p.threads:
        torch.set_num_threads(p.threads)
    data = load_view(processed)
    train = data.sequences(("train",))
    n_rows = int((train.lengths() >= 2).sum())
    if len(train.ts) and (train.ts == NO_TS).all():
        print("sasrec: warning: the data has no timestamps, so each user's sequence is in the "
              "order of the split's files (an RLMRec release has no order)")
    print(f"sasrec: {data.n_users:,} users ({n_rows:,} with a training row), {data.n_items:,} "
          f"items, loss {p.model['loss']}, device {device}, seed(s) {', '.join(map(str, seeds))}")
    write_hparams(out / "hparams.json", model="sasrec", params=p, train=p.train_config(),
                  eval=eval_cfg, seeds=list(seeds), device=device)

    def one(s):  # s.under(x): x, or x/seed<k> with several seeds
        t0 = time.perf_counter()
        # the caps (epochs, max_steps, time_budget_s) are left out: a capped run continues
        sig = fingerprint(replace(p, train={}, device="", threads=0),
                          p.train_config().resume_key(), eval_cfg, s.value, data,
                          code=("train", "eval", "seq"))
        with Live(str(s.under(plots)), dvcyaml=None, save_dvc_exp=False, report=None) as live:
            res = fit(data, p, eval_cfg, s.value, device=device, ckpt=s.under(out) / "ckpt",
                      live=live, signature=sig)
        write_npy(s.under(out) / "item_emb.npy", res["model"].item_table().cpu().numpy())
        t, f = res["test"].summary, res["fit"]
        print(f"sasrec: seed {s.value}: best epoch {res['best_epoch']} of {f.epochs} "
              f"({f.stopped}), test ndcg@10 {t.get('ndcg@10', float('nan')):.4f} recall@10 "
              f"{t.get('recall@10', float('nan')):.4f} in {time.perf_counter() - t0:.0f} s")
        return {"valid": res["valid"], "test": res["test"]}, {"selected_epoch": res["best_epoch"]}

    return run_seeds(seeds, one, eval_cfg, metrics, out, model="sasrec")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", required=True, help="the split stage's folder")
    ap.add_argument("--out", required=True, help="folder for the model, export, metrics")
    ap.add_argument("--metrics", required=True, help="the headline keys")
    ap.add_argument("--plots", required=True, help="folder for the dvclive curves")
    args = ap.parse_args(argv)
    try:
        p, eval_cfg, seeds = configure(load_params(args.params))
        m = run(p, eval_cfg, seeds, Path(args.processed), Path(args.out), Path(args.metrics),
                Path(args.plots))
    except ParamError as e:
        print(f"sasrec failed: {e}", file=sys.stderr)
        return 2
    if len(seeds) > 1:
        print(f"sasrec: over {len(seeds)} seeds: test ndcg@10 {m['test/ndcg@10']:.4f} ± "
              f"{m['test/ndcg@10_std']:.4f}")
    return 0


if __name__ == "__main__":
    from recpipe.resources import report

    sys.exit(report("sasrec", main))
