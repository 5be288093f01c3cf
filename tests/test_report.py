"""The `report` stage on a fake project: leaderboard values, significance marks, presets, PNGs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import md_tables, stage
from scipy import stats

from recpipe.eval.report import ReportParams, build_report, collect_runs, leaderboard, read_curves
from recpipe.eval.seeds import aggregate
from recpipe.eval.significance import fmt_mean_std

ROOT = Path(__file__).resolve().parents[1]
METRICS = ["recall@10", "recall@20", "ndcg@10", "ndcg@20"]
DOMAINS = ["Books", "Games"]
N_USERS = 300


def _per_user(base: dict[str, np.ndarray], shift: float, noise: float, rng) -> pl.DataFrame:
    """One run's per-user table: an "all" row per user and a row per (user, domain)."""
    users = np.arange(N_USERS)
    frames = []
    for dom, rows in [("all", users)] + [(d, users[i::2]) for i, d in enumerate(DOMAINS)]:
        vals = {m: base[m][rows] for m in METRICS}
        if noise or shift:
            vals = {m: np.clip(v + shift + rng.normal(0, noise, len(rows)), 0, 1)
                    for m, v in vals.items()}
        frames.append(pl.DataFrame({"uid": rows.astype(np.int32), "domain": [dom] * len(rows),
                                    **vals}))
    test = pl.concat(frames).with_columns(part=pl.lit("test"))
    valid = test.with_columns(part=pl.lit("valid"))  # a second part that must not leak in
    return pl.concat([valid.with_columns([pl.lit(0.0).alias(m) for m in METRICS]), test])


def _write_run(root: Path, stem: str, model: str, seed: int | None, df: pl.DataFrame,
               preset: str = "unified", per_user_key: bool = True) -> dict:
    folder = root / "models" / "fake" / stem
    folder.mkdir(parents=True)
    df.write_parquet(folder / "per_user.parquet")
    test = df.filter(pl.col("part") == "test")
    values = {"preset": preset, "recall_denominator": "full", "ndcg_idcg": "standard",
              "mask_valid_at_test": True, "model": model}
    if seed is not None:
        values["seed"] = seed
    if per_user_key:
        values["per_user"] = f"models/fake/{stem}/per_user.parquet"
    for m in METRICS:
        values[f"test/{m}"] = float(test.filter(pl.col("domain") == "all")[m].mean())
        values[f"valid/{m}"] = 0.0
        per = [float(test.filter(pl.col("domain") == d)[m].mean()) for d in DOMAINS]
        values.update({f"test/{m}/{d}": v for d, v in zip(DOMAINS, per)})
        values[f"test/{m}/macro"] = float(np.mean(per))
    (root / "metrics" / f"{stem}.json").write_text(json.dumps(values))
    return values


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """pop (baseline), same (identical to pop), worse (half of pop's values), better (3 seeds,
    clearly better) and a second-preset run; plus dataset-statistics files and dvclive curves."""
    root = tmp_path_factory.mktemp("proj")
    (root / "metrics").mkdir()
    (root / "metrics" / "dataset.json").write_text(json.dumps({"users": 10, "train": 5}))
    (root / "metrics" / "ingest.json").write_text(json.dumps({"rejects": 0}))
    rng = np.random.default_rng(0)
    base = {m: rng.beta(0.5, 3.0, N_USERS) for m in METRICS}
    frames = {"pop": _per_user(base, 0.0, 0.0, rng)}
    runs = {"pop": _write_run(root, "pop", "pop", 2023, frames["pop"])}
    # identical per-user values under another name: never significant
    runs["same"] = _write_run(root, "same", "same", 2023, frames["pop"], per_user_key=False)
    # uniformly worse than pop on every user: significantly worse
    worse = frames["pop"].with_columns([(pl.col(m) * 0.5) for m in METRICS])
    runs["worse"] = _write_run(root, "worse", "worse", 2023, worse)
    for k in range(3):
        stem = "better" if k == 0 else f"better-seed{k}"
        frames[stem] = _per_user(base, 0.08, 0.05, rng)
        runs[stem] = _write_run(root, stem, "better", None, frames[stem])
    runs["other"] = _write_run(root, "better-rlmrec", "better", 1, _per_user(base, 0.01, 0.01, rng),
                               preset="rlmrec")
    from dvclive import Live

    for name, slope in [("baselines/bprmf", 0.01), ("graph/lightgcn", 0.02)]:
        with Live(str(root / "plots" / name), dvcyaml=None, save_dvc_exp=False) as live:
            for step in range(5):
                live.log_metric("valid/recall@20", slope * step)
                live.log_metric("train/loss", 1.0 / (step + 1))
                live.next_step()
    info = build_report(root, ReportParams())
    return root, runs, frames, info


