"""Stage `graph`: a graph CF backbone x RLMRec alignment, trained with validation selection.

Reads params: graph, eval, seed. Reads <processed> and, for align=con|gen, the semantic
tables (graph.semantic: `profiles` = <embeddings>/{user,item}_profile.npy from the embed
stage; `release` = <processed>/{user,item}_emb.npy imported from an RLMRec release).
Writes <out>/ (embeddings, per-user metrics, checkpoint, and hparams.json: every
hyperparameter the run trained with, after presets, mode and overrides), --metrics (the
headline keys) and dvclive curves in <plots>/. Every path is a required argument; dvc.yaml
passes them (its `paths` vars).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

# this checkout's recpipe before any installed one: DVC runs a queued experiment in a copy
# of the repo, and the copy must import the code it hashed as a dependency
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recpipe.config import ParamError, load_params, section
from recpipe.graph.params import GraphParams


def without_text(p: GraphParams, embeddings: Path) -> bool:
    """Alignment asked for on data that has no text: the embed stage wrote no profile matrices
    and said so (`"status": "skipped: no text"` in its metrics.json: the RLMRec release, S3Rec
    sequences)."""
    import json

    report = embeddings / "metrics.json"
    if p.align == "none" or p.semantic != "profiles" or not report.exists():
        return False
    return str(json.loads(report.read_text()).get("status", "")).startswith("skipped")


def semantic_tables(p: GraphParams, processed: Path, embeddings: Path):
    import numpy as np

    if p.semantic == "release":
        files = [processed / "user_emb.npy", processed / "item_emb.npy"]
        how = "ingest an RLMRec release that has usr_emb_np.pkl / itm_emb_np.pkl"
    else:
        files = [embeddings / "user_profile.npy", embeddings / "item_profile.npy"]
        how = ("run the profile and embed stages (dvc repro embed); they write them only when "
               "the data has text to profile, so for a release without text use "
               "graph.align=none or graph.semantic=release")
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise ParamError(f"graph.align={p.align} needs {', '.join(missing)}; {how}")
    return [np.load(f, allow_pickle=False) for f in files]


@dataclass
class Plan:
    """What one stage run trains with, from the params alone (no data read)."""

    p: GraphParams
    bb_cfg: object  # the backbone's Config after preset, mode quirks and overrides
    al_cfg: object  # recpipe.graph.align.AlignConfig
    tr_cfg: object  # recpipe.train.loop.TrainConfig
    eval_cfg: object  # recpipe.eval.protocol.EvalConfig
    seeds: list
    overrides: dict  # {"applied": {...}, "not_applied": {...}} (parity: nothing applied)


def configure(params: dict) -> Plan:
    """Validate the graph, eval and seed params into a Plan; raises ParamError."""
    from recpipe.eval.protocol import resolve as resolve_eval
    from recpipe.eval.seeds import parse_seeds
    from recpipe.train.seeds import top_seed
    from recpipe.graph.presets import build_configs, resolve_overrides

    p = section(params, "graph", GraphParams)
    eval_cfg = resolve_eval(params.get("eval"))
    seeds = parse_seeds(p.seeds, top_seed(params), "graph.seeds")
    applied, not_applied = resolve_overrides(p.overrides, p.model, p.align, p.mode)
    bb_cfg, al_cfg = build_configs(p.model, p.align, p.kind, p.mode, applied)
    tr_cfg = p.train_config()
    return Plan(p, bb_cfg, al_cfg, tr_cfg, eval_cfg, seeds, {"applied": applied, "not_applied": not_applied})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", required=True, help="the split stage's folder")
    ap.add_argument("--embeddings", required=True,
                    help="the embed stage's folder (read for graph.semantic=profiles)")
    ap.add_argument("--out", required=True, help="folder for the model, checkpoint, metrics")
    ap.add_argument("--metrics", required=True, help="the headline keys")
    ap.add_argument("--plots", required=True, help="folder for the dvclive curves")
    args = ap.parse_args(argv)
    try:
        params = load_params(args.params)
        plan = configure(params)
        if without_text(plan.p, Path(args.embeddings)):
            # data with ids only runs through every stage (as profile and embed do): the plain
            # backbone, labelled <model>-none in the metrics and the report
            print(f"graph: the data has no text, so there are no profiles to align with; "
                  f"graph.align={plan.p.align} falls back to none ({plan.p.model}-none)")
            plan = configure({**params, "graph": {**params.get("graph", {}), "align": "none"}})
        p = plan.p
        sem = semantic_tables(p, Path(args.processed), Path(args.embeddings)) if p.align != "none" else (None, None)
    except ParamError as e:
        print(f"graph failed: {e}", file=sys.stderr)
        return 2
    if plan.overrides["not_applied"]:
        print(f"graph: graph.mode=parity trains RLMRec's official {p.model}-{p.align} values; "
              f"graph.overrides {plan.overrides['not_applied']} not applied (clean mode only)")
    run(plan, sem, args)
    return 0


def run(plan: Plan, sem, args) -> None:
    import torch
    from dvclive import Live

    from recpipe.train.device import pick_device
    from recpipe.eval.data import load_split
    from recpipe.eval.seeds import run_seeds
    from recpipe.graph.presets import trained_hparams
    from recpipe.graph.run import fit
    from recpipe.io import write_hparams, write_npy
    from recpipe.train.checkpoint import fingerprint

    p, bb_cfg, al_cfg, tr_cfg, eval_cfg, seeds = (plan.p, plan.bb_cfg, plan.al_cfg, plan.tr_cfg,
                                                  plan.eval_cfg, plan.seeds)
    device = pick_device(p.device)
    if p.threads:
        torch.set_num_threads(p.threads)
    data = load_split(args.processed)
    out = Path(args.out)
    print(f"graph: {p.model} align={p.align} mode={p.mode} on {device}: {data.n_users:,} users, "
          f"{data.n_items:,} items, seed(s) {', '.join(map(str, seeds))}")
    write_hparams(out / "hparams.json", model=p.model, align=p.align, mode=p.mode, kind=p.kind,
                  semantic=p.semantic if p.align != "none" else None,
                  **trained_hparams(bb_cfg, al_cfg, p.align), train=tr_cfg, eval=eval_cfg,
                  seeds=list(seeds), device=device, threads=p.threads, overrides=plan.overrides)

    def one(s):  # s: recpipe.eval.seeds.Seed; s.under(x) = x, or x/seed<k> with several seeds
        t0 = time.perf_counter()
        # the caps (epochs, max_steps, time_budget_s) are left out: a capped run continues
        sig = fingerprint(replace(p, train={}), bb_cfg, al_cfg, tr_cfg.resume_key(), eval_cfg, s.value,
                          data, *(x for x in sem if x is not None), code=("train", "eval", "graph"))
        with Live(str(s.under(args.plots)), dvcyaml=None, save_dvc_exp=False, report=None) as live:
            res = fit(p.model, p.align, data, sem, tr_cfg, eval_cfg, s.value, device=device,
                      ckpt=s.under(out) / "ckpt", live=live, signature=sig, configs=(bb_cfg, al_cfg))
        write_npy(s.under(out) / "user_emb.npy", res["scorer"].user_np)
        write_npy(s.under(out) / "item_emb.npy", res["scorer"].item_np)
        t = res["test"].summary
        print(f"graph: seed {s.value}: best epoch {res['best_epoch']}, test recall@20 "
              f"{t.get('recall@20', float('nan')):.4f} ndcg@20 {t.get('ndcg@20', float('nan')):.4f} "
              f"in {time.perf_counter() - t0:.0f} s")
        return {"valid": res["valid"], "test": res["test"]}, {"mode": p.mode, "selected_epoch": res["best_epoch"]}

    m = run_seeds(seeds, one, eval_cfg, args.metrics, out, model=f"{p.model}-{p.align}")
    if len(seeds) > 1:
        print(f"graph: over {len(seeds)} seeds: test recall@20 {m['test/recall@20']:.4f} ± "
              f"{m['test/recall@20_std']:.4f}, ndcg@20 {m['test/ndcg@20']:.4f} ± {m['test/ndcg@20_std']:.4f}")


if __name__ == "__main__":
    from recpipe.resources import report

    sys.exit(report("graph", main))
