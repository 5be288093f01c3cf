"""The leaderboard grid (issue 19): cells planned with their n/a reasons, queued as real DVC
experiments, collected into reports/leaderboard_all.md with a failed and a missing cell."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recpipe.grid.collect import error_line, paired_p
from recpipe.grid.plan import plan

ROOT = Path(__file__).resolve().parents[1]


def test_plan_marks_the_cells_that_do_not_apply(tmp_path):
    (tmp_path / "s3rec_seq").mkdir()
    cells = {c.name: c for c in plan(["sample", "beauty", "giftcards"],
                                     ["pop", "lightgcn-con", "hum"], [1, 2], tmp_path)}
    assert len(cells) == 18
    assert cells["beauty-lightgcn-con-s1"].na == "no text to profile"
    assert cells["beauty-hum-s2"].na == "no item titles"
    assert cells["sample-hum-s1"].na == ""  # three domains with titles
    assert cells["giftcards-pop-s1"].na.startswith("data absent: ")  # no folder under the root
    c = cells["beauty-pop-s2"]
    assert c.na == "" and c.argv()[:7] == ["dvc", "exp", "run", "--queue", "-n", "beauty-pop-s2",
                                           "baselines@pop"]
    # the model's seed; the data and split keep the top-level seed
    assert "baselines.seeds=[2]" in c.flags and not any(f.startswith("seed=") for f in c.flags)
    assert f"dataset.path={tmp_path}/s3rec_seq" in c.flags
    with pytest.raises(ValueError, match="unknown method.*choose from pop"):
        plan(["sample"], ["popularity"], [1], tmp_path)


def test_the_error_line_is_the_stages_own_message():
    log = ("Running stage 'baselines@ease':\n> python stages/baselines.py --model ease\n"
           "baselines: 150 users x 120 items\n"
           "baselines failed: EASE needs a dense 120 x 120 matrix, above the limit "
           "baselines.ease.max_items=10\n"
           "recpipe-resources: stage=baselines rc=2 wall_s=1.0 peak_rss_mib=300 peak_gpu_mib=0\n"
           "ERROR: failed to reproduce 'baselines@ease': failed to run: python ..., exited with 2\n")
    assert error_line(log).startswith("baselines failed: EASE needs")
    crash = "Traceback (most recent call last):\n  File x\nValueError: bad shape\n"
    assert error_line(crash) == "ValueError: bad shape"


def test_paired_p_is_a_paired_t_test_over_common_seeds():
    from scipy import stats

    a, b = {1: 0.30, 2: 0.32, 3: 0.35, 4: 0.5}, {1: 0.28, 2: 0.31, 3: 0.31}
    want = stats.ttest_rel([0.30, 0.32, 0.35], [0.28, 0.31, 0.31]).pvalue
    assert paired_p(a, b) == pytest.approx(want)
    assert paired_p({1: 0.3}, {1: 0.2}) is None  # one common seed: no test


def test_a_queued_grid_collects_done_failed_missing_and_na_cells(dag_repo, tmp_path):
    """Real experiments in the README's DAG repo: pop over seeds 1 and 2 finishes, EASE seed 1
    fails on a catalogue above its limit (a real ParamError), seed 3 was never queued (missing),
    and LightGCN-con on text-less Beauty does not apply; collecting twice retrains nothing."""
    from test_readme_commands import queue_counts, reset, sh, wait_for_queue

    repo, _ = dag_repo
    reset(repo)  # every output of the lock in the cache, as `dvc repro` left it
    grid = f"{sys.executable} -m recpipe.cli grid"
    root = tmp_path  # Beauty's folder exists (its cells are n/a for their reason, not absent)
    (root / "s3rec_seq").mkdir()
    try:
        check_grid(repo, grid, root, sh, queue_counts, wait_for_queue)
    finally:  # leave the shared repo's experiments as they were
        sh(repo, "dvc exp remove sample-pop-s1 sample-pop-s2", check=False)
        sh(repo, "dvc queue remove sample-ease-s1", check=False)
        subprocess.run(["rm", "-rf", str(repo / "reports" / "grid_test")], check=True)


def check_grid(repo, grid, root, sh, queue_counts, wait_for_queue):
    flags = "--datasets sample --methods pop --seeds 1 2"
    before = queue_counts(repo)[1:]
    out = sh(repo, f"{grid} queue {flags} --data-root {root}").stdout
    assert "2 cells queued, 0 kept" in out
    sh(repo, f"{grid} queue --datasets sample --methods ease --seeds 1 --data-root {root} "
             "--set baselines.ease.max_items=10")
    sh(repo, "dvc queue start -j 1")
    with pytest.raises(AssertionError, match="Failed"):  # the EASE cell fails
        wait_for_queue(repo, 2, before)
    _, ok, failed = queue_counts(repo)
    assert (ok - before[0], failed - before[1]) == (2, 1)

    collect = (f"{grid} collect --datasets sample beauty --methods pop ease lightgcn-con "
               f"--seeds 1 2 3 --data-root {root} --out reports/grid_test")
    sh(repo, collect)
    md = (repo / "reports" / "grid_test" / "leaderboard_all.md").read_text()
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in md.splitlines()
            if line.startswith("| ") and not line.startswith("| method")}
    cells = json.loads((repo / "reports" / "grid_test" / "grid_cells.json").read_text())
    by = {c["name"]: c for c in cells}
    assert by["sample-pop-s1"]["status"] == "done" and by["sample-pop-s3"]["status"] == "missing"
    assert by["sample-ease-s1"]["status"] == "failed"
    assert "baselines.ease.max_items=10" in by["sample-ease-s1"]["error"]
    assert by["beauty-lightgcn-con-s2"]["status"] == "n/a"
    pop1, pop2 = (by[f"sample-pop-s{s}"] for s in (1, 2))
    assert pop1["metrics"]["test/recall@20"] == pop2["metrics"]["test/recall@20"]  # no seed in pop
    assert pop1["wall_s"] > 0 and pop1["peak_rss_mib"] > 50  # from the stage's resource line
    # each done cell's per-user table, read from the experiment: one test row per scored user
    assert pop1["units"] == pop1["metrics"]["test/units"] > 100
    # the markdown: pop 2 of 3 seeds with a mean ± std, EASE's error line, the n/a reason
    assert "2/3" in md and "seed 3 missing" in md
    assert "failed: baselines failed:" in md and "max_items=10" in md
    assert "n/a: no text to profile" in md
    assert f"{pop1['metrics']['test/recall@20']:.4f} ± 0.0000" in md
    assert rows  # a table was written
    assert (repo / "reports" / "grid_test" / "leaderboard_all_sample.png").stat().st_size > 1000

    # collecting again reads the same experiments: same table, nothing queued or run
    n = queue_counts(repo)[1:]
    sh(repo, collect)
    assert (repo / "reports" / "grid_test" / "leaderboard_all.md").read_text() == md
    again = sh(repo, f"{grid} queue {flags} --data-root {root}").stdout
    assert "0 cells queued, 2 kept" in again and queue_counts(repo)[1:] == n


def test_every_stage_prints_its_resource_line_even_when_it_fails(tmp_path):
    """The collector's wall time and memory come from this line: a stage that fails on a
    bad param still prints it, with its exit code."""
    from recpipe.resources import parse

    (tmp_path / "params.yaml").write_text("split: {protocol: bogus}\n")
    res = subprocess.run([sys.executable, str(ROOT / "stages" / "split.py"), "--params",
                          str(tmp_path / "params.yaml"), "--interim", str(tmp_path / "i"),
                          "--ingest-report", str(tmp_path / "r.json"), "--out",
                          str(tmp_path / "p"), "--metrics", str(tmp_path / "m.json")],
                         capture_output=True, text=True, cwd=tmp_path, check=False)
    assert res.returncode == 2 and "protocol" in res.stderr
    (line,) = parse(res.stderr)
    assert line["stage"] == "split" and line["rc"] == 2 and line["wall_s"] >= 0
    assert line["peak_rss_mib"] > 10 and line["peak_gpu_mib"] == 0


def test_the_table_has_per_domain_columns_and_tests_against_the_best_baseline():
    """From records alone: the headline K's recall and NDCG, each domain's recall (up to 4
    domains, else only macro and spread), and a paired t-test against the best baseline."""
    from recpipe.grid.collect import Record, markdown, rows

    def full(x, domains):
        m = {"test/recall@10": x / 2, "test/recall@20": x, "test/ndcg@20": x / 3,
             "test/recall@20/macro": x, "test/recall@20/spread": 0.01, "test/units": 50}
        m.update({f"test/recall@20/{d}": x + i / 100 for i, d in enumerate(domains)})
        return m

    for domains, shown in ((["Books", "Games"], True), ([f"d{i}" for i in range(5)], False)):
        recs = []
        for c in plan(["sample"], ["pop", "bprmf", "hum"], [1, 2, 3], "/nowhere"):
            x = {"pop": 0.20, "bprmf": 0.25, "hum": 0.30}[c.method] + c.seed / 1000
            if c.method == "hum":
                x += (0.001, 0.004, 0.002)[c.seed - 1]  # paired differences that vary
            recs.append(Record(c, "done", metrics=full(x, domains)))
        table = rows(recs)
        hum = next(r for r in table["sample"] if r.method == "hum")
        assert hum.versus == "bprmf" and hum.p == pytest.approx(paired_p(
            {s: 0.30 + s / 1000 + (0.001, 0.004, 0.002)[s - 1] for s in (1, 2, 3)},
            {s: 0.25 + s / 1000 for s in (1, 2, 3)}))
        md = markdown(table, 9)
        head = next(line for line in md.splitlines() if line.startswith("| method"))
        assert "recall@20 | ndcg@20" in head and "recall@10" not in head
        assert ("recall@20/Books" in head) == shown and "recall@20/spread" in head
        assert ("<0.001" if hum.p < 0.001 else f"{hum.p:.3f}") + " (bprmf)" in md


def test_the_users_test_pairs_the_users_both_rows_scored_averaged_over_seeds():
    """A method that scores a user subsample (the LLM stages on a CPU) is compared with the
    best baseline on those users only; each user's value is its mean over the seeds."""
    import numpy as np
    import polars as pl

    from recpipe.eval.significance import ttest_p
    from recpipe.grid.collect import Record, markdown, rows

    rng = np.random.default_rng(0)
    base = {s: rng.random(60) for s in (1, 2, 3)}  # bprmf: 60 users
    hum = {s: rng.random(20) + 0.1 for s in (1, 2, 3)}  # hum: users 10..29 only
    users = {"pop": np.arange(60), "bprmf": np.arange(60), "hum": np.arange(10, 30)}
    recs = []
    for c in plan(["sample"], ["pop", "bprmf", "hum"], [1, 2, 3], "/nowhere"):
        v = {"pop": np.full(60, 0.1), "bprmf": base[c.seed], "hum": hum[c.seed]}[c.method]
        units = pl.DataFrame({"uid": users[c.method], "domain": "all", "recall@20": v})
        recs.append(Record(c, "done", metrics={"test/recall@20": float(v.mean()),
                                               "test/units": len(v)}, units=units))
    table = rows(recs)
    row = next(r for r in table["sample"] if r.method == "hum")
    assert row.versus == "bprmf" and row.n_units == 20
    mine = np.mean([hum[s] for s in (1, 2, 3)], axis=0)
    theirs = np.mean([base[s][10:30] for s in (1, 2, 3)], axis=0)
    assert row.p_units == pytest.approx(ttest_p(mine - theirs))
    assert "(20) |" in markdown(table, 9) and row.p_units != pytest.approx(row.p)
    best = next(r for r in table["sample"] if r.method == "bprmf")
    assert best.p_units is None and best.units.height == 60


