"""Stage `baselines`: MostPopular, ItemKNN, EASE and BPR-MF on the shared split.

Reads params: baselines, eval, seed. For each model in `baselines.models`: fit on train
(BPR-MF selects its epoch on validation), evaluate the kept state on valid and, once, on test
with the one evaluator; write into `<models-dir>/<name>/`: `metrics.json` (every metric,
flat keys such as `test/recall@20`, `valid/ndcg@20`, `test/recall@20/Books`),
`per_user.parquet`, `hparams.json` (the hyperparameters it trained with, seeds, device) and,
for BPR-MF, its training curve in `curves/` (dvclive, shown by `dvc plots`); and
`<metrics-dir>/<name>.json`, the headline keys declared as DVC metrics
(recpipe/eval/output.py). Every path is a required argument; dvc.yaml passes them (its
`paths` vars).
Models without a training curve (pop, itemknn, ease) write no curve folder. TQDM_DISABLE=1
hides the progress bar.

`baselines.single_domain: [bprmf]` adds `bprmf-single` (`--model bprmf-single`): one BPR-MF
per domain, each on its domain alone, every unit ranked by its target domain's model (the
single-domain rows of HUM's seesaw comparison; it needs eval.candidates=target_domain, the
`hum` preset; recpipe/baselines/single_domain.py). Besides the four baselines it may name
`sasrec` and `lightgcn` (params `baselines.sasrec`, `baselines.lightgcn`), whose merged rows
are the `sasrec` and `graph` stages.

`baselines.seeds: [1, 2, 3]` runs every model once per seed: each seed's metrics, per-user
table and curve go to a `seed<k>/` folder inside the model's folder, and its `metrics.json`
holds the mean with a `_std` beside each metric (recpipe/eval/seeds.py). `[]` = one run with
the top-level `seed`, exactly as without the key.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# this checkout's recpipe before any installed one: DVC runs a queued experiment in a copy
# of the repo, and the copy must import the code it hashed as a dependency
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recpipe.config import ParamError, load_params, section


def run(params: dict, processed: Path, metrics_dir: Path, models_dir: Path,
        only: list[str] | None = None) -> dict[str, dict]:
    """Fit and evaluate the configured baselines (or just `only`), once per seed of
    `baselines.seeds`; return {name: its full metrics (models_dir/<name>/metrics.json)}."""
    from functools import partial

    from recpipe.baselines import MODELS, PER_DOMAIN, BaselinesParams
    from recpipe.baselines.single_domain import SUFFIX, SingleDomain
    from recpipe.eval.data import load_split
    from recpipe.eval.evaluator import evaluate
    from recpipe.eval.output import CURVES, STD
    from recpipe.eval.protocol import resolve
    from recpipe.eval.seeds import Seed, parse_seeds, run_seeds
    from recpipe.io import write_hparams
    from recpipe.train.device import pick_device
    from recpipe.train.seeds import top_seed

    cfg = section(params, "baselines", BaselinesParams)
    seeds = parse_seeds(cfg.seeds, top_seed(params), "baselines.seeds")
    ecfg = resolve(params.get("eval"))
    for name in only or []:
        if name not in MODELS and name.removesuffix(SUFFIX) not in PER_DOMAIN:
            raise ParamError(f"--model {name!r}: unknown baseline; choose from {', '.join(MODELS)} "
                             f"(or <name>{SUFFIX}, one model per domain, <name> one of "
                             f"{', '.join(PER_DOMAIN)})")
    device = pick_device(cfg.device)
    data = load_split(processed)
    print(f"baselines: {data.n_users:,} users x {data.n_items:,} items, eval preset "
          f"{ecfg.preset}, device {device}, seed{'s' if len(seeds) > 1 else ''} "
          f"{', '.join(map(str, seeds))}", flush=True)
    out = {}
    for name in only or [*cfg.models, *(m + SUFFIX for m in cfg.single_domain)]:
        base = name.removesuffix(SUFFIX)  # bprmf-single: one BPR-MF per domain
        write_hparams(models_dir / name / "hparams.json", model=name,
                      params=cfg.model_params(base), seeds=list(seeds), device=device, eval=ecfg)

        def fit(s: Seed, name=name, base=base):
            t0 = time.perf_counter()
            # only trained models (bprmf) log a curve; the others create no curves folder
            make = MODELS[base] if name == base else partial(SingleDomain, PER_DOMAIN[base])
            model = make(cfg.model_params(base), seed=s.value, device=device,
                         log_dir=s.under(models_dir / name) / CURVES)
            model.fit(data.train, data.valid, data, ecfg)
            fit_s = time.perf_counter() - t0
            # a sequence model reads each part's own history: one scorer per part
            results = {part: evaluate(model.scorer(part), data, ecfg, part)
                       for part in ("valid", "test")}
            test = results["test"].summary
            tag = f"{name} seed {s.value}" if s.multi else name
            print(f"baselines: {tag:8s} test recall@20={test.get('recall@20', float('nan')):.4f} "
                  f"ndcg@20={test.get('ndcg@20', float('nan')):.4f}  (epoch "
                  f"{model.selected_epoch}, fit {fit_s:.1f} s, total "
                  f"{time.perf_counter() - t0:.1f} s)", flush=True)
            # no timings in the metrics: same seed, same file
            return results, {"selected_epoch": model.selected_epoch,
                             **getattr(model, "extras", {})}

        m = run_seeds(seeds, fit, ecfg, metrics_dir / f"{name}.json", models_dir / name, model=name)
        out[name] = m
        if len(seeds) > 1:
            print(f"baselines: {name:8s} over {len(seeds)} seeds: test recall@20="
                  f"{m.get('test/recall@20', float('nan')):.4f} ± "
                  f"{m.get('test/recall@20' + STD, float('nan')):.4f}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", required=True, help="the split stage's folder")
    ap.add_argument("--metrics-dir", required=True, help="folder for the <model>.json headlines")
    ap.add_argument("--models-dir", required=True, help="folder holding one folder per model")
    ap.add_argument("--model", action="append", default=None,
                    help="run only this baseline (repeatable; dvc.yaml's foreach passes one)")
    args = ap.parse_args(argv)
    try:
        run(load_params(args.params), Path(args.processed), Path(args.metrics_dir),
            Path(args.models_dir), only=args.model)
    except (ParamError, MemoryError) as e:
        print(f"baselines failed: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from recpipe.resources import report

    sys.exit(report("baselines", main))
