"""Scoped `graph.overrides`, parity mode on the official values, hparams.json (issue 12 section 2).

Overrides are keyed by `<model>` or `<model>-<align>` and apply in clean mode only; parity
mode trains RLMRec's official per-model values, reports an entry that would have applied and
records it in models/graph/hparams.json.
"""

from __future__ import annotations

import json

import pytest
import yaml

pytest.importorskip("torch")

from conftest import ROOT  # noqa: E402
from conftest import stage as load_stage  # noqa: E402
from recpipe.config import ParamError  # noqa: E402
from recpipe.graph import presets  # noqa: E402

# the official Con weight per backbone (encoder/config/modelconf/<model>_plus.yml, amazon)
OFFICIAL_KD = {"lightgcn": 1e-2, "sgl": 1e-2, "simgcl": 1e-2, "dccf": 1e-2, "gccf": 1e-3, "autocf": 1e-1}


@pytest.fixture(scope="module")
def stage():
    return load_stage("graph")


def _params(**graph) -> dict:
    """The repository's params.yaml with `graph` keys replaced, as `dvc exp run -S` would."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["graph"].update(graph)
    return params


@pytest.mark.parametrize("model", sorted(OFFICIAL_KD))
def test_default_params_in_parity_mode_train_the_official_values(stage, model):
    plan = stage.configure(_params(model=model, align="con", mode="parity"))
    assert plan.al_cfg.kd_weight == OFFICIAL_KD[model]
    assert (plan.bb_cfg, plan.al_cfg) == presets.build_configs(model, "con", "amazon", "parity")
    assert plan.overrides["applied"] == {}
    # the default lightgcn-con entry is reported, not applied; other models have none
    assert plan.overrides["not_applied"] == ({"kd_weight": 0.001} if model == "lightgcn" else {})


def test_default_params_in_clean_mode_scope_the_kd_weight_to_lightgcn_con(stage):
    assert stage.configure(_params(model="lightgcn", align="con")).al_cfg.kd_weight == 0.001
    for model in ("gccf", "sgl", "autocf"):
        plan = stage.configure(_params(model=model, align="con"))
        assert plan.al_cfg.kd_weight == OFFICIAL_KD[model] and plan.overrides["applied"] == {}


def test_model_scope_applies_to_every_alignment_and_the_pair_scope_wins():
    over = {"sgl": {"layers": 2, "cl_weight": 0.5}, "sgl-gen": {"layers": 1}, "dccf-con": {"kd_weight": 0.2}}
    assert presets.resolve_overrides(over, "sgl", "none", "clean") == ({"layers": 2, "cl_weight": 0.5}, {})
    assert presets.resolve_overrides(over, "sgl", "gen", "clean") == ({"layers": 1, "cl_weight": 0.5}, {})
    assert presets.resolve_overrides(over, "dccf", "gen", "clean") == ({}, {})
    assert presets.resolve_overrides(over, "sgl", "gen", "parity") == ({}, {"layers": 1, "cl_weight": 0.5})


def test_unknown_scopes_keys_and_values_stop_naming_them():
    with pytest.raises(ParamError, match=r"graph.overrides: unknown key 'lightgcn-foo'; allowed: .*lightgcn-con"):
        presets.resolve_overrides({"lightgcn-foo": {"kd_weight": 0.1}}, "lightgcn", "con", "clean")
    # the old flat form gets a hint at the scoped one
    with pytest.raises(ParamError, match=r"unknown key 'kd_weight' \(overrides are keyed by model or "
                                         r"model-align, e\.g\. \{lightgcn-con: \{kd_weight: 0\.001\}\}\)"):
        presets.resolve_overrides({"kd_weight": 0.001}, "lightgcn", "con", "clean")
    with pytest.raises(ParamError, match=r"graph.overrides.sgl-con: unknown key\(s\) kd_wieght; known: .*kd_weight"):
        presets.resolve_overrides({"sgl-con": {"kd_wieght": 0.1}}, "lightgcn", "con", "clean")  # any scope, any run
    with pytest.raises(ParamError, match=r"graph.overrides.gccf-none: unknown key\(s\) kd_weight"):
        presets.resolve_overrides({"gccf-none": {"kd_weight": 0.1}}, "gccf", "none", "clean")  # none reads no kd_*
    with pytest.raises(ParamError, match=r"graph.overrides.gccf-gen: unknown key\(s\) kd_weight"):
        presets.resolve_overrides({"gccf-gen": {"kd_weight": 0.1}}, "gccf", "gen", "clean")
    with pytest.raises(ParamError, match=r"graph.overrides.dccf-con.kd_weight: -1.0 must be >= 0"):
        presets.resolve_overrides({"dccf-con": {"kd_weight": -1}}, "lightgcn", "con", "clean")
    with pytest.raises(ParamError, match=r"graph.overrides.autocf.edge_decode: 'fast' is not allowed"):
        presets.resolve_overrides({"autocf": {"edge_decode": "fast"}}, "autocf", "none", "clean")
    with pytest.raises(ParamError, match=r"graph.overrides.lightgcn: 3 is not a mapping"):
        presets.resolve_overrides({"lightgcn": 3}, "lightgcn", "con", "clean")


def test_explicit_flat_overrides_in_parity_mode_stop():
    with pytest.raises(ParamError, match=r"graph.mode=parity trains RLMRec's official lightgcn-con values"):
        presets.build_configs("lightgcn", "con", "amazon", "parity", {"kd_weight": 0.001})
    presets.build_configs("lightgcn", "con", "amazon", "clean", {"kd_weight": 0.001})


def test_rlmrec_release_preset_trains_in_parity_mode():
    from recpipe.presets import flags

    assert "graph.mode=parity" in flags("rlmrec-release")


def test_stage_writes_hparams_and_reports_an_override_parity_does_not_apply(stage, small_processed, tmp_path, capsys):
    def run(mode):
        params = {"seed": 5, "eval": {"preset": "unified"},
                  "graph": {"model": "gccf", "align": "none", "mode": mode, "device": "cpu", "threads": 1,
                            "overrides": {"gccf": {"layers": 1}, "lightgcn-con": {"kd_weight": 0.001}},
                            "train": {"epochs": 1, "eval_every": 1, "batch_size": 512}}}
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        out = tmp_path / mode
        assert stage.main(["--params", str(tmp_path / "params.yaml"), "--processed", str(small_processed),
                           "--embeddings", str(tmp_path / "embeddings"), "--out", str(out),
                           "--metrics", str(out / "graph.json"), "--plots", str(tmp_path / "plots")]) == 0
        return json.loads((out / "hparams.json").read_text()), capsys.readouterr().out

    clean, said = run("clean")
    assert clean["backbone"]["layers"] == 1 and clean["backbone"]["self_loops"] is True
    assert clean["overrides"] == {"applied": {"layers": 1}, "not_applied": {}}
    assert "not applied" not in said
    parity, said = run("parity")
    assert parity["backbone"] == {"embedding_size": 32, "layers": 2, "reg_weight": 1e-6, "self_loops": True}
    assert parity["overrides"] == {"applied": {}, "not_applied": {"layers": 1}}
    assert "graph.overrides {'layers': 1} not applied (clean mode only)" in said
    assert parity["alignment"] == {}  # align=none reads no alignment key
    assert (parity["model"], parity["align"], parity["mode"], parity["seeds"], parity["device"]) == (
        "gccf", "none", "parity", [5], "cpu")
    assert parity["train"]["epochs"] == 1 and parity["eval"]["preset"] == "unified"


def test_write_hparams_turns_dataclasses_into_mappings(tmp_path):
    from recpipe.train.loop import TrainConfig
    from recpipe.io import write_hparams

    doc = write_hparams(tmp_path / "m" / "hparams.json", model="bprmf", train=TrainConfig(epochs=7), seeds=[1])
    assert json.loads((tmp_path / "m" / "hparams.json").read_text()) == doc
    assert doc["train"]["epochs"] == 7 and doc["model"] == "bprmf"
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["hparams.json"]  # no temporary left