def _section(md: str, preset: str) -> str:
    """The text of one preset's section, up to the next preset heading."""
    start = md.index(f"## Preset `{preset}`")
    end = md.find("\n## Preset", start + 1)
    return md[start:] if end < 0 else md[start:end]




def test_runs_are_collected_and_grouped_by_model_and_seed(project):
    root, _, _, info = project
    runs = collect_runs(root)
    assert sorted(r.path.name for r in runs) == [
        "better-rlmrec.json", "better-seed1.json", "better-seed2.json", "better.json", "pop.json",
        "same.json", "worse.json"]
    better = [r for r in runs if r.model == "better" and r.values["preset"] == "unified"]
    seeds = sorted((r.seed for r in better), key=lambda s: -1 if s is None else s)
    assert seeds == [None, 1, 2]  # the `-seed<k>` suffix names the seed when the key is absent
    same = next(r for r in runs if r.model == "same")
    # no `per_user` key: found by its folder's name
    assert same.per_user == root / "models" / "fake" / "same" / "per_user.parquet"
    assert info == {"runs": 7, "models": 5, "protocols": 2, "curve_panels": 2, "skipped": 0}


def test_leaderboard_values_marks_and_presets(project):
    root, runs, frames, _ = project
    md = (root / "reports" / "leaderboard.md").read_text()
    assert "dataset" not in md and "ingest" not in md
    # one table per preset, the unified one holding three methods and the rlmrec one only its run
    assert md.count("## Preset `unified`") == 1 and md.count("## Preset `rlmrec`") == 1
    unified, rlmrec = _section(md, "unified"), _section(md, "rlmrec")
    main = md_tables(unified)[0]
    assert main["header"] == ["method", "seeds"] + METRICS
    assert list(main)[1:] == ["pop", "better", "same", "worse"]  # baselines first, then by name
    other = md_tables(rlmrec)[0]
    assert list(other)[1:] == ["better"] and other["better"][1] == "1"
    assert other["better"][3] == f"{runs['other']['test/recall@20']:.4f}"

    for j, m in enumerate(METRICS, start=2):
        vals = [runs[s][f"test/{m}"] for s in ("better", "better-seed1", "better-seed2")]
        expect = fmt_mean_std(float(np.mean(vals)), float(np.std(vals, ddof=1)))
        # paired t-test on per-user values averaged over the three seeds, against pop
        overall = (pl.col("part") == "test") & (pl.col("domain") == "all")
        per = [f.filter(overall).sort("uid")[m].to_numpy()
               for s, f in frames.items() if s.startswith("better")]
        pop = frames["pop"].filter(overall).sort("uid")[m].to_numpy()
        p = stats.ttest_rel(np.mean(per, axis=0), pop).pvalue
        assert p < 0.05  # the data is built so `better` is clearly better
        assert main["better"][j] == expect + " *"
        assert " ± " in main["better"][j]
        assert main["pop"][j] == f"{runs['pop'][f'test/{m}']:.4f}"  # one seed: no ± and no mark
        assert main["same"][j] == main["pop"][j]  # identical values: p = 1, no mark
        assert main["worse"][j] == f"{runs['worse'][f'test/{m}']:.4f} †"  # significantly worse
    assert main["better"][1] == "3" and main["pop"][1] == "1"
    assert "Reference baseline per column: recall@10: pop" in unified
    # the details table reports the difference and its CI
    # the details table (its last `better` row is ndcg@20) gives the per-user mean difference
    details = [t for t in md_tables(unified) if "baseline" in t["header"]][0]
    assert details["better"][1:4] == ["ndcg@20", "pop", str(N_USERS)]
    diff = float(np.mean(np.mean(per, axis=0) - pop))  # `per`, `pop` of the last metric, ndcg@20
    assert details["better"][4] == f"{diff:+.4f}"
    lo, hi = (float(x) for x in details["better"][5].strip("[]").split(", "))
    assert lo < diff < hi


