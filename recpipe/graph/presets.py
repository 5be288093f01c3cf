"""RLMRec's resolved per-model hyperparameters (rlmrec.md section 7) and parity/clean modes.

`PAPER[(model, align)][kind]` holds the values of the reference configs for the Amazon,
Yelp and Steam columns (rlmrec.md 7.2); an unknown dataset takes the Amazon column. Shared
settings (d = 32, Adam 1e-3, batch 4096, validation every 3 epochs, patience 5) are the
TrainConfig defaults; keys the reference reads from the top level only (SGL's edge keep 0.8,
DCCF's 128 intents, AutoCF's keep_rate / seeds / depth / fix_steps / heads) are the model
configs' defaults.
"""

from __future__ import annotations


def _cols(amazon: dict, yelp: dict | None = None, steam: dict | None = None) -> dict:
    return {"amazon": amazon, "yelp": yelp or amazon, "steam": steam or amazon}


def _con(base: dict, *pairs) -> dict:
    """Backbone column values + (kd_weight, kd_temperature) per column."""
    return {k: {**base[k], "kd_weight": w, "kd_temperature": t} for k, (w, t) in zip(base, pairs)}


def _gen(base: dict, *triples) -> dict:
    """Backbone column values + (mask_ratio, recon_weight, re_temperature) per column."""
    return {k: {**base[k], "mask_ratio": m, "recon_weight": w, "re_temperature": t}
            for k, (m, w, t) in zip(base, triples)}


_SGL = _cols({"layers": 3, "reg_weight": 1e-5, "cl_weight": 0.1, "temperature": 0.2},
             {"layers": 3, "reg_weight": 1e-5, "cl_weight": 0.1, "temperature": 0.2},
             {"layers": 3, "reg_weight": 1e-5, "cl_weight": 0.1, "temperature": 0.5})
_SIMGCL = _cols({"layers": 3, "reg_weight": 1e-5, "cl_weight": 0.1, "temperature": 0.2, "eps": 0.9},
                {"layers": 3, "reg_weight": 1e-5, "cl_weight": 0.1, "temperature": 0.2, "eps": 0.9},
                {"layers": 3, "reg_weight": 1e-5, "cl_weight": 0.1, "temperature": 0.5, "eps": 0.2})
_DCCF = _cols({"layers": 2, "reg_weight": 1e-4, "cl_weight": 1e-3, "temperature": 0.1},
              {"layers": 2, "reg_weight": 1e-4, "cl_weight": 1e-3, "temperature": 0.1},
              {"layers": 3, "reg_weight": 1e-3, "cl_weight": 1e-3, "temperature": 0.1})

