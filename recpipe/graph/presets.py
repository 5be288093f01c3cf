"""RLMRec's resolved per-model hyperparameters (rlmrec.md section 7) and parity/clean modes.

`PAPER[(model, align)][kind]` holds the values of the reference configs for the Amazon,
Yelp and Steam columns; an unknown dataset takes the Amazon column. Shared settings (d = 32,
Adam 1e-3, batch 4096, validation every 3 epochs, patience 5) are the TrainConfig defaults.
Only implemented backbones are listed; each backbone's rows arrive with its model file.
"""

from __future__ import annotations

PAPER: dict[tuple[str, str], dict[str, dict]] = {
    ("lightgcn", "none"): {
        "amazon": {"layers": 3, "reg_weight": 1e-6},
        "yelp": {"layers": 3, "reg_weight": 1e-6},
        "steam": {"layers": 2, "reg_weight": 1e-6},
    },
    ("lightgcn", "con"): {
        "amazon": {"layers": 3, "reg_weight": 1e-7, "kd_weight": 1e-2, "kd_temperature": 0.2},
        "yelp": {"layers": 3, "reg_weight": 1e-7, "kd_weight": 1e-2, "kd_temperature": 0.2},
        "steam": {"layers": 3, "reg_weight": 1e-8, "kd_weight": 1e-3, "kd_temperature": 0.1},
    },
    ("lightgcn", "gen"): {
        "amazon": {"layers": 2, "reg_weight": 1e-7, "mask_ratio": 0.15, "recon_weight": 0.1, "re_temperature": 0.5},
        "yelp": {"layers": 2, "reg_weight": 1e-7, "mask_ratio": 0.05, "recon_weight": 0.01, "re_temperature": 0.1},
        "steam": {"layers": 2, "reg_weight": 1e-6, "mask_ratio": 0.15, "recon_weight": 0.1, "re_temperature": 0.5},
    },
}

# Reference quirks (rlmrec.md section 8) that differ between modes, per backbone / alignment.
MODES: dict[str, dict] = {
    # quirk 3: edge dropout + sum pooling; quirk 5: duplicate in-batch items stay negatives
    "parity": {"pooling": "sum", "edge_keep": 0.8, "mask_duplicates": False},
    # the LightGCN paper's model; duplicates masked from the InfoNCE denominator
    "clean": {"pooling": "mean", "edge_keep": 1.0, "mask_duplicates": True},
}


def resolve(model: str, align: str, kind: str, mode: str) -> dict:
    """Backbone + alignment keys for one run (before the user's `graph.overrides`)."""
    table = PAPER.get((model, align))
    if table is None:
        raise ValueError(f"no RLMRec preset for graph.model={model} with graph.align={align}")
    return {**table.get(kind, table["amazon"]), **MODES[mode]}