def test_each_dataset_states_its_cells_by_status_and_the_stage_time_they_took():
    """The leaderboard says what the grid cost: per dataset, the cells by status and the
    stage seconds of the done ones summed over methods and seeds (failed ones not counted)."""
    from recpipe.grid.collect import Record, markdown, rows, tally

    recs = []
    for c in plan(["sample"], ["pop", "bprmf", "hum"], [1, 2], "/nowhere"):
        if c.method == "hum" and c.seed == 2:
            recs.append(Record(c, "failed", error="boom", wall_s=999.0))
        else:
            wall = {"pop": 30.0, "bprmf": 90.0, "hum": 600.0}[c.method]
            recs.append(Record(c, "done", metrics={"test/recall@20": 0.1}, wall_s=wall))
    line = tally(recs)["sample"]
    assert line.startswith("6 cells: 5 done, 1 failed.")
    assert "ran 14.0 min in all" in line  # (2 x 30 + 2 x 90 + 600) / 60; the failed 999 s not
    assert "(most: hum 10.0, bprmf 3.0, pop 1.0)" in line
    md = markdown(rows(recs), 6, tally(recs))
    assert line in md.split("## sample", 1)[1]


def test_the_setup_column_names_only_what_ran():
    """A graph cell aligned to template profiles ran no profile LLM: its setup names the
    backend and the encoder, not profile.model. An hf backend did run that model."""
    from recpipe.grid.collect import record

    cell = next(c for c in plan(["sample"], ["lightgcn-con"], [1], "/nowhere"))
    params = {"profile.backend": "template", "profile.model": "smollm2-135m",
              "embed.model": "minilm"}
    exp = {"state": "success", "params": params, "metrics": {}}
    assert record(cell, exp, "").setup == "profile.backend=template, embed.model=minilm"
    exp["params"] = {**params, "profile.backend": "hf"}
    assert record(cell, exp, "").setup == ("profile.backend=hf, profile.model=smollm2-135m, "
                                           "embed.model=minilm")


