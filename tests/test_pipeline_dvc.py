"""The real DVC pipeline in a temporary git repo: `dvc repro`, `dvc exp run -S`, metrics.

The repo is conftest's `dag_repo`, shared with tests/test_readme_commands.py (which builds
it): a clean checkout's files in a fresh git + DVC repo, the sample shrunk and training short
(that module's SMALL), reproduced once. Stage commands call `python`, so the interpreter
running the tests is put first on PATH, and the repo itself on PYTHONPATH (the stages then
run the copied recpipe/, not an installed one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_path


def sh(repo: Path, *cmd: str, check: bool = True, **env_extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(repo) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(
        DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t.invalid",
        GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t.invalid", TQDM_DISABLE="1",
        **env_extra,
    )
    res = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


@pytest.fixture(scope="module")
def repo(dag_repo):
    """The shared small-scale repo (conftest `dag_repo`: reproduced and committed), back at
    its committed state afterwards for the README tests."""
    yield dag_repo[0]
    sh(dag_repo[0], "dvc", "exp", "remove", "--all-commits")
    sh(dag_repo[0], "git", "reset", "-q", "--hard")
    sh(dag_repo[0], "dvc", "checkout", "-q", "--force")


def metrics(repo: Path) -> dict:
    """The split's full statistics (metrics/dataset.json declares only a few of them)."""
    return json.loads((repo / "data" / "processed" / "metrics.json").read_text())


FULL = {"pop": "models/baselines/pop", "itemknn": "models/baselines/itemknn",
        "ease": "models/baselines/ease", "bprmf": "models/baselines/bprmf", "graph": "models/graph",
        "sasrec": "models/sasrec", "mmhcl": "models/mmhcl", "hellm": "models/hellm",
        "cllm4rec": "models/cllm4rec"}


def test_repro_runs_the_dag_on_the_embedded_sample(repo, dag_repo):
    res = dag_repo[1]  # the fixture's `dvc repro`
    for stage in ("sample", "ingest", "split", "profile", "embed", "baselines@pop",
                  "baselines@bprmf", "graph", "sasrec", "mmhcl", "hellm", "cllm4rec_pretrain",
                  "cllm4rec_finetune", "report"):
        assert f"Running stage '{stage}'" in res.stdout
    # every declared output is written: no "'plots/baselines/pop' is empty." (issue 12, 7a)
    assert "is empty" not in res.stdout + res.stderr
    m = metrics(repo)
    assert m["users"] == 150 and m["items"] == 120 and m["protocol"] == "random"
    assert m["train"] + m["valid"] + m["test"] == m["interactions"] > 1000
    assert {"domain/Books/train", "domain/Video_Games/test", "rejects"} <= set(m)
    head = json.loads((repo / "metrics" / "dataset.json").read_text())
    assert head == {k: m[k] for k in ("users", "items", "train", "valid", "test")}
    for method, folder in FULL.items():
        got = json.loads((repo / folder / "metrics.json").read_text())
        assert got["preset"] == "unified" and 0 <= got["test/recall@20"] <= 1
        assert {"valid/ndcg@20", "test/recall@5", "test/recall@20/Books"} <= set(got)
        declared = json.loads((repo / "metrics" / f"{method}.json").read_text())
        assert declared == {k: got[k] for k in declared}
        assert {"test/recall@20", "test/ndcg@20"} <= set(declared) <= {
            "test/recall@20", "test/ndcg@20", "selected_epoch"}
        assert json.loads((repo / folder / "hparams.json").read_text())["seeds"] == [2023]
    ingest = json.loads((repo / "data" / "interim" / "metrics.json").read_text())
    assert ingest["interactions"] >= m["interactions"] and ingest["format"] == "amazon2018"
    board = (repo / "reports" / "leaderboard.md").read_text()
    assert "| lightgcn-con | 1 |" in board and "| itemknn | 1 |" in board
    assert "| cllm4rec | 1 |" in board
    assert "### ndcg@20 per domain" in board  # the report reads the full files
    assert (repo / "reports" / "metric_vs_k.png").read_bytes()[:4] == b"\x89PNG"
    shown = json.loads(sh(repo, "dvc", "metrics", "show", "--json").stdout)
    assert any("metrics/dataset.json" in json.dumps(v) for v in shown.values())
    # one readable table (issue 12, 6): the headline keys only, within 160 columns
    table = sh(repo, "dvc", "metrics", "show", COLUMNS="160").stdout
    assert "test/recall@20" in table and "test/recall@5" not in table and "valid/" not in table
    assert max(len(line) for line in table.splitlines()) <= 160, table
    again = sh(repo, "dvc", "repro")  # the fixture committed the first run
    assert "Running stage" not in again.stdout  # everything cached


def test_metrics_diff_shows_the_headline_that_changed(repo):
    sh(repo, "dvc", "exp", "run", "-S", "graph.align=gen")
    diff = json.loads(sh(repo, "dvc", "metrics", "diff", "--json").stdout)
    assert set(diff) == {"metrics/graph.json"}  # only the graph stage reran
    assert {"test/recall@20", "test/ndcg@20"} <= set(diff["metrics/graph.json"])
    got = diff["metrics/graph.json"]["test/recall@20"]
    assert got["new"] != got["old"] and got["diff"] == pytest.approx(got["new"] - got["old"])
    table = sh(repo, "dvc", "metrics", "diff", COLUMNS="160").stdout
    assert "test/recall@20" in table and "test/recall@5" not in table
    assert max(len(line) for line in table.splitlines()) <= 160, table
    board = (repo / "reports" / "leaderboard.md").read_text()
    assert "| lightgcn-gen | 1 |" in board
    # back to the committed embedded-sample run: later experiments start from its params
    sh(repo, "dvc", "exp", "remove", "--all-commits")
    sh(repo, "git", "reset", "-q", "--hard")
    sh(repo, "dvc", "checkout", "-q", "--force")


def test_exp_run_changes_the_split_protocol(repo):
    # `split` as target: only the data stages rerun (the method stages are tested above)
    sh(repo, "dvc", "exp", "run", "split", "-S", "split.protocol=loo")
    m = metrics(repo)
    assert m["protocol"] == "loo" and m["test"] == m["users"] == 150
    diff = sh(repo, "dvc", "metrics", "diff", "--json").stdout
    assert "metrics/dataset.json" in diff


def test_exp_run_ingests_real_amazon2018(repo):
    folder = shared_path("amazon2018_gift_cards")
    sh(repo, "dvc", "exp", "run", "split", "-S", "dataset.format=amazon2018", "-S", f"dataset.path={folder}")
    m = metrics(repo)
    assert (m["users"], m["items"]) == (453, 147)  # Gift Cards after dedupe + 5-core
    ingest = json.loads((repo / "data" / "interim" / "metrics.json").read_text())
    assert ingest["interactions"] == 2972 and ingest["format"] == "amazon2018"


def test_exp_run_imports_the_rlmrec_release(repo):
    folder = shared_path("rlmrec", "amazon")
    sh(repo, "dvc", "exp", "run", "split", "-S", "dataset.format=rlmrec", "-S", f"dataset.path={folder}",
       "-S", "split.protocol=rlmrec")
    m = metrics(repo)
    assert (m["users"], m["items"], m["train"], m["valid"], m["test"]) == (
        11_000, 9_332, 120_464, 40_290, 40_106)


def test_bad_param_stops_the_stage_with_a_clear_message(repo):
    res = sh(repo, "dvc", "exp", "run", "split", "-S", "split.protocol=bogus", check=False)
    assert res.returncode != 0
    assert "split.protocol: 'bogus' is not allowed" in res.stdout + res.stderr
