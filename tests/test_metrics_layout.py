"""The metrics layout (issue 12, sections 6 and 7a), checked without running the pipeline.

Every stage writes its full flat JSON as `metrics.json` inside its own output folder and a
few headline keys to `metrics/<name>.json`, the only files declared under dvc.yaml's
`metrics:`; baselines keep their dvclive curve in their model folder, so no stage declares a
plots folder it may leave empty. tests/test_pipeline_dvc.py checks the same on a real
`dvc repro` (no "is empty" warning, `dvc metrics show` within 160 columns, `dvc metrics diff`).
"""

from __future__ import annotations

import pytest

from conftest import resolved_dvc_yaml
from recpipe.eval.output import headline


@pytest.fixture(scope="module")
def dvc_yaml() -> dict:
    """Interpolated (`${paths.metrics}` -> metrics), foreach stages expanded (baselines@pop)."""
    return resolved_dvc_yaml()


def _stage_outs(dvc_yaml: dict) -> dict[str, list[str]]:
    """stage name -> declared out paths."""
    return {name: [next(iter(o)) if isinstance(o, dict) else o for o in st.get("outs", [])]
            for name, st in dvc_yaml["stages"].items()}


def test_declared_metrics_are_the_headline_files_of_the_stages(dvc_yaml):
    outs = _stage_outs(dvc_yaml)
    written = [o for paths in outs.values() for o in paths if o.startswith("metrics/")]
    assert sorted(dvc_yaml["metrics"]) == sorted(written)
    assert sorted(dvc_yaml["metrics"]) == sorted(
        f"metrics/{n}.json" for n in ("dataset", "profile", "embed", "pop", "itemknn", "ease",
                                      "bprmf", "graph", "sasrec", "mmhcl", "hellm", "cllm4rec",
                                      "hum"))
    # the full files live in the stages' own (cached) folders, declared as outs
    for stage, folder in [("ingest", "data/interim"), ("split", "data/processed"),
                          ("profile", "data/profiles"), ("embed", "models/embeddings"),
                          ("baselines@pop", "models/baselines/pop"), ("graph", "models/graph"),
                          ("sasrec", "models/sasrec"), ("mmhcl", "models/mmhcl"),
                          ("hellm", "models/hellm"), ("cllm4rec_pretrain", "models/cllm4rec_pretrain"),
                          ("cllm4rec_finetune", "models/cllm4rec"), ("hum", "models/hum")]:
        assert folder in outs[stage], stage
    assert "--metrics data/interim/metrics.json" in dvc_yaml["stages"]["ingest"]["cmd"]


def test_only_models_with_curves_declare_plots(dvc_yaml):
    outs = _stage_outs(dvc_yaml)
    for model in ("pop", "itemknn", "ease", "bprmf"):
        assert not [o for o in outs[f"baselines@{model}"] if o.startswith("plots/")], model
    plots = [next(iter(p)) for p in dvc_yaml["plots"]]
    assert "models/baselines/bprmf/curves/plots/metrics" in plots
    # each plotted folder lies inside a declared output
    every = [o for paths in outs.values() for o in paths]
    for p in plots:
        assert any(p == o or p.startswith(o + "/") for o in every), p


def test_headline_keeps_the_compared_keys_only():
    full = {"preset": "unified", "model": "bprmf", "seed": 1, "selected_epoch": 6,
            "per_user": "models/baselines/bprmf/per_user.parquet",
            **{f"{p}/{m}@{k}": 0.1 for p in ("valid", "test") for m in ("recall", "ndcg", "hr")
               for k in (5, 10, 20, 40)},
            "test/recall@20/Books": 0.2, "test/recall@20/macro": 0.2, "test/units": 300,
            "test/domains_without_targets": ["Toys"]}
    assert headline(full) == {"test/recall@20": 0.1, "test/ndcg@20": 0.1, "selected_epoch": 6}
    assert "selected_epoch" not in headline({**full, "selected_epoch": None})  # pop, itemknn, ease
    # several seeds: the std beside each and the seed count
    agg = {**full, "test/recall@20_std": 0.01, "test/ndcg@20_std": 0.02, "selected_epoch_std": 1.5,
           "seeds": 3, "seed_list": [1, 2, 3]}
    assert headline(agg) == {"test/recall@20": 0.1, "test/recall@20_std": 0.01, "test/ndcg@20": 0.1,
                             "test/ndcg@20_std": 0.02, "selected_epoch": 6,
                             "selected_epoch_std": 1.5, "seeds": 3}
    # a preset without K=20 takes the nearest K; one without recall (HeLLM: HR) takes hr
    no20 = {k.replace("@20", "@25"): v for k, v in full.items()}
    assert set(headline(no20)) == {"test/recall@25", "test/ndcg@25", "selected_epoch"}
    hr_only = {k: v for k, v in full.items() if "/recall" not in k and "/ndcg" not in k}
    assert set(headline(hr_only)) == {"test/hr@20", "selected_epoch"}
