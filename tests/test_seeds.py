"""Several seeds inside one stage: `baselines.seeds` validation, the mean ± std file against
numpy, per-seed files, unchanged single-seed output, and the report's mean ± std and tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import md_tables, stage

from recpipe.config import ParamError
from recpipe.eval.report import ReportParams, build_report, collect_runs
from recpipe.eval.seeds import Seed, aggregate, parse_seeds
from recpipe.eval.significance import fmt_mean_std

SEEDS = [1, 2, 3]
# a few epochs on the small split: seconds per seed, enough for seeds to disagree
BPR_SMALL = {"dim": 16, "reg": 0.01, "train": {"lr": 0.05, "batch_size": 512, "epochs": 6,
                                               "eval_every": 3, "patience": 2}}


def load_stage():
    return stage("baselines")


# ----------------------------------------------------------------------------- params


def test_parse_seeds_accepts_lists_and_defaults_to_the_top_level_seed():
    assert parse_seeds(None, 2023, "baselines.seeds") == [2023]
    assert parse_seeds([], 7, "baselines.seeds") == [7]
    assert parse_seeds([3, 1, 2], 7, "baselines.seeds") == [3, 1, 2]  # order kept
    assert parse_seeds([0], 7, "baselines.seeds") == [0]


@pytest.mark.parametrize("value, why", [
    ("abc", r"'abc' is not a list of seeds"),
    (3, r"3 is not a list of seeds"),
    ([1, "abc"], r"'abc' is not an integer seed"),
    ([1, 2.0], r"2\.0 is not an integer seed"),
    ([1, True], r"True is not an integer seed"),
    ([1, -2], r"-2 is negative"),
    ([1, 2, 1], r"seed 1 is listed twice"),
])
def test_parse_seeds_refuses_bad_values_naming_the_key(value, why):
    with pytest.raises(ParamError, match=rf"^baselines\.seeds: {why}; write a list of distinct"):
        parse_seeds(value, 2023, "baselines.seeds")


def test_stage_fails_with_a_message_naming_baselines_seeds(tmp_path, capsys):
    stage = load_stage()
    params = tmp_path / "params.yaml"
    for bad, why in [("abc", "'abc' is not a list of seeds"), ("[1, 2, 2]", "seed 2 is listed twice")]:
        params.write_text(f"seed: 1\nbaselines:\n  seeds: {bad}\n")
        assert stage.main(["--params", str(params), "--processed", str(tmp_path / "none"),
                           "--metrics-dir", str(tmp_path / "metrics"),
                           "--models-dir", str(tmp_path / "models")]) == 2
        err = capsys.readouterr().err
        assert f"baselines failed: baselines.seeds: {why}" in err


# ----------------------------------------------------------------------------- aggregation


def test_aggregate_means_stds_and_keeps_what_seeds_share():
    per_seed = [
        {"preset": "unified", "model": "m", "seed": s, "per_user": f"x/seed{s}/per_user.parquet",
         "selected_epoch": e, "test/recall@20": r, "test/units": 50, "note": f"n{s}",
         "valid/recall@20": 0.25}
        for s, e, r in [(1, 3, 0.1), (2, 6, 0.2), (3, 6, 0.4)]
    ]
    agg = aggregate(per_seed, [1, 2, 3], ["a/1.json", "a/2.json", "a/3.json"])
    assert list(agg) == ["preset", "model", "seeds", "seed_list", "per_seed", "selected_epoch",
                         "selected_epoch_std", "test/recall@20", "test/recall@20_std",
                         "test/units", "valid/recall@20", "valid/recall@20_std"]
    assert agg["seeds"] == 3 and agg["seed_list"] == [1, 2, 3]
    assert agg["per_seed"] == ["a/1.json", "a/2.json", "a/3.json"]
    r = np.array([0.1, 0.2, 0.4])
    assert agg["test/recall@20"] == pytest.approx(r.mean(), abs=1e-6)
    assert agg["test/recall@20_std"] == pytest.approx(r.std(ddof=1), abs=1e-6)
    assert agg["selected_epoch"] == 5.0 and agg["selected_epoch_std"] == pytest.approx(np.std([3, 6, 6], ddof=1), abs=1e-6)
    assert agg["test/units"] == 50  # a shared count stays a count
    assert agg["valid/recall@20"] == 0.25 and agg["valid/recall@20_std"] == 0.0
    # a key missing from one seed is not averaged over the others
    per_seed[2].pop("valid/recall@20")
    assert "valid/recall@20" not in aggregate(per_seed)
    with pytest.raises(ValueError, match="at least two seeds"):
        aggregate(per_seed[:1])


def test_seed_folders():
    assert Seed(4).under("models/x") == Path("models/x")
    assert Seed(4, multi=True).under("models/x") == Path("models/x/seed4")


# ----------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> Path:
    """A small real split as data/processed: synthetic generator -> amazon2018 reader -> split."""
    from recpipe.config import parse
    from recpipe.data.ingest import ingest
    from recpipe.data.processed import build
    from recpipe.data.sample import SampleConfig, generate
    from recpipe.params import DatasetParams, IngestParams, SplitParams

    d = tmp_path_factory.mktemp("seeds_split")
    generate(SampleConfig(n_users=300, n_items=200, reviews_per_user_mean=10.0, seed=3), d / "raw")
    ingest(DatasetParams(path=str(d / "raw")), IngestParams(), d / "interim")
    build(d / "interim", d / "processed", parse(SplitParams, {}, prefix="split"), 3)
    return d / "processed"


def _run_stage(root: Path, processed: Path, seeds: list[int], seed: int = 2023) -> dict:
    """The stage as `dvc repro` runs it: from the project root, with relative paths."""
    import os

    params = {"seed": seed, "baselines": {"models": ["pop", "bprmf"], "device": "cpu",
                                          "seeds": seeds, "bprmf": BPR_SMALL}}
    root.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        return load_stage().run(params, processed, Path("metrics"), Path("models/baselines"))
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def multi(tmp_path_factory, processed):
    import os

    os.environ["TQDM_DISABLE"] = "1"
    root = tmp_path_factory.mktemp("multi")
    out = _run_stage(root, processed, SEEDS)
    return root, out


def _per_seed(root: Path, model: str) -> list[dict]:
    return [json.loads((root / f"models/baselines/{model}/seed{s}/metrics.json").read_text())
            for s in SEEDS]


def test_per_seed_files_and_the_mean_std_file(multi):
    root, out = multi
    for model in ("pop", "bprmf"):
        folder = root / "models" / "baselines" / model
        assert sorted(p.name for p in folder.iterdir()) == [
            "hparams.json", "metrics.json", *(f"seed{s}" for s in SEEDS)]
        curves = ["curves"] if model == "bprmf" else []  # only a trained model has a curve
        for s in SEEDS:
            assert sorted(p.name for p in (folder / f"seed{s}").iterdir()) == [
                *curves, "metrics.json", "per_user.parquet"]
        per_seed = _per_seed(root, model)
        assert [d["seed"] for d in per_seed] == SEEDS
        assert [d["per_user"] for d in per_seed] == [
            f"models/baselines/{model}/seed{s}/per_user.parquet" for s in SEEDS]
        agg = json.loads((folder / "metrics.json").read_text())  # the full mean ± std file
        assert agg == out[model]
        # the declared headline: test recall/NDCG@20 with their std, the seed count
        head = json.loads((root / "metrics" / f"{model}.json").read_text())
        assert head == {k: agg[k] for k in head}
        assert {"test/recall@20", "test/recall@20_std", "test/ndcg@20", "test/ndcg@20_std",
                "seeds"} <= set(head) and len(head) <= 8
        hp = json.loads((folder / "hparams.json").read_text())
        assert hp["model"] == model and hp["seeds"] == SEEDS and hp["device"] == "cpu"
        if model == "bprmf":
            assert hp["params"]["train"]["epochs"] == BPR_SMALL["train"]["epochs"] and hp["params"]["dim"] == 16
        assert agg["model"] == model and agg["seeds"] == 3 and agg["seed_list"] == SEEDS
        assert agg["per_seed"] == [f"models/baselines/{model}/seed{s}/metrics.json" for s in SEEDS]
        assert "seed" not in agg and "per_user" not in agg
        floats = [k for k, v in per_seed[0].items()
                  if k.startswith(("test/", "valid/")) and isinstance(v, float)]
        assert len(floats) > 40 and "test/recall@20/macro" in floats  # per-domain keys too
        for k in floats:
            vals = np.array([d[k] for d in per_seed])
            assert agg[k] == pytest.approx(vals.mean(), abs=1e-6), k
            assert agg[k + "_std"] == pytest.approx(vals.std(ddof=1), abs=1e-6), k
        assert agg["test/units"] == per_seed[0]["test/units"]
    # BPR-MF: each seed its own model, and its own dvclive curve
    bpr = _per_seed(root, "bprmf")
    assert len({d["test/ndcg@20"] for d in bpr}) == 3
    assert len({d["valid/ndcg@20"] for d in bpr}) == 3
    assert json.loads((root / "metrics/bprmf.json").read_text())["test/ndcg@20_std"] > 0
    for s in SEEDS:
        tsv = root / f"models/baselines/bprmf/seed{s}/curves/plots/metrics/valid/recall@20.tsv"
        assert pl.read_csv(tsv, separator="\t")["step"].to_list()[:2] == [0, 3]
    assert not (root / "plots").exists()  # no plots folder, so none is ever empty
    # MostPopular ignores the seed: identical seeds, std exactly 0
    pop = json.loads((root / "models/baselines/pop/metrics.json").read_text())
    assert pop["test/recall@20_std"] == 0.0 and pop["selected_epoch"] is None


def test_one_seed_output_is_unchanged_key_for_key(multi, processed, tmp_path):
    root, _ = multi
    for seeds, seed in (([], 2), ([2], 99)):  # [] = the top-level seed; [2] = seed 2 alone
        one = tmp_path / f"one{len(seeds)}"
        _run_stage(one, processed, seeds, seed=seed)
        for model in ("pop", "bprmf"):
            folder = one / "models/baselines" / model
            m = json.loads((folder / "metrics.json").read_text())
            # one seed: the full flat file with `seed` and the per-user table in the model folder
            assert sorted(p.name for p in folder.iterdir()) == [
                *(["curves"] if model == "bprmf" else []), "hparams.json", "metrics.json",
                "per_user.parquet"]
            assert not any(k.endswith("_std") for k in m) and "seeds" not in m
            assert list(m)[:8] == ["preset", "recall_denominator", "ndcg_idcg",
                                   "mask_valid_at_test", "model", "seed", "per_user",
                                   "selected_epoch"]
            assert m["per_user"] == f"models/baselines/{model}/per_user.parquet"
            # the same numbers, key for key, as seed 2 of the three-seed run
            seed2 = _per_seed(root, model)[1]
            drop = {"per_user"}
            assert {k: v for k, v in m.items() if k not in drop} == {
                k: v for k, v in seed2.items() if k not in drop}
            head = json.loads((one / "metrics" / f"{model}.json").read_text())
            assert head == {k: m[k] for k in ("test/recall@20", "test/ndcg@20", "selected_epoch")
                            if m[k] is not None}
            u1 = pl.read_parquet(one / "models/baselines" / model / "per_user.parquet")
            u3 = pl.read_parquet(root / f"models/baselines/{model}/seed2/per_user.parquet")
            assert u1.equals(u3)
        assert (one / "models/baselines/bprmf/curves/plots/metrics/valid/recall@20.tsv").exists()


def test_report_shows_mean_std_over_seeds_and_tests_seed_averaged_users(multi, tmp_path):
    root, _ = multi
    runs = collect_runs(root)
    assert sorted((r.model, r.seed) for r in runs) == [(m, s) for m in ("bprmf", "pop") for s in SEEDS]
    assert all(r.per_user == root / f"models/baselines/{r.model}/seed{r.seed}/per_user.parquet"
               for r in runs)
    p = ReportParams(metrics=["recall@20", "ndcg@20"], baselines=["pop"])
    build_report(root, p, tmp_path / "reports")
    md = (tmp_path / "reports" / "leaderboard.md").read_text()
    main = md_tables(md)[0]
    assert main["header"] == ["method", "seeds", "recall@20", "ndcg@20"]
    assert main["bprmf"][1] == "3" and main["pop"][1] == "3"
    bpr, pop = _per_seed(root, "bprmf"), _per_seed(root, "pop")
    for j, m in enumerate(p.metrics, start=2):
        vals = [d[f"test/{m}"] for d in bpr]
        cell = fmt_mean_std(float(np.mean(vals)), float(np.std(vals, ddof=1)))
        assert main["bprmf"][j].removesuffix(" *").removesuffix(" †") == cell
        assert " ± " in main["bprmf"][j]
        assert main["pop"][j] == fmt_mean_std(pop[0][f"test/{m}"], 0.0)
    # the paired test compares per-user values averaged over the three seeds, user by user
    details = next(t for t in md_tables(md) if "baseline" in t["header"])
    assert details["bprmf"][1:3] == ["ndcg@20", "pop"]

    def seed_mean(model: str) -> np.ndarray:
        frames = [pl.read_parquet(root / f"models/baselines/{model}/seed{s}/per_user.parquet")
                  .filter((pl.col("part") == "test") & (pl.col("domain") == "all"))
                  .sort("uid")["ndcg@20"].to_numpy() for s in SEEDS]
        return np.mean(frames, axis=0)

    diff = seed_mean("bprmf") - seed_mean("pop")
    assert details["bprmf"][3] == str(len(diff))
    assert details["bprmf"][4] == f"{diff.mean():+.4f}"


def test_report_refuses_a_mean_file_whose_seeds_are_missing(multi, tmp_path):
    root, _ = multi
    copy = tmp_path / "proj"
    for sub in ("metrics", "models"):
        shutil.copytree(root / sub, copy / sub)
    (copy / "models/baselines/bprmf/seed2/metrics.json").unlink()
    with pytest.raises(ValueError, match=r"baselines/bprmf/metrics\.json averages seeds whose "
                                         r"file .*seed2/metrics\.json is missing"):
        collect_runs(copy)
