"""Stage `graph`: a graph CF backbone x RLMRec alignment, trained with validation selection.

Reads params: graph, eval, seed. Reads data/processed and, for align=con|gen, the semantic
tables (graph.semantic: `profiles` = models/embeddings/{user,item}_profile.npy from the embed
stage; `release` = data/processed/{user,item}_emb.npy imported from an RLMRec release).
Writes models/graph/ (embeddings, per-user metrics, checkpoint), metrics/graph.json and
dvclive curves in plots/graph/.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from recpipe.config import ParamError, choice, load_params, parse, rng, section


@dataclass
class GraphParams:
    # backbone (recpipe.graph.BACKBONES)
    model: str = field(default="lightgcn", metadata=choice("lightgcn"))
    # RLMRec alignment: none | con | gen
    align: str = field(default="con", metadata=choice("none", "con", "gen"))
    # parity reproduces the reference's quirks; clean fixes them (README table)
    mode: str = field(default="clean", metadata=choice("clean", "parity"))
    # which column of RLMRec's per-dataset tables: amazon | yelp | steam
    kind: str = field(default="amazon", metadata=choice("amazon", "yelp", "steam"))
    # semantic tables for con/gen: profiles (embed stage) | release (RLMRec's ada-002 vectors)
    semantic: str = field(default="profiles", metadata=choice("profiles", "release"))
    # auto (cuda when present) | cpu | cuda
    device: str = "auto"
    # CPU threads for torch; 0 = torch's default (1 can be far faster on a busy machine)
    threads: int = field(default=0, metadata=rng(0))
    # training loop (recpipe.graph.trainer.TrainConfig keys)
    train: dict = field(default_factory=dict)
    # any backbone or alignment key on top of the preset, e.g. {layers: 2, kd_weight: 0.05}
    overrides: dict = field(default_factory=dict)


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", default="data/processed")
    ap.add_argument("--embeddings", default="models/embeddings")
    ap.add_argument("--out", default="models/graph")
    ap.add_argument("--metrics", default="metrics/graph.json")
    ap.add_argument("--plots", default="plots/graph")
    args = ap.parse_args(argv)
    try:
        params = load_params(args.params)
        p = section(params, "graph", GraphParams)
        from recpipe.eval.protocol import resolve as resolve_eval
        from recpipe.graph.align import AlignConfig
        from recpipe.graph.lightgcn import LightGCNConfig
        from recpipe.graph.presets import resolve
        from recpipe.graph.trainer import TrainConfig

        eval_cfg = resolve_eval(params.get("eval"))
        seed = int(params.get("seed", 2023))
        hp = {**resolve(p.model, p.align, p.kind, p.mode), **p.overrides}
        bb_keys = set(LightGCNConfig.__dataclass_fields__)
        al_keys = set(AlignConfig.__dataclass_fields__)
        unknown = set(hp) - bb_keys - al_keys
        if unknown:
            raise ParamError(f"graph.overrides: unknown key(s) {sorted(unknown)}")
        bb_cfg = parse(LightGCNConfig, {k: v for k, v in hp.items() if k in bb_keys}, "graph")
        al_cfg = parse(AlignConfig, {k: v for k, v in hp.items() if k in al_keys}, "graph")
        tr_cfg = parse(TrainConfig, p.train, "graph.train")
        sem = semantic_tables(p, Path(args.processed), Path(args.embeddings)) if p.align != "none" else (None, None)
    except ParamError as e:
        print(f"graph failed: {e}", file=sys.stderr)
        return 2
    run(p, bb_cfg, al_cfg, tr_cfg, eval_cfg, seed, sem, args)
    return 0


def run(p, bb_cfg, al_cfg, tr_cfg, eval_cfg, seed, sem, args) -> None:
    import torch
    from dvclive import Live

    from recpipe.eval.data import load_split
    from recpipe.eval.output import write_results
    from recpipe.graph import get_backbone
    from recpipe.graph.adjacency import Graph, bipartite
    from recpipe.graph.align import wrap
    from recpipe.graph.trainer import seed_everything, train
    from recpipe.io import write_npy

    device = ("cuda" if torch.cuda.is_available() else "cpu") if p.device == "auto" else p.device
    if p.threads:
        torch.set_num_threads(p.threads)
    data = load_split(args.processed)
    seed_everything(seed)
    backbone = get_backbone(p.model)(data.n_users, data.n_items, Graph(bipartite(data.train), device), bb_cfg)
    model = wrap(p.align, backbone, sem[0], sem[1], al_cfg, seed=seed).to(device)
    out = Path(args.out)
    print(f"graph: {p.model} align={p.align} mode={p.mode} on {device}: {data.n_users:,} users, {data.n_items:,} items")
    t0 = time.perf_counter()
    sig = fingerprint(p, bb_cfg, al_cfg, tr_cfg, eval_cfg, seed, data)
    with Live(args.plots, dvcyaml=None, save_dvc_exp=False, report=None) as live:
        res = train(model, data, tr_cfg, eval_cfg, seed, device=device, ckpt=out / "ckpt",
                    live=live, signature=sig)
    write_npy(out / "user_emb.npy", res["scorer"].user_np)
    write_npy(out / "item_emb.npy", res["scorer"].item_np)
    m = write_results({"valid": res["valid"], "test": res["test"]}, eval_cfg, args.metrics,
                      out / "per_user.parquet", model=f"{p.model}-{p.align}", seed=seed,
                      mode=p.mode, selected_epoch=res["best_epoch"])
    print(f"graph: best epoch {res['best_epoch']}, test recall@20 {m.get('test/recall@20', float('nan')):.4f} "
          f"ndcg@20 {m.get('test/ndcg@20', float('nan')):.4f} in {time.perf_counter() - t0:.0f} s")


def fingerprint(*parts) -> str:
    """Hash of the run's configuration and training data (guards checkpoint resumption)."""
    import dataclasses
    import hashlib

    h = hashlib.sha256()
    for x in parts:
        if dataclasses.is_dataclass(x):
            h.update(repr(dataclasses.asdict(x)).encode())
        elif hasattr(x, "train"):
            h.update(x.train.indptr.tobytes() + x.train.indices.tobytes())
        else:
            h.update(repr(x).encode())
    return h.hexdigest()[:16]


if __name__ == "__main__":
    sys.exit(main())
