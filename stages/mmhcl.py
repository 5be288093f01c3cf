"""Stage `mmhcl`: MMHCL (HeLLM's stage 1, hypergraph contrastive CF), selected on validation.

Reads params: mmhcl, eval, seed. Reads <processed> (the split: every graph and batch comes from
its *training* part, so on a LOO split MMHCL never sees items[-2:]) and the item modalities of
`mmhcl.modalities` (text: <embeddings>/item_text.npy from the embed stage; attributes:
<processed>/items.parquet; image: mmhcl.image_path or <embeddings>/item_image.npy). Writes into
<out>: `user_emb.npy` (n_users, d) and `item_emb.npy` (n_items, d) float32, row = uid / iid of
<processed>/user_map.parquet / item_map.parquet (the fused u, i at the best validation: what
HeLLM reads), `metrics.json` (every metric, flat keys, with `modalities`), `per_user.parquet`,
`hparams.json` (every hyperparameter it trained with, after preset and overrides) and the
resumable checkpoint `ckpt`; the headline keys to --metrics and dvclive curves to --plots.
`mmhcl.seeds: [1, 2, 3]` runs each seed into <out>/seed<k>/ and writes mean and _std.
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
    """(MMHCLParams, EvalConfig, seeds) from params.yaml; raises ParamError."""
    from recpipe.eval.protocol import resolve
    from recpipe.eval.seeds import parse_seeds
    from recpipe.hypergraph.params import MMHCLParams
    from recpipe.train.seeds import top_seed

    p = section(params, "mmhcl", MMHCLParams)
    return p, resolve(params.get("eval")), parse_seeds(p.seeds, top_seed(params), "mmhcl.seeds")


def run(p, eval_cfg, seeds, processed: Path, embeddings: Path, out: Path, metrics: Path,
        plots: Path) -> dict:
    import torch
    from dvclive import Live

    from recpipe.data.view import load_view
    from recpipe.eval.seeds import run_seeds
    from recpipe.hypergraph.features import load_modalities
    from recpipe.hypergraph.run import fit
    from recpipe.io import write_hparams, write_npy
    from recpipe.train.checkpoint import fingerprint
    from recpipe.train.device import pick_device

    device = pick_device(p.device)
    if p.threads:
        torch.set_num_threads(p.threads)
    data = load_view(processed)
    feats, names = load_modalities(p.modalities, processed, embeddings, p.image_path, data.n_items)
    p = replace(p, modalities=names)  # [auto] resolved: what the graphs, logs and hparams name
    if not names:  # [auto] on ids-only data: no item hypergraph, as with lambda_i = 0
        print("mmhcl: the items have no text, attributes or image features, so there is no "
              "item hypergraph: training with lambda_i = 0 (mmhcl[none])")
        p = replace(p, model={**p.model, "lambda_i": 0.0})
    label = "+".join(names) or "none"  # the resolved list ([auto] -> what the data has)
    print(f"mmhcl: {data.n_users:,} users, {data.n_items:,} items, {data.train.nnz:,} training "
          f"pairs, modalities [{', '.join(names)}], preset {p.preset or '(parser defaults)'}, "
          f"device {device}, seed(s) {', '.join(map(str, seeds))}", flush=True)
    write_hparams(out / "hparams.json", model="mmhcl", preset=p.preset, modalities=names,
                  image_path=p.image_path or None, params=p.model_config(),
                  train=p.train_config(), eval=eval_cfg, seeds=list(seeds), device=device,
                  threads=p.threads)
    # the features enter the fingerprint by content: a re-embedded text table starts afresh
    arrays = [a for f in feats for a in ((f,) if hasattr(f, "ndim") and not hasattr(f, "indptr")
                                         else (f.indptr, f.indices))]

    def one(s):  # s.under(x): x, or x/seed<k> with several seeds
        t0 = time.perf_counter()
        # the caps (epochs, max_steps, time_budget_s) are left out: a capped run continues
        sig = fingerprint(replace(p, train={}, device="", threads=0),
                          p.train_config().resume_key(), eval_cfg, s.value, data, *arrays,
                          code=("train", "eval", "graph", "hypergraph"))
        with Live(str(s.under(plots)), dvcyaml=None, save_dvc_exp=False, report=None) as live:
            res = fit(data, p, eval_cfg, s.value, modalities=feats, device=device,
                      ckpt=s.under(out) / "ckpt", live=live, signature=sig)
        write_npy(s.under(out) / "user_emb.npy", res["export"]["user"])
        write_npy(s.under(out) / "item_emb.npy", res["export"]["item"])
        t, f, tm = res["test"].summary, res["fit"], res["timings"]
        print(f"mmhcl: seed {s.value}: best epoch {res['best_epoch']} of {f.epochs} ({f.stopped}), "
              f"test recall@20 {t.get('recall@20', float('nan')):.4f} ndcg@20 "
              f"{t.get('ndcg@20', float('nan')):.4f}; graphs {tm['graphs_s']:.1f} s, "
              f"{tm['epoch_s']:.1f} s/epoch, validation {tm['valid_s']:.1f} s; "
              f"{time.perf_counter() - t0:.0f} s in all", flush=True)
        return ({"valid": res["valid"], "test": res["test"]},
                {"selected_epoch": res["best_epoch"], "modalities": label})

    # the report's row name says which modalities built the item graph: mmhcl[attributes]
    return run_seeds(seeds, one, eval_cfg, metrics, out, model=f"mmhcl[{label}]")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", required=True, help="the split stage's folder")
    ap.add_argument("--embeddings", required=True,
                    help="the embed stage's folder (read for modalities text and image)")
    ap.add_argument("--out", required=True, help="folder for the export, checkpoint, metrics")
    ap.add_argument("--metrics", required=True, help="the headline keys")
    ap.add_argument("--plots", required=True, help="folder for the dvclive curves")
    args = ap.parse_args(argv)
    try:
        p, eval_cfg, seeds = configure(load_params(args.params))
        m = run(p, eval_cfg, seeds, Path(args.processed), Path(args.embeddings), Path(args.out),
                Path(args.metrics), Path(args.plots))
    except ParamError as e:
        print(f"mmhcl failed: {e}", file=sys.stderr)
        return 2
    if len(seeds) > 1:
        print(f"mmhcl: over {len(seeds)} seeds: test recall@20 {m['test/recall@20']:.4f} ± "
              f"{m['test/recall@20_std']:.4f}, ndcg@20 {m['test/ndcg@20']:.4f} ± "
              f"{m['test/ndcg@20_std']:.4f}")
    return 0


if __name__ == "__main__":
    from recpipe.resources import report

    sys.exit(report("mmhcl", main))