def test_seeds_that_score_different_user_subsamples_are_all_paired():
    """The LLM stages on a CPU draw their evaluated users with the seed. Each user counts with
    the mean over the seeds that scored it, so three seeds' subsamples pool, not intersect."""
    import numpy as np
    import polars as pl

    from recpipe.eval.significance import ttest_p
    from recpipe.grid.units import seed_mean, versus

    rng = np.random.default_rng(1)
    subsets = {1: np.arange(0, 12), 2: np.arange(10, 22), 3: np.arange(20, 32)}  # 10, 11, 20, 21 twice
    llm = {s: pl.DataFrame({"uid": u, "recall@20": rng.random(len(u))}) for s, u in subsets.items()}
    base = [pl.DataFrame({"uid": np.arange(40), "recall@20": rng.random(40)}) for _ in range(3)]
    mine, theirs = seed_mean(list(llm.values()), "recall@20"), seed_mean(base, "recall@20")
    assert mine.height == 32  # the union; the intersection is empty
    both = {10: (1, 2), 11: (1, 2), 20: (2, 3), 21: (2, 3)}
    for uid, seeds in both.items():
        want = np.mean([llm[s].filter(pl.col("uid") == uid)["recall@20"][0] for s in seeds])
        assert mine.filter(pl.col("uid") == uid)["recall@20"][0] == pytest.approx(want)
    p, n = versus(mine, theirs, "recall@20")
    j = mine.join(theirs, on="uid", suffix="_b").sort("uid")
    assert n == 32 and p == pytest.approx(ttest_p((j["recall@20"] - j["recall@20_b"]).to_numpy()))