def test_per_domain_tables(project):
    root, runs, _, _ = project
    md = (root / "reports" / "leaderboard.md").read_text()
    unified = _section(md, "unified")
    dom = [t for t in md_tables(unified) if t["header"][2:] == DOMAINS + ["macro"]]
    assert len(dom) == len(METRICS)
    recall20 = dom[METRICS.index("recall@20")]
    assert recall20["pop"][2] == f"{runs['pop']['test/recall@20/Books']:.4f}"
    assert recall20["better"][2].endswith(" *") and not recall20["same"][2].endswith("*")
    assert not recall20["better"][4].endswith("*")  # macro is never tested


def test_marks_follow_the_test_and_alpha(project):
    root, _, _, _ = project
    runs = collect_runs(root)
    # alpha so small that even the clearly better method is not marked
    main = md_tables(_section(leaderboard(runs, ReportParams(alpha=1e-300)), "unified"))[0]
    assert not any(c.endswith("*") for c in main["better"][2:])
    md = leaderboard(runs, ReportParams(test="wilcoxon", baselines=["same"]))
    assert "Wilcoxon signed-rank test" in md and "recall@10: same" in md
    main = md_tables(_section(md, "unified"))[0]
    assert list(main)[1:3] == ["same", "better"]
    assert all(c.endswith(" *") for c in main["better"][2:])


def _with_pop(root, seed: int):
    """A metrics folder holding one `pop` run; returns (rng, the base per-user values)."""
    (root / "metrics").mkdir()
    rng = np.random.default_rng(seed)
    base = {m: rng.beta(0.5, 3.0, N_USERS) for m in METRICS}
    _write_run(root, "pop", "pop", 0, _per_user(base, 0.0, 0.0, rng))
    return rng, base


def test_misaligned_units_are_not_marked(tmp_path):
    root = tmp_path
    rng, base = _with_pop(root, 1)
    moved = _per_user(base, 0.2, 0.01, rng).with_columns(pl.col("uid") + 1)  # other users
    _write_run(root, "shifted", "shifted", 0, moved)
    md = leaderboard(collect_runs(root), ReportParams())
    main = md_tables(md)[0]
    assert not any(c.endswith("*") for c in main["shifted"][2:])
    assert "different units" in md


def test_a_user_subsample_is_tested_on_the_same_users_of_the_baseline(tmp_path):
    """An LLM stage scored on `eval_users` of the users: its marks pair it with the baseline's
    values on those users (not an error, not all users), and one note says so."""
    root = tmp_path
    rng, base = _with_pop(root, 2)
    sub = _per_user(base, 0.2, 0.01, rng).filter(pl.col("uid") < 90)  # 90 of 300 users, better
    _write_run(root, "llm", "llm", 0, sub)
    md = leaderboard(collect_runs(root), ReportParams())
    main = md_tables(md)[0]
    assert all(c.endswith("*") for c in main["llm"][2:])
    assert md.count("llm: scored on a subsample of the test units (90 of 300 overall)") == 1
    assert "different units" not in md
    worse = _per_user(base, -0.05, 0.0, rng).filter(pl.col("uid") < 90)
    (root / "metrics" / "llm.json").unlink()
    shutil.rmtree(root / "models" / "fake" / "llm")
    _write_run(root, "llm", "llm", 0, worse)
    assert all(c.endswith("†") for c in md_tables(leaderboard(collect_runs(root), ReportParams()))[0]["llm"][2:])


def test_llm_runs_state_their_backbone_and_how_far_training_got(tmp_path):
    root = tmp_path
    rng, base = _with_pop(root, 3)
    v = _write_run(root, "hellm", "hellm", 7, _per_user(base, 0.0, 0.01, rng))
    v.update(backbone="smollm2-135m", backbone_parameters=134_515_008, trainable=9_179_136,
             train_samples=576, train_users=50, steps=82, stopped="epochs")
    v["test/units"] = 300
    (root / "metrics" / "hellm.json").write_text(json.dumps(v))
    md = leaderboard(collect_runs(root), ReportParams())
    assert ("| hellm | 7 | smollm2-135m | 134,515,008 | 9,179,136 | 576 samples of 50 users | "
            "82 (epochs) | 300 |") in md
    assert md.count("## LLM runs") == 1 and "| pop | 0 | " not in md.split("## LLM runs")[1]


