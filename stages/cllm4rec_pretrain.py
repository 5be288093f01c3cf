"""Stage `cllm4rec_pretrain`: CLLM4Rec's collaborative and content LMs on a frozen causal LM.

Reads params: cllm4rec (model, mode, lambda_v, doc_tokens, users, pretrain, ...), seed. Reads
<processed> (the split; review documents come from its training pairs only). Writes into <out>:
`sets.safetensors` (col.user, col.item, con.user, con.item: the two embedding sets, float32),
`metrics.json` (documents and their text source, the last loss, tokens/s, how far training
got), `hparams.json` and the resumable checkpoint `ckpt`; the dvclive curves to
--plots. No headline: pretraining is not evaluated (the finetune stage's metrics say what it
started from). `cllm4rec.seeds: [1, 2, 3]` pretrains each seed
into <out>/seed<k>/, which the finetune stage reads seed by seed.
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


def run(p, seeds, processed: Path, out: Path, plots: Path) -> list[dict]:
    import torch
    from safetensors.torch import save_file

    from recpipe.cllm4rec.run import pretrain, setup, signature
    from recpipe.data.view import load_view
    from recpipe.io import write_hparams, write_json
    from recpipe.llm.launch import is_worker, stage_live
    from recpipe.train.device import pick_device
    from recpipe.train.seeds import Seed

    device = pick_device(p.device)
    if p.threads:
        torch.set_num_threads(p.threads)
    data = load_view(processed)
    if not is_worker():
        write_hparams(out / "hparams.json", model="cllm4rec", params=p,
                      train=p.pretrain_params().train_config(), seeds=list(seeds), device=device)
    heads = []
    for value in seeds:
        s, t0 = Seed(value, len(seeds) > 1), time.perf_counter()
        st = setup(p, processed, data, value, device)
        print(f"cllm4rec pretrain: {data.n_users:,} users, {data.n_items:,} items, backbone "
              f"{p.model}, mode {p.mode}, seed {value}: {len(st.users):,} training users, "
              f"{len(st.docs):,} documents ({st.text_source or 'none'})")
        with stage_live(s.under(plots)) as live:
            model, f = pretrain(st, ckpt=s.under(out) / "ckpt", live=live,
                                signature=signature(p, value, data, "pretrain"))
        if is_worker():  # a launcher's process other than 0: it trained; 0 writes
            continue
        save_file({f"{name}.{part}": w for name, t in model.sets.items()
                   for part, w in (("user", t.weight[:data.n_users]),
                                   ("item", t.weight[data.n_users:]))
                   for w in [w.detach().contiguous().cpu()]}, str(s.under(out) / "sets.safetensors"))
        last = f.history[-1] if f.history else {}
        m = {"model": "cllm4rec", "phase": "pretrain", "seed": value, "mode": p.mode,
             "backbone": p.model, "text_source": st.text_source or "skipped: no text",
             "documents": len(st.docs), "train_users": len(st.users), "epochs": f.epochs,
             "steps": f.steps, "stopped": f.stopped, "train/loss": last.get("loss"),
             **{f"train/{k}": last[k] for k in ("tokens_per_s", "mfu", "peak_mem_gb")
                if k in last}, "elapsed_s": round(time.perf_counter() - t0, 1)}
        write_json(s.under(out) / "metrics.json", m)
        print(f"cllm4rec pretrain: seed {value}: {f.epochs} epochs, {f.steps} steps "
              f"({f.stopped}), last loss {m['train/loss']:.4f} in {m['elapsed_s']:.0f} s")
        heads.append(m)
    return heads


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", required=True, help="the split stage's folder")
    ap.add_argument("--out", required=True, help="folder for the sets, metrics, checkpoint")
    ap.add_argument("--plots", required=True, help="folder for the dvclive curves")
    args = ap.parse_args(argv)
    try:
        from recpipe.cllm4rec.run import configure
        from recpipe.llm.launch import relaunch

        p, seeds = configure(load_params(args.params))
        rc = relaunch(p.processes, __file__, argv)  # cllm4rec.processes > 1: under torchrun
        if rc is not None:
            return rc
        run(p, seeds, Path(args.processed), Path(args.out), Path(args.plots))
    except ParamError as e:
        print(f"cllm4rec_pretrain failed: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from recpipe.resources import report

    sys.exit(report("cllm4rec_pretrain", main))