def test_the_png_names_and_hatches_rows_scored_on_a_user_subsample(tmp_path):
    """The LLM rows' means come from their seeds' user subsamples: the plot labels each with
    its unit count and hatches it; full-coverage rows keep their plain names."""
    import numpy as np
    import polars as pl

    from recpipe.grid.collect import Row, bar_labels, plot

    def row(method, n):
        units = None if n is None else pl.DataFrame({"uid": np.arange(n), "recall@20": np.ones(n)})
        return Row("sample", method, "3/3", {"test/recall@20": (0.1, 0.01)}, {}, [], None, None,
                   None, "", key="test/recall@20", units=units)

    shown = [row("pop", 1902), row("hum", 270), row("bprmf", 1902), row("old", None)]
    labels, part = bar_labels(shown)
    assert labels == ["pop", "hum (n=270)", "bprmf", "old"] and part == [False, True, False, False]
    assert bar_labels([row("pop", 5), row("ease", 5)])[1] == [False, False]
    (path,) = plot({"sample": shown}, tmp_path)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_a_cell_queued_again_after_a_commit_is_collected_from_its_newest_experiment():
    """`recpipe grid collect --commits N` reads `dvc exp show -n N`: the same cell name may sit
    under two commits (its first run, then a rerun on new code); the newest one counts,
    whichever commit `dvc exp show` lists first."""
    from recpipe.grid.collect import experiments

    def exp(name, when, recall):
        data = {"timestamp": when, "params": {"params.yaml": {"data": {"hum": {"center": "mean"}}}},
                "metrics": {"metrics/hum.json": {"data": {"test/recall@20": recall}}}}
        return {"name": name, "revs": [{"rev": f"r{recall}", "name": name, "data": data}]}

    old = {"rev": "c1", "experiments": [exp("sample-hum-s1", "2026-12-07T21:00:00", 0.02),
                                        exp("sample-pop-s1", "2026-12-07T20:00:00", 0.05)]}
    new = {"rev": "c2", "experiments": [exp("sample-hum-s1", "2026-12-08T03:00:00", 0.09)]}
    for show in ([{"rev": "workspace"}, new, old], [{"rev": "workspace"}, old, new]):
        got = experiments(show)
        assert got["sample-hum-s1"]["metrics"]["metrics/hum.json"]["test/recall@20"] == 0.09
        assert got["sample-hum-s1"]["rev"] == "r0.09" and got["sample-hum-s1"]["state"] == "success"
        assert got["sample-pop-s1"]["params"]["hum.center"] == "mean"  # only under the old commit
