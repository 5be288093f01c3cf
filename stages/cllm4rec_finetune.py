"""Stage `cllm4rec_finetune`: CLLM4Rec's rec set, finetuned from the pretrained collaborative
set, selected on validation, scored on valid and test by the one evaluator.

Reads params: cllm4rec, eval, seed. Reads <processed> and <pretrain>/sets.safetensors (or
<pretrain>/seed<k>/ with several seeds). Writes into <out>: `sets.safetensors` (rec.user,
rec.item, con.user, con.item at the kept epoch), `metrics.json` (every metric, flat keys),
`per_user.parquet`, `hparams.json` and the resumable checkpoint `ckpt`; the headline keys to
--metrics and the dvclive curves (loss, tokens/s, validation) to --plots.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# this checkout's recpipe before any installed one: DVC runs a queued experiment in a copy
# of the repo, and the copy must import the code it hashed as a dependency
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recpipe.config import ParamError, load_params


class PretrainMissing(ValueError):
    """The pretrain stage's sets are missing or do not fit the split."""


def load_sets(folder: Path, n_users: int, n_items: int) -> dict:
    """{set: [n_users + n_items, H] float32 tensor} from <folder>/sets.safetensors."""
    import torch
    from safetensors.torch import load_file

    path = folder / "sets.safetensors"
    if not path.is_file():
        raise PretrainMissing(f"{path}: no pretrained sets; run the cllm4rec_pretrain stage first")
    raw = load_file(str(path))
    out = {}
    for name in ("col", "con"):
        if f"{name}.user" not in raw:
            continue
        u, i = raw[f"{name}.user"], raw[f"{name}.item"]
        if u.shape[0] != n_users or i.shape[0] != n_items:
            raise PretrainMissing(f"{path}: {name} has {u.shape[0]:,} users and {i.shape[0]:,} "
                                  f"items; the split has {n_users:,} and {n_items:,} (rerun "
                                  f"cllm4rec_pretrain on this split)")
        out[name] = torch.cat([u, i])
    return out


def run(p, eval_cfg, seeds, processed: Path, pre: Path, out: Path, metrics: Path,
        plots: Path) -> dict:
    import torch
    from safetensors.torch import save_file

    from recpipe.cllm4rec.data import documents
    from recpipe.cllm4rec.finetune import finetune
    from recpipe.cllm4rec.run import setup, signature
    from recpipe.data.view import load_view
    from recpipe.eval.seeds import run_seeds
    from recpipe.io import write_hparams
    from recpipe.llm.backbone import describe
    from recpipe.llm.launch import is_worker, stage_live
    from recpipe.train.device import pick_device

    device = pick_device(p.device)
    if p.threads:
        torch.set_num_threads(p.threads)
    data = load_view(processed)
    if not is_worker():
        write_hparams(out / "hparams.json", model="cllm4rec", params=p,
                      train=p.finetune_params().train_config(), eval=eval_cfg, seeds=list(seeds),
                      device=device)

    def one(s):
        t0 = time.perf_counter()
        tables = load_sets(s.under(pre), data.n_users, data.n_items)
        st = setup(p, processed, data, s.value, device)
        sig = signature(p, s.value, data, "finetune", *(t.numpy() for t in tables.values()))
        with stage_live(s.under(plots)) as live:
            res = finetune(st, tables, eval_cfg, ckpt=s.under(out) / "ckpt", live=live,
                           signature=sig)
        if res is None:  # a launcher's process other than 0: it trained; 0 writes
            return None
        model, f = res["model"], res["fit"]
        save_file({f"{'rec' if name == 'col' else name}.{part}": w.detach().contiguous().cpu()
                   for name, t in model.sets.items()
                   for part, w in (("user", t.weight[:data.n_users]),
                                   ("item", t.weight[data.n_users:]))},
                  str(s.under(out) / "sets.safetensors"))
        t = res["test"].summary
        print(f"cllm4rec finetune: seed {s.value}: best epoch {res['best_epoch']} of {f.epochs} "
              f"({f.stopped}, {f.steps} steps), test recall@20 {t['recall@20']:.4f} ndcg@20 "
              f"{t['ndcg@20']:.4f} on {t['units']:,} users in {time.perf_counter() - t0:.0f} s")
        info = {"selected_epoch": res["best_epoch"], "steps": f.steps, "stopped": f.stopped,
                "backbone": p.model, "mode": p.mode, "text_source": st.text_source or
                "skipped: no text", "documents": len(st.docs), "train_users": len(st.users),
                # rec prompts and documents of the training users
                "train_samples": len(st.users) + len(st.docs), "content_lm": bool(st.docs),
                **{f"backbone_{k}": v for k, v in describe(model.lm).items()
                   if k in ("parameters", "layers", "hidden")},
                "trainable": sum(t.weight.numel() for t in model.sets.values())}
        return {"valid": res["valid"], "test": res["test"]}, info

    # the paper's ablation is its own leaderboard row: without content, cllm4rec-col
    content = p.pretrain_params().content and documents(processed, None, p.fallback)[1]
    return run_seeds(seeds, one, eval_cfg, metrics, out,
                     model="cllm4rec" if content else "cllm4rec-col")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", required=True, help="the split stage's folder")
    ap.add_argument("--pretrain", required=True, help="the cllm4rec_pretrain stage's folder")
    ap.add_argument("--out", required=True, help="folder for the sets, metrics, checkpoint")
    ap.add_argument("--metrics", required=True, help="the headline keys")
    ap.add_argument("--plots", required=True, help="folder for the dvclive curves")
    args = ap.parse_args(argv)
    try:
        from recpipe.cllm4rec.run import configure
        from recpipe.eval.protocol import resolve
        from recpipe.llm.launch import relaunch

        params = load_params(args.params)
        p, seeds = configure(params)
        rc = relaunch(p.processes, __file__, argv)  # cllm4rec.processes > 1: under torchrun
        if rc is not None:
            return rc
        m = run(p, resolve(params.get("eval")), seeds, Path(args.processed), Path(args.pretrain),
                Path(args.out), Path(args.metrics), Path(args.plots))
    except (ParamError, PretrainMissing) as e:
        print(f"cllm4rec_finetune failed: {e}", file=sys.stderr)
        return 2
    if len(seeds) > 1 and m:
        print(f"cllm4rec finetune: over {len(seeds)} seeds: test recall@20 "
              f"{m['test/recall@20']:.4f} ± {m['test/recall@20_std']:.4f}")
    return 0


if __name__ == "__main__":
    from recpipe.resources import report

    sys.exit(report("cllm4rec_finetune", main))
