"""Stage `hum`: HUM, one LoRA-tuned causal LM that encodes cross-domain user histories and item
titles into a compression token, with domain-importance weights (hum.md).

Reads params: hum, eval, seed. Reads <processed> (the split; item titles from items.parquet,
domains from the split tables). Training samples come from the train part only; with the `hum`
preset (`eval.average=samples`, `eval.candidates=target_domain`) every validation and test
interaction is a sample ranked within its target's domain, else users are the units as for
every other model. Writes into <out>: `adapter/` (the LoRA adapter in peft's format, the kept
state), `metrics.json` (every metric, flat keys, per domain with macro and spread, the final
domain weights), `per_user.parquet`, `hparams.json` and the resumable checkpoint `ckpt`; the
headline keys to --metrics and the dvclive curves (loss, tokens/s, validation) to --plots.
`hum.seeds: [1, 2, 3]` runs each seed into <out>/seed<k>/ and writes mean and _std. Data
without any item title (the RLMRec release) trains nothing: the outputs say `status: skipped:
no item titles`.
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
    """(HUMParams, EvalConfig, seeds) from params.yaml; raises ParamError."""
    from recpipe.eval.protocol import resolve
    from recpipe.eval.seeds import parse_seeds
    from recpipe.hum.params import HUMParams
    from recpipe.train.seeds import top_seed

    p = section(params, "hum", HUMParams)
    return p, resolve(params.get("eval")), parse_seeds(p.seeds, top_seed(params), "hum.seeds")


def run(p, eval_cfg, seeds, processed: Path, out: Path, metrics: Path, plots: Path) -> dict:
    import torch

    from recpipe.data.view import load_view
    from recpipe.eval.seeds import run_seeds
    from recpipe.hum.run import fit
    from recpipe.io import write_hparams
    from recpipe.llm.backbone import describe
    from recpipe.llm.launch import is_worker, stage_live
    from recpipe.llm.lora import save_adapter, trainable_summary
    from recpipe.train.checkpoint import fingerprint
    from recpipe.train.device import pick_device

    device = pick_device(p.device)
    if p.threads:
        torch.set_num_threads(p.threads)
    data = load_view(processed)
    if not any(t.strip() for t in data.item_titles):
        return {} if is_worker() else skip(out, metrics, plots)
    units = "samples (one per interaction)" if eval_cfg.average == "samples" else "users"
    print(f"hum: {data.n_users:,} users, {data.n_items:,} items, {len(data.domains)} domains "
          f"({', '.join(data.domains)}), backbone {p.model}, mode {p.mode}, units {units}, "
          f"device {device}, seed(s) {', '.join(map(str, seeds))}")
    if not is_worker():
        write_hparams(out / "hparams.json", model="hum", params=p, train=p.train_config(),
                      eval=eval_cfg, seeds=list(seeds), device=device)

    def one(s):  # s.under(x): x, or x/seed<k> with several seeds
        t0 = time.perf_counter()
        # the caps (epochs, max_steps, time_budget_s) are left out: a capped run continues
        sig = fingerprint(replace(p, train={}, device="", threads=0, eval_batch_size=0),
                          p.train_config().resume_key(), eval_cfg, s.value, data,
                          code=("train", "eval", "hum", "llm"))
        with stage_live(s.under(plots)) as live:
            res = fit(data, p, eval_cfg, s.value, device=device, ckpt=s.under(out) / "ckpt",
                      live=live, signature=sig)
        if res is None:  # a launcher's process other than 0: it trained; 0 writes
            return None
        model, f = res["model"], res["fit"]  # the model holds the kept (best validated) state
        save_adapter(model.lm, s.under(out) / "adapter")
        t = res["test"].summary
        print(f"hum: seed {s.value}: best epoch {res['best_epoch']} of {f.epochs} ({f.stopped}, "
              f"{f.steps} steps), test recall@10 {t.get('recall@10', float('nan')):.4f} ndcg@10 "
              f"{t.get('ndcg@10', float('nan')):.4f} on {t['units']:,} {units} in "
              f"{time.perf_counter() - t0:.0f} s")
        info = {"selected_epoch": res["best_epoch"], "steps": f.steps, "stopped": f.stopped,
                "backbone": p.model, "mode": p.mode, "train_samples": res["samples"],
                "domain_weights": p.domain_weights,
                **{f"backbone_{k}": v for k, v in describe(model.lm).items()
                   if k in ("parameters", "layers", "hidden")},
                "trainable": trainable_summary(model)["trainable"]}
        if res["weights"] is not None:  # the final weights, by domain name
            info.update({f"domain_weight/{d}": w for d, w in zip(data.domains, res["weights"])})
        return {"valid": res["valid"], "test": res["test"]}, info

    return run_seeds(seeds, one, eval_cfg, metrics, out, model="hum")


SKIPPED = "skipped: no item titles"


def skip(out: Path, metrics: Path, plots: Path) -> dict:
    """HUM encodes item titles: data with none (the RLMRec release) has nothing to encode. The
    outputs exist, marked skipped, and the report leaves the stage out (no test metrics)."""
    from recpipe.io import write_json

    print(f"hum: {SKIPPED} (HUM's texts are item titles; this data has none): nothing trained")
    m = {"model": "hum", "status": SKIPPED}
    out.mkdir(parents=True, exist_ok=True)
    plots.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", m)
    write_json(metrics, m)
    write_json(plots / "status.json", m)  # a declared output holds something, whatever the data
    return m


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", required=True, help="the split stage's folder")
    ap.add_argument("--out", required=True, help="folder for the adapter, metrics, checkpoint")
    ap.add_argument("--metrics", required=True, help="the headline keys")
    ap.add_argument("--plots", required=True, help="folder for the dvclive curves")
    args = ap.parse_args(argv)
    try:
        from recpipe.llm.launch import relaunch

        p, eval_cfg, seeds = configure(load_params(args.params))
        rc = relaunch(p.processes, __file__, argv)  # hum.processes > 1: under torchrun
        if rc is not None:
            return rc
        m = run(p, eval_cfg, seeds, Path(args.processed), Path(args.out), Path(args.metrics),
                Path(args.plots))
    except ParamError as e:
        print(f"hum failed: {e}", file=sys.stderr)
        return 2
    if len(seeds) > 1 and m and "status" not in m:
        print(f"hum: over {len(seeds)} seeds: test recall@10 {m['test/recall@10']:.4f} ± "
              f"{m['test/recall@10_std']:.4f}")
    return 0


if __name__ == "__main__":
    from recpipe.resources import report

    sys.exit(report("hum", main))
