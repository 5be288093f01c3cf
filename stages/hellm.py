"""Stage `hellm`: HeLLM (graph-enhanced PEFT of a causal LM) over the MMHCL and SASRec exports.

Reads params: hellm, eval, seed. Reads <processed> (the split; training samples come from each
user's training window only, so on a LOO split no sample holds items[-2:]), <mmhcl>/item_emb.npy
[n_items, d] and <sasrec>/item_emb.npy [n_items + 1, d] (row 0 = padding); a stage-1 folder
with seed<k>/ subfolders gives seed k's export. Writes into <out>: `adapter/` (the LoRA adapter
in peft's format, the kept state), `trainable.safetensors` (projector, prefix and head),
`metrics.json` (every metric, flat keys, with the backbone and how far training got),
`per_user.parquet`, `hparams.json` and the resumable checkpoint `ckpt`; the headline keys to
--metrics and the dvclive curves (loss, tokens/s, MFU, validation) to --plots.
`hellm.seeds: [1, 2, 3]` runs each seed into <out>/seed<k>/ and writes mean and _std.
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
    """(HeLLMParams, EvalConfig, seeds) from params.yaml; raises ParamError."""
    from recpipe.eval.protocol import resolve
    from recpipe.eval.seeds import parse_seeds
    from recpipe.hellm.params import HeLLMParams
    from recpipe.train.seeds import top_seed

    p = section(params, "hellm", HeLLMParams)
    return p, resolve(params.get("eval")), parse_seeds(p.seeds, top_seed(params), "hellm.seeds")


def run(p, eval_cfg, seeds, processed: Path, mmhcl: Path, sasrec: Path, out: Path, metrics: Path,
        plots: Path) -> dict:
    import torch
    from safetensors.torch import save_file

    from recpipe.data.view import load_view
    from recpipe.eval.seeds import run_seeds
    from recpipe.hellm.run import exports, fit
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
    print(f"hellm: {data.n_users:,} users, {data.n_items:,} items, backbone {p.model}, mode "
          f"{p.mode}, device {device}, seed(s) {', '.join(map(str, seeds))}")
    if not is_worker():
        write_hparams(out / "hparams.json", model="hellm", params=p, train=p.train_config(),
                      eval=eval_cfg, seeds=list(seeds), device=device)

    def one(s):  # s.under(x): x, or x/seed<k> with several seeds
        t0 = time.perf_counter()
        mm, sa = exports(mmhcl, sasrec, data.n_items, s.value if len(seeds) > 1 else None)
        # the caps (epochs, max_steps, time_budget_s) are left out: a capped run continues
        sig = fingerprint(replace(p, train={}, device="", threads=0, eval_batch_size=0),
                          p.train_config().resume_key(), eval_cfg, s.value, data,
                          mm, sa, code=("train", "eval", "hellm", "llm"))
        with stage_live(s.under(plots)) as live:
            res = fit(data, p, eval_cfg, s.value, mm, sa, device=device,
                      ckpt=s.under(out) / "ckpt", live=live, signature=sig)
        if res is None:  # a launcher's process other than 0: it trained; 0 writes
            return None
        model, f = res["model"], res["fit"]  # the model holds the kept (best validated) state
        save_adapter(model.lm, s.under(out) / "adapter")
        save_file({k: v.detach().contiguous().cpu() for k, v in model.named_parameters()
                   if v.requires_grad and not k.startswith("lm.")},
                  str(s.under(out) / "trainable.safetensors"))
        t = res["test"].summary
        print(f"hellm: seed {s.value}: best epoch {res['best_epoch']} of {f.epochs} ({f.stopped}, "
              f"{f.steps} steps), test ndcg@10 {t.get('ndcg@10', float('nan')):.4f} recall@10 "
              f"{t.get('recall@10', float('nan')):.4f} on {t['units']:,} users in "
              f"{time.perf_counter() - t0:.0f} s")
        info = {"selected_epoch": res["best_epoch"], "steps": f.steps, "stopped": f.stopped,
                "backbone": p.model, "mode": p.mode, "train_samples": res["samples"],
                "train_users": int(data.n_users if res["users"] is None else len(res["users"])),
                **{f"backbone_{k}": v for k, v in describe(model.lm).items()
                   if k in ("parameters", "layers", "hidden")},
                "trainable": trainable_summary(model)["trainable"], **res.get("best_test", {})}
        return {"valid": res["valid"], "test": res["test"]}, info

    return run_seeds(seeds, one, eval_cfg, metrics, out, model="hellm")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", required=True, help="the split stage's folder")
    ap.add_argument("--mmhcl", required=True, help="the mmhcl stage's folder (item_emb.npy)")
    ap.add_argument("--sasrec", required=True, help="the sasrec stage's folder (item_emb.npy)")
    ap.add_argument("--out", required=True, help="folder for the adapter, metrics, checkpoint")
    ap.add_argument("--metrics", required=True, help="the headline keys")
    ap.add_argument("--plots", required=True, help="folder for the dvclive curves")
    args = ap.parse_args(argv)
    try:
        from recpipe.hellm.run import ExportError
        from recpipe.llm.launch import relaunch

        p, eval_cfg, seeds = configure(load_params(args.params))
        rc = relaunch(p.processes, __file__, argv)  # hellm.processes > 1: under torchrun
        if rc is not None:
            return rc
        m = run(p, eval_cfg, seeds, Path(args.processed), Path(args.mmhcl), Path(args.sasrec),
                Path(args.out), Path(args.metrics), Path(args.plots))
    except (ParamError, ExportError) as e:
        print(f"hellm failed: {e}", file=sys.stderr)
        return 2
    if len(seeds) > 1 and m:
        print(f"hellm: over {len(seeds)} seeds: test ndcg@10 {m['test/ndcg@10']:.4f} ± "
              f"{m['test/ndcg@10_std']:.4f}")
    return 0


if __name__ == "__main__":
    from recpipe.resources import report

    sys.exit(report("hellm", main))
