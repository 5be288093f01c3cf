"""RLMRec's resolved per-model hyperparameters (rlmrec.md section 7), parity/clean modes and
the scoped `graph.overrides`.

`PAPER[(model, align)][kind]` holds the values of the reference configs for the Amazon,
Yelp and Steam columns (rlmrec.md 7.2); an unknown dataset takes the Amazon column. They are
pinned to the official files (HKUDS/RLMRec encoder/config/modelconf/*.yml, each file's
`model.<dataset>` block) by tests/test_graph_presets_official.py and its fixture. Shared
settings (d = 32, Adam 1e-3, batch 4096, validation every 3 epochs, patience 5) are the
TrainConfig defaults; keys the reference reads from the top level only (SGL's edge keep 0.8,
DCCF's 128 intents, AutoCF's keep_rate / seeds / depth / fix_steps / heads) are the model
configs' defaults.

`graph.overrides` is keyed by scope: `<model>` (every alignment of that backbone) or
`<model>-<align>` (one variant, applied after the `<model>` entry), e.g.
`{lightgcn-con: {kd_weight: 0.001}}`. Overrides apply in clean mode only: parity mode trains
the official values, so there an entry that would apply is reported and left out
(`resolve_overrides`), and explicit flat overrides (`build_configs`) stop with an error.
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
    ("gccf", "gen"): _gen(_cols({"layers": 2, "reg_weight": 1e-7}, {"layers": 2, "reg_weight": 1e-6},
                                {"layers": 2, "reg_weight": 1e-6}),
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
    elif model == "autocf":  # float32 decode of the decoder's edge codes (autocf_mask.decode_edges)
        keys["edge_decode"] = "float32" if parity else "exact"
    return keys


def resolve(model: str, align: str, kind: str, mode: str) -> dict:
    """Backbone + alignment keys for one run (before the user's `graph.overrides`)."""
    table = PAPER.get((model, align))
    if table is None:
        raise ValueError(f"no RLMRec preset for graph.model={model} with graph.align={align}")
    return {**table.get(kind, table["amazon"]), **mode_keys(model, align, kind, mode)}


ALIGN_KEYS: dict[str, tuple[str, ...]] = {  # the AlignConfig keys each alignment reads
    "none": (),
    "con": ("kd_weight", "kd_temperature", "mask_duplicates"),
    "gen": ("mask_ratio", "recon_weight", "re_temperature"),
}


def override_scopes() -> list[str]:
    """The keys `graph.overrides` accepts: every model, and every model-align pair."""
    models = sorted({m for m, _ in PAPER})
    return models + [f"{m}-{a}" for m in models for a in ALIGN_KEYS]


def resolve_overrides(overrides: dict | None, model: str, align: str, mode: str) -> tuple[dict, dict]:
    """Validate every entry of the scoped `graph.overrides` and pick this run's keys.

    Returns (applied, not_applied): the `<model>` entry with the `<model>-<align>` entry on
    top; in clean mode all of it is applied, in parity mode none of it (the caller reports
    it). An unknown scope, a non-mapping entry, a key the scope's model/alignment does not
    read or a bad value raises recpipe.config.ParamError naming it and what is allowed.
    """
    from recpipe.config import ParamError

    overrides = overrides or {}
    scopes = override_scopes()
    for scope, values in overrides.items():
        where = f"graph.overrides.{scope}"
        if scope not in scopes:
            hint = (f" (overrides are keyed by model or model-align, e.g. {{{model}-{align}: "
                    f"{{{scope}: {values!r}}}}})" if not isinstance(values, dict) else "")
            raise ParamError(f"graph.overrides: unknown key {scope!r}{hint}; allowed: {', '.join(scopes)}")
        if not isinstance(values, dict):
            raise ParamError(f"{where}: {values!r} is not a mapping of hyperparameters")
        m, _, a = scope.partition("-")
        known = _backbone_keys(m) | set(ALIGN_KEYS[a] if a else sum(ALIGN_KEYS.values(), ()))
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParamError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for a_ in [a] if a else list(ALIGN_KEYS):  # types and ranges, as the run would parse them
            build_configs(m, a_, "amazon", "clean", values, where=where)
    picked = {**overrides.get(model, {}), **overrides.get(f"{model}-{align}", {})}
    return (picked, {}) if mode == "clean" else ({}, picked)


def _backbone_keys(model: str) -> set[str]:
    from recpipe.graph import get_backbone

    return set(get_backbone(model).Config.__dataclass_fields__)


def build_configs(model: str, align: str, kind: str, mode: str, overrides: dict | None = None,
                  where: str = "graph"):
    """(backbone config, AlignConfig) for one run: preset, mode quirks, then `overrides` (flat
    keys, clean mode only: in parity mode they raise, since parity trains the official values).

    Raises recpipe.config.ParamError naming an unknown key or a bad value (under `where`).
    """
    from recpipe.config import ParamError, parse
    from recpipe.graph import get_backbone
    from recpipe.graph.align import AlignConfig

    if overrides and mode == "parity":
        raise ParamError(f"graph.mode=parity trains RLMRec's official {model}-{align} values; the "
                         f"overrides {overrides} would change them (use graph.mode=clean)")
    try:
        hp = {**resolve(model, align, kind, mode), **(overrides or {})}
    except ValueError as e:
        raise ParamError(str(e)) from None
    bb_class = get_backbone(model).Config
    bb_keys, al_keys = set(bb_class.__dataclass_fields__), set(AlignConfig.__dataclass_fields__)
    unknown = set(hp) - bb_keys - al_keys
    if unknown:
        raise ParamError(f"{'graph.overrides' if where == 'graph' else where}: unknown key(s) "
                         f"{sorted(unknown)} for graph.model={model}; known: {sorted(bb_keys | al_keys)}")
    bb_cfg = parse(bb_class, {k: v for k, v in hp.items() if k in bb_keys}, where)
    al_cfg = parse(AlignConfig, {k: v for k, v in hp.items() if k in al_keys}, where)
    return bb_cfg, al_cfg


def trained_hparams(bb_cfg, al_cfg, align: str) -> dict:
    """What a run trains with, for `models/graph/hparams.json`: every backbone key and the
    alignment keys `align` reads."""
    import dataclasses

    return {"backbone": dataclasses.asdict(bb_cfg),
            "alignment": {k: getattr(al_cfg, k) for k in ALIGN_KEYS[align]}}
