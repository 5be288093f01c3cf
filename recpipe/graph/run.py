"""One graph run, composed the same way wherever it happens (the `graph` stage, the
benchmarks, the 18-run grid): preset configs -> adjacency -> backbone -> alignment -> train.
"""

from __future__ import annotations

from pathlib import Path


def fit(model: str, align: str, data, sem, tr_cfg, eval_cfg, seed: int, *, mode: str = "clean",
        kind: str = "amazon", overrides: dict | None = None, device: str = "cpu",
        ckpt: str | Path | None = None, live=None, signature: str = "", progress: bool = True,
        configs=None) -> dict:
    """Train `model` x `align` on `data` (SplitData) and return the trainer's result dict.

    `sem` = (user (U, S), item (I, S)) semantic tables or (None, None) for align=none;
    `configs` = an already built (backbone config, AlignConfig) pair (else from the presets,
    with `overrides`: flat backbone/alignment keys, clean mode only).
    """
    from recpipe.graph import get_backbone
    from recpipe.graph.adjacency import Graph, bipartite
    from recpipe.graph.allocator import retain_freed_memory
    from recpipe.graph.align import wrap
    from recpipe.graph.presets import build_configs
    from recpipe.graph.trainer import train
    from recpipe.train.seeds import seed_everything

    bb_cfg, al_cfg = configs or build_configs(model, align, kind, mode, overrides)
    retain_freed_memory()  # each step frees and reallocates (N, d) tensors: keep the pages
    seed_everything(seed)
    graph = Graph(bipartite(data.train, getattr(bb_cfg, "self_loops", False)), device)
    backbone = get_backbone(model)(data.n_users, data.n_items, graph, bb_cfg)
    wrapped = wrap(align, backbone, sem[0], sem[1], al_cfg, seed=seed).to(device)
    return train(wrapped, data, tr_cfg, eval_cfg, seed, device=device, ckpt=ckpt, live=live,
                 progress=progress, signature=signature)