PAPER: dict[tuple[str, str], dict[str, dict]] = {
    ("gccf", "none"): _cols({"layers": 2, "reg_weight": 1e-6}),
    ("gccf", "con"): _con(_cols({"layers": 2, "reg_weight": 1e-6}), (1e-3, 0.1), (1e-3, 0.2), (1e-2, 0.5)),
    ("gccf", "gen"): _gen(_cols({"layers": 2, "reg_weight": 1e-7}, {"layers": 2, "reg_weight": 1e-6}),
                          (0.1, 0.01, 0.1), (0.05, 0.01, 1.0), (0.1, 0.01, 0.1)),
    ("lightgcn", "none"): _cols({"layers": 3, "reg_weight": 1e-6}, None, {"layers": 2, "reg_weight": 1e-6}),
    ("lightgcn", "con"): _con(_cols({"layers": 3, "reg_weight": 1e-7}, None, {"layers": 3, "reg_weight": 1e-8}),
                              (1e-2, 0.2), (1e-2, 0.2), (1e-3, 0.1)),
    ("lightgcn", "gen"): _gen(_cols({"layers": 2, "reg_weight": 1e-7}, None, {"layers": 2, "reg_weight": 1e-6}),
                              (0.15, 0.1, 0.5), (0.05, 0.01, 0.1), (0.15, 0.1, 0.5)),
    ("sgl", "none"): _cols({"layers": 3, "reg_weight": 1e-5, "cl_weight": 0.1, "temperature": 0.2},
                           {"layers": 3, "reg_weight": 1e-6, "cl_weight": 1e-3, "temperature": 0.1},
                           {"layers": 2, "reg_weight": 1e-5, "cl_weight": 0.1, "temperature": 0.5}),
    ("sgl", "con"): _con(_SGL, (1e-2, 0.5), (1e-2, 1.0), (1e-2, 1.0)),
    ("sgl", "gen"): _gen(_SGL, (0.2, 0.1, 0.2), (0.15, 0.1, 0.2), (0.1, 0.1, 0.2)),
    ("simgcl", "none"): _SIMGCL,
    ("simgcl", "con"): _con(_SIMGCL, (1e-2, 0.2), (1e-2, 0.1), (1e-2, 0.2)),
    ("simgcl", "gen"): _gen(_SIMGCL, (0.05, 0.1, 0.2), (0.01, 0.01, 0.05), (0.05, 0.01, 0.1)),
    ("dccf", "none"): _DCCF,
    ("dccf", "con"): _con(_DCCF, (1e-2, 0.5), (1e-2, 0.2), (1e-2, 0.5)),
    ("dccf", "gen"): _gen(_DCCF, (0.05, 0.1, 0.2), (0.05, 0.01, 0.1), (0.1, 0.01, 0.2)),
    ("autocf", "none"): _cols({"layers": 2, "reg_weight": 1e-6, "ssl_reg": 5.0},
                              {"layers": 3, "reg_weight": 1e-7, "ssl_reg": 2.0},
                              {"layers": 2, "reg_weight": 1e-6, "ssl_reg": 0.5}),
    ("autocf", "con"): _con(_cols({"layers": 2, "reg_weight": 1e-6, "ssl_reg": 1.0},
                                  {"layers": 2, "reg_weight": 1e-8, "ssl_reg": 1.0},
                                  {"layers": 2, "reg_weight": 1e-6, "ssl_reg": 0.5}),
                            (1e-1, 0.5), (1e-2, 0.1), (1e-2, 0.2)),
    ("autocf", "gen"): _gen(_cols({"layers": 2, "reg_weight": 1e-6, "ssl_reg": 1.0},
                                  {"layers": 2, "reg_weight": 1e-8, "ssl_reg": 1.0},
                                  {"layers": 2, "reg_weight": 1e-6, "ssl_reg": 0.5}),
                            (0.2, 1.0, 0.5), (0.2, 0.1, 0.1), (0.2, 1.0, 0.2)),
}


def mode_keys(model: str, align: str, kind: str, mode: str) -> dict:
    """The reference quirks of rlmrec.md section 8 that differ between parity and clean."""
    parity = mode == "parity"
    keys = {"mask_duplicates": not parity}  # quirk 5: duplicate in-batch items as negatives
    if model == "lightgcn":  # quirk 3: edge dropout + sum pooling vs the paper's LightGCN
        keys.update(pooling="sum", edge_keep=0.8) if parity else keys.update(pooling="mean", edge_keep=1.0)
    elif model == "gccf":  # quirk 1: only the plain "gccf" config gets self-loops
        keys["self_loops"] = align == "none" if parity else True
    elif model == "sgl" and parity:  # quirk 2: the top-level layer_num (3) always runs
        keys["layers"] = 3
    return keys


def resolve(model: str, align: str, kind: str, mode: str) -> dict:
    """Backbone + alignment keys for one run (before the user's `graph.overrides`)."""
    table = PAPER.get((model, align))
    if table is None:
        raise ValueError(f"no RLMRec preset for graph.model={model} with graph.align={align}")
    return {**table.get(kind, table["amazon"]), **mode_keys(model, align, kind, mode)}


def build_configs(model: str, align: str, kind: str, mode: str, overrides: dict | None = None):
    """(backbone config, AlignConfig) for one run: preset, mode quirks, then `overrides`.

    Raises recpipe.config.ParamError naming an unknown key or a bad value.
    """
    from recpipe.config import ParamError, parse
    from recpipe.graph import get_backbone
    from recpipe.graph.align import AlignConfig

    try:
        hp = {**resolve(model, align, kind, mode), **(overrides or {})}
    except ValueError as e:
        raise ParamError(str(e)) from None
    bb_class = get_backbone(model).Config
    bb_keys, al_keys = set(bb_class.__dataclass_fields__), set(AlignConfig.__dataclass_fields__)
    unknown = set(hp) - bb_keys - al_keys
    if unknown:
        raise ParamError(f"graph.overrides: unknown key(s) {sorted(unknown)} for graph.model={model}; "
                         f"known: {sorted(bb_keys | al_keys)}")
    bb_cfg = parse(bb_class, {k: v for k, v in hp.items() if k in bb_keys}, "graph")
    al_cfg = parse(AlignConfig, {k: v for k, v in hp.items() if k in al_keys}, "graph")
    return bb_cfg, al_cfg