def test_a_mean_over_seeds_file_mixes_with_the_seed_suffix(tmp_path):
    """`metrics/mix.json` (seeds 1, 2 run by one stage) + `metrics/mix-seed3.json` = 3 seeds."""
    root = tmp_path
    rng, base = _with_pop(root, 2)
    per, frames = [], []
    for s in (1, 2):  # per-seed files live in the model folder, as run_seeds writes them
        frames.append(_per_user(base, 0.05, 0.05, rng))
        per.append(_write_run(root, f"mix{s}", "mix", s, frames[-1]))
        (root / "metrics" / f"mix{s}.json").rename(root / "models/fake" / f"mix{s}/metrics.json")
    listed = [f"models/fake/mix{s}/metrics.json" for s in (1, 2)]
    (root / "metrics" / "mix.json").write_text(json.dumps(aggregate(per, [1, 2], listed)))
    frames.append(_per_user(base, 0.05, 0.05, rng))
    per.append(_write_run(root, "mix-seed3", "mix", None, frames[-1]))
    runs = collect_runs(root)
    assert sorted(r.seed for r in runs if r.model == "mix") == [1, 2, 3]
    md = leaderboard(runs, ReportParams())
    main = md_tables(md)[0]
    assert list(main)[1:] == ["pop", "mix"] and main["mix"][1] == "3"
    vals = [v["test/recall@20"] for v in per]
    assert main["mix"][3] == fmt_mean_std(float(np.mean(vals)), float(np.std(vals, ddof=1))) + " *"
    # the test ran on per-user values averaged over all three seeds
    details = next(t for t in md_tables(md) if "baseline" in t["header"])
    overall = (pl.col("part") == "test") & (pl.col("domain") == "all")
    mean3 = np.mean([f.filter(overall).sort("uid")["ndcg@20"].to_numpy() for f in frames], axis=0)
    pop = pl.read_parquet(root / "models/fake/pop/per_user.parquet").filter(overall).sort("uid")
    assert details["mix"][4] == f"{float(np.mean(mean3 - pop['ndcg@20'].to_numpy())):+.4f}"
    # a seed held by both conventions is refused, naming both files
    _write_run(root, "mix-seed1", "mix", None, frames[0])
    with pytest.raises(ValueError, match=r"both hold model 'mix' seed 1") as err:
        collect_runs(root)
    assert "metrics/mix-seed1.json" in str(err.value) and "mix1/metrics.json" in str(err.value)
    (root / "metrics" / "mix-seed1.json").unlink()
    # a mean file that does not list its seeds' files cannot be tested or averaged: refused
    (root / "metrics" / "mix.json").write_text(json.dumps(aggregate(per[:2], [1, 2])))
    with pytest.raises(ValueError, match=r"mix\.json is a mean over 2 seeds without a `per_seed`"):
        collect_runs(root)


def test_headline_files_are_read_through_their_full_file(tmp_path):
    """The stages' layout: `metrics/<m>.json` declares a few keys, the full flat file is
    `models/**/<m>/metrics.json`; the report reads the full one (every K, every domain)."""
    from recpipe.eval.output import headline

    root = tmp_path
    rng, base = _with_pop(root, 3)
    full = _write_run(root, "bprmf", "bprmf", 0, _per_user(base, 0.1, 0.02, rng))
    (root / "metrics" / "bprmf.json").unlink()
    (root / "models" / "fake" / "bprmf" / "metrics.json").write_text(json.dumps(full))
    (root / "metrics" / "bprmf.json").write_text(json.dumps(headline(full)))
    assert set(headline(full)) == {"test/recall@20", "test/ndcg@20"}
    # a headline whose full file is gone (a stale file of a model no longer run): left out, said
    (root / "metrics" / "ease.json").write_text(json.dumps({"test/recall@20": 0.5}))
    skipped: list[str] = []
    runs = collect_runs(root, skipped)
    bpr = next(r for r in runs if r.model == "bprmf")
    assert bpr.path == root / "models/fake/bprmf/metrics.json" and bpr.values == full
    assert bpr.per_user == root / "models/fake/bprmf/per_user.parquet"
    assert sorted(r.model for r in runs) == ["bprmf", "pop"]
    assert skipped and "metrics/ease.json" in skipped[0]
    info = build_report(root, ReportParams(), tmp_path / "reports")
    assert info["skipped"] == 1
    md = (tmp_path / "reports" / "leaderboard.md").read_text()
    main = md_tables(md)[0]
    assert main["bprmf"][3] == f"{full['test/recall@20']:.4f}"  # both are baselines: no mark
    assert "### recall@20 per domain" in md and "metrics/ease.json" in md  # every domain kept


def test_domains_without_test_targets_are_named(tmp_path):
    root = tmp_path
    rng, base = _with_pop(root, 4)
    other = _write_run(root, "other", "other", 0, _per_user(base, 0.0, 0.01, rng))
    md = leaderboard(collect_runs(root), ReportParams())
    assert "no test targets" not in md
    for stem, vals in (("pop", None), ("other", other)):
        path = root / "metrics" / f"{stem}.json"
        vals = json.loads(path.read_text())
        vals["test/domains_without_targets"] = ["Toys", "Beauty"]
        vals["test/domains_without_targets_count"] = 2
        path.write_text(json.dumps(vals))
        md = leaderboard(collect_runs(root), ReportParams())
        line = "Domains with no test targets (left out of the macro average)"
        if stem == "pop":  # one method of two: named
            assert f"{line} for pop: Beauty, Toys." in md
        else:  # every method: one line for the table
            assert f"{line}: Beauty, Toys." in md and "for pop" not in md


def test_curves_in_model_folders_are_read(tmp_path):
    """Baselines keep their dvclive curve in `models/baselines/<m>/curves/` (no empty plots
    folder for models without a curve); the report labels it like a plots/ curve."""
    from dvclive import Live

    from recpipe.eval.report import collect_curves

    for folder in ("models/baselines/bprmf/curves", "models/baselines/bprmf/seed2/curves",
                   "plots/graph"):
        with Live(str(tmp_path / folder), dvcyaml=None, save_dvc_exp=False) as live:
            for step in range(3):
                live.log_metric("valid/recall@20", 0.1 * step)
                live.next_step()
    curves = collect_curves(tmp_path)
    assert sorted(curves["valid/recall@20"]) == [
        "baselines/bprmf", "baselines/bprmf/seed2", "graph"]
    (tmp_path / "metrics").mkdir()
    assert build_report(tmp_path, ReportParams())["curve_panels"] == 1


def test_pngs_are_written_and_valid(project):
    root, _, _, _ = project
    for name in ("metric_vs_k.png", "curves.png"):
        data = (root / "reports" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 1024


def test_dvclive_curves_are_read(project):
    root, _, _, _ = project
    curves = read_curves(root / "plots")
    assert sorted(curves) == ["train/loss", "valid/recall@20"]
    df = curves["valid/recall@20"]["graph/lightgcn"]
    assert df["step"].to_list() == [0, 1, 2, 3, 4]
    assert df["value"].to_list() == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08])


def _stage():
    return stage("report")


def test_stage_script_runs_and_rejects_bad_params(tmp_path, project, capsys):
    root, _, _, _ = project
    stage = _stage()
    params, out = tmp_path / "params.yaml", tmp_path / "reports"
    args = ["--params", str(params), "--root", str(root), "--out", str(out)]
    params.write_text("report:\n  metrics: [recall@20]\n  alpha: 0.01\n")
    assert stage.main(args) == 0
    assert "7 runs of 5 methods in 2 preset table(s), 2 curve panel(s)" in capsys.readouterr().out
    md = (out / "leaderboard.md").read_text()
    assert md_tables(_section(md, "unified"))[0]["header"] == ["method", "seeds", "recall@20"]
    assert "p < 0.01" in md
    params.write_text("report:\n  test: sign\n")
    assert stage.main(args) == 2
    assert "report.test: 'sign' is not allowed" in capsys.readouterr().err
    params.write_text("report:\n  alpha: 0\n")
    assert stage.main(args) == 2
    assert "report.alpha: 0.0 must be > 0.0" in capsys.readouterr().err
