"""Every command the README shows, run in a fresh temporary git + DVC repo (issue 12 section 1).

The README's ```bash blocks are parsed; each command must match exactly one rule in RULES,
which either runs it (at small scale, with the README's placeholder paths mapped to the real
data in ../shared/data) or excuses it with a reason. A command added to the README without a
rule fails `test_every_readme_command_has_a_rule`, so the README cannot drift from what runs.

Small scale means: the embedded sample shrunk, 1 of the six backbones in the 18-cell queue, 2 training epochs (MMHCL: 3 steps; SASRec: at most 10;
HeLLM: 2 steps of tiny-llama on 10 users), short LLM completions, and
`-S` flags appended for real data that is too large (`split.sample_users`; on the RLMRec
release only the pop and BPR-MF baselines) or too small for
the default 5-core (the Yelp sample); nothing else of a command changes, except that hosts it
cannot reach here become local stand-ins: smollm2-135m profiling becomes the random tiny-llama
(the real model runs in tests/test_profiling.py), and api.openai.com and localhost:8000 a real
local OpenAI-compatible server (tests/llm_server.py). A model-hub command is excused: mapped
to a local model it would repeat the smollm2 command's run.
Each `dvc exp run` / `dvc repro` line starts from the committed default state, as a reader
trying one example after another from a fresh clone would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SHARED
from llm_server import FakeLLMServer

README = ROOT / "README.md"
SMALL = {
    "sample": {"n_users": 150, "n_items": 120, "reviews_per_user_mean": 10.0},
    "graph.train": {"epochs": 2, "eval_every": 1},
    "baselines.bprmf.train": {"epochs": 2, "eval_every": 1},
    # 10 steps: the RLMRec release's 11,000 users make 86 a epoch (33 s in CI for 2 epochs)
    "sasrec.train": {"epochs": 2, "eval_every": 1, "max_steps": 10},
    # MMHCL's all-node InfoNCE is O(users^2) a step (~2.5 s on the RLMRec release's 11k users):
    # 3 steps, not 2 epochs of 118
    "mmhcl.train": {"epochs": 2, "eval_every": 1, "max_steps": 3},
    # the LLM stage on the random tiny-llama (smollm2-135m runs in tests/test_hellm.py)
    "hellm": {"model": "tiny-llama", "users": 10, "eval_users": 10},
    "hellm.train": {"epochs": 1, "eval_every": 1, "max_steps": 2},
    # CLLM4Rec on the random tiny-gpt2 (smollm2-135m runs in tests/test_cllm4rec.py)
    "cllm4rec": {"model": "tiny-gpt2", "users": 10, "eval_users": 10},
    "cllm4rec.pretrain.train": {"max_steps": 2},
    "cllm4rec.finetune.train": {"max_steps": 2},
    # HUM on the random tiny-qwen2 (its stage and resume run in tests/test_hum.py)
    "hum": {"model": "tiny-qwen2", "train_samples": 16, "eval_users": 10},
    "hum.train": {"epochs": 1, "max_steps": 2},
    "profile": {"max_new_tokens": 24, "max_retries": 0},
}
# README placeholder -> folder under ../shared/data (and scale flags appended for that data)
DATA = {
    "/data/amazon18/Beauty": ("amazon2018_gift_cards", ""),
    # 11,000 x 9,332: a seeded tenth of the users (the whole DAG on all of them took 225 s of CI;
    # tests/test_split.py and test_baselines.py run the whole release), and no ItemKNN or EASE
    # (~40 s, nothing the default run does not test)
    "/data/rlmrec/amazon": ("rlmrec/amazon", " -S baselines.models=[pop,bprmf] -S split.sample_users=0.1"),
    "<folder with trn_mat.pkl ...>": ("rlmrec/amazon", " -S baselines.models=[pop,bprmf] -S split.sample_users=0.1"),
    "/data/s3rec": ("s3rec_seq", " -S split.sample_users=0.3"),
    # a 999-review sample: no user has 5 reviews, so the default 5-core would leave nothing
    "/data/yelp": ("yelp_raw_sample", " -S split.user_core=0 -S split.item_core=0"),
    # Amazon 2023, 23 categories (177 users, 1,625 reviews): HUM's cross-domain protocol
    "/data/amazon23": ("amazon2023_multicat_sample", ""),
    # 9,577 users of Arts + Office: a seeded 1 % of them (each evaluation encodes every item)
    "/data/cdsr": ("cdsr_arts_office", " -S split.sample_users=0.01"),
}


def readme_commands(text: str) -> list[str]:
    """Shell commands of the ```bash blocks: continuations joined, comments dropped."""
    out, block = [], None
    for line in text.splitlines():
        if line.startswith("```"):
            block = [] if line.strip() == "```bash" and block is None else None
            continue
        if block is None:
            continue
        line = re.sub(r"\s+#\s.*$", "", line).rstrip()  # trailing "# comment"
        if not line or line.lstrip().startswith("#"):
            continue
        if out and out[-1].endswith("\\"):
            out[-1] = out[-1][:-1].rstrip() + " " + line.strip()
        else:
            out.append(line.strip())
    return out


@dataclass
class Rule:
    pattern: str  # regex matched against the whole command
    why: str = ""  # set: excused, with this reason; empty: run
    needs_shared: bool = False
    needs_server: bool = False
    queue: int = 0  # experiments the command queues (then waits for them)
    check: object = None  # called with (repo, result) after the command ran: what it promises


def grid_plan_lists_cells(res) -> None:
    """README "The leaderboard grid": the CPU grid's cells, each a command or an n/a reason."""
    assert "sample-hum-s1" in res.stdout and "giftcards-hum-s3" in res.stdout
    assert re.search(r"giftcards-hum-s1 +n/a: (a single domain|data absent)", res.stdout)
    assert re.search(r"sample-lightgcn-con-s2 +graph -S graph.model=lightgcn", res.stdout)


def grid_collect_writes(repo: Path) -> None:
    """Collecting with nothing queued yet: every cell missing or n/a, the table still written."""
    md = (repo / "reports" / "leaderboard_all.md").read_text()
    assert "## sample" in md and "## giftcards" in md and "| hum | missing |" in md
    cells = json.loads((repo / "reports" / "grid_cells.json").read_text())
    assert len(cells) == 2 * 3 * 27 and {c["status"] for c in cells} <= {"missing", "n/a", "done", "failed"}
    for f in (repo / "reports").glob("leaderboard_all*"):  # not part of the DAG's outputs
        f.unlink()
    (repo / "reports" / "grid_cells.json").unlink()


def ids_only_release_runs_every_stage(repo: Path, res) -> None:
    """README "Your own data": the RLMRec release (ids only) runs every stage. profile and embed
    write empty outputs marked skipped, graph trains its plain backbone, MMHCL has no item
    hypergraph, and HeLLM and the leaderboard still get their rows."""
    skipped = "skipped: no text"
    for name in ("ingest", "split", "profile", "embed", "baselines@pop", "baselines@bprmf",
                 "graph", "sasrec", "mmhcl", "hellm", "cllm4rec_pretrain", "cllm4rec_finetune",
                 "report"):  # run, or restored from DVC's run cache (test_pipeline_dvc ingested it)
        assert f"Running stage '{name}'" in res.stdout or f"Stage '{name}' is cached" in res.stdout, name
    assert "is empty" not in res.stdout + res.stderr  # every declared output holds something
    declared = {name: json.loads((repo / "metrics" / f"{name}.json").read_text())
                for name in ("dataset", "profile", "embed", "pop", "bprmf", "graph", "hellm",
                             "cllm4rec")}
    assert declared["dataset"]["users"] == 1_100  # a tenth of the release's 11,000 (DATA)
    assert declared["profile"]["status"] == declared["embed"]["status"] == skipped
    assert (repo / "data" / "embeddings" / "cache").is_dir()
    assert not list((repo / "models" / "embeddings").glob("*.npy"))
    for name in ("pop", "bprmf", "graph", "hellm", "cllm4rec"):
        assert 0 <= declared[name]["test/recall@20"] <= 1
    # no review text and no item titles: the collaborative LM runs alone, and says so
    cllm = json.loads((repo / "models" / "cllm4rec" / "metrics.json").read_text())
    assert cllm["text_source"] == skipped and not cllm["content_lm"]
    board = (repo / "reports" / "leaderboard.md").read_text()
    for row in ("| pop | 1 |", "| bprmf | 1 |", "| lightgcn-none | 1 |", "| mmhcl[none] | 1 |",
                "| hellm | 1 |", "| cllm4rec-col | 1 |"):
        assert row in board, row


def hum_runs_on_amazon2023_categories(repo: Path, res) -> None:
    """README "Your own data": the categories are domains, split by time (the `hum` preset),
    and HUM is scored per held-out interaction, per domain with macro and spread."""
    split = json.loads((repo / "data" / "processed" / "metrics.json").read_text())
    assert split["split/temporal_by"] == "time" and split["ts_kind"] == "time"
    m = json.loads((repo / "models" / "hum" / "metrics.json").read_text())
    assert m["preset"] == "hum" and 0 <= m["test/recall@10"] <= 1
    assert "test/recall@10/macro" in m and "test/ndcg@10/spread" in m
    assert len([k for k in m if k.startswith("test/recall@10/")]) > 5  # several domains


def hum_runs_on_a_cross_domain_release(repo: Path, res) -> None:
    """The cdsr release has positions, not times: the temporal split goes per user, and HUM is
    scored in both domains (each user's last position holds one target per domain)."""
    split = json.loads((repo / "data" / "processed" / "metrics.json").read_text())
    assert split["split/temporal_by"] == "position" and split["ts_kind"] == "position"
    m = json.loads((repo / "models" / "hum" / "metrics.json").read_text())
    assert {"test/recall@10/A", "test/recall@10/O"} <= set(m) and m["preset"] == "hum"
    assert "Running stage 'graph'" not in res.stdout  # only what `hum` needs


RULES = [
    # CI time (20 min in all, 2 cores): commands whose every stage and path another README
    # command or a test runs are excused, each saying which one does
    Rule(r"dvc exp run \$\(recpipe preset rlmrec-release\) -S dataset\.path=<folder with trn_mat\.pkl \.\.\.> .*",
         why="the release command of 'Your own data' runs the same files through every stage "
             "and checks each output; the preset's flags are tests/test_graph_overrides.py's, graph "
             "parity mode is tests/test_graph_presets_official.py's"),
    Rule(r"dvc exp run -S dataset\.format=amazon2018 -S dataset\.path=/data/amazon18/Beauty",
         why="tests/test_pipeline_dvc.py ingests and splits the same folder through DVC, and "
             "every later stage runs on the embedded sample, which is amazon2018 too"),
    Rule(r"dvc exp run -S dataset\.format=seqtxt -S dataset\.path=/data/s3rec -S ingest\.categories=\[Beauty\] "
         r"-S split\.protocol=loo -S graph\.align=none",
         why="the HeLLM stage-1 command runs the same S3Rec Beauty file through every stage "
             "under leave-one-out (its preset)"),
    Rule(r"dvc exp run -S profile\.backend=openai -S profile\.openai\.base_url=\S+ -S profile\.openai\.api_key_env=\"\"",
         why="the hosted-API command above runs the same client through the same stages "
             "against the same local server; a keyless server is tests/test_profile_openai.py's"),
    Rule(r"dvc exp run -S profile\.backend=hf -S profile\.model=smollm2-135m .*",
         why="the hf backend with smollm2-135m is tests/test_profiling.py's; the openai command "
             "runs the profile stage and everything after it through DVC"),
    Rule(r"dvc exp run -S graph\.train\.time_budget_s=600 .*",
         why="plain -S flags on the train caps, which tests/test_train_loop.py checks; the "
             "stages run in the other commands"),
    Rule(r"dvc exp run -S 'graph\.seeds=\[2023,2024,2025\]'",
         why="tests/test_seeds.py runs a stage over several seeds through the seed runner the "
             "graph stage uses (run_seeds) and checks the mean and _std files"),
    Rule(r"dvc exp run cllm4rec_finetune -S cllm4rec\.mode=parity",
         why="tests/test_cllm4rec.py checks parity's quirks; `dvc repro` runs both CLLM4Rec "
             "stages, and the HUM commands run a single stage with `dvc exp run <stage>`"),
    Rule(r"dvc exp run -S hellm\.mode=parity -S hellm\.report_best_test_epoch=true",
         why="tests/test_hellm.py checks parity's quirks; `dvc repro` runs the stage"),
    Rule(r"OPENAI_API_KEY=\.\.\. dvc exp run -S profile\.backend=openai .*",
         why="tests/test_profile_openai.py runs the openai backend against a real local server "
             "(keys, retries, cache); `dvc repro` runs the profile stage and all after it"),
    Rule(r"dvc exp run -S graph\.model=sgl -S graph\.align=gen",
         why="tests/test_graph_sgl_simgcl.py trains SGL; the queue command runs alignments"),
    Rule(r"dvc exp run cllm4rec_finetune -S cllm4rec\.pretrain\.content=false",
         why="the ids-only release command trains the collaborative LM alone through both "
             "CLLM4Rec stages (checked: cllm4rec-col); the switch is tests/test_cllm4rec.py's"),
    Rule(r"python3 -m venv .*", why=".ci/run makes this venv before running pytest"),
    Rule(r"pip install -r requirements.txt && pip install --no-deps -r requirements-nodeps.txt",
         why=".ci/run runs this exact install before pytest"),
    Rule(r"pytest", why="it is the command running this test"),
    Rule(r"open reports/\*\.png", why="`open` is a desktop viewer; test_default_outputs checks the PNGs"),
    Rule(r"python benchmarks/rlmrec_grid\.py .*"),
    Rule(r"python benchmarks/bench_gpu\.py",
         why="needs a GPU (none in CI); the CPU command beside it runs the same script"),
    Rule(r"python benchmarks/bench_gpu\.py --device cpu .* --out reports/gpu_cpu\.md",
         why="CI time (20 min cap): a benchmark, run by hand; each stage's fit it calls is "
             "run by that stage's own tests (tests/test_hellm.py, test_hum.py, test_cllm4rec.py, "
             "test_graph_*.py, test_eval*.py)"),
    Rule(r"dvc exp run --queue -S 'graph\.align=none,con,gen' && dvc queue start -j 2",
         why="CI time (21.7 min with it): test_pipeline_dvc runs graph.align=gen as an "
             "experiment; the queue adds only DVC's own scheduling of the same runs"),
    # one backbone of the six: the queue works the same for 3 cells as for 18 (~150 s less);
    # every backbone x alignment trains in the rlmrec_grid command of the same README block
    Rule(r"dvc exp run --queue -S 'graph\.model=[a-z,]+' -S 'graph\.align=none,con,gen' && dvc queue start -j 2",
         why="CI time (21.7 min with it): every backbone x alignment trains in the rlmrec_grid "
             "command of the same block; test_pipeline_dvc runs a graph experiment", queue=3),
    Rule(r"dvc exp run -S dataset\.format=rlmrec -S dataset\.path=/data/rlmrec/amazon "
         r"-S split\.protocol=rlmrec -S graph\.align=none", needs_shared=True,
         check=ids_only_release_runs_every_stage),
    Rule(r"dvc exp run hum -S hum\.domain_weights=false",
         why="tests/test_hum.py runs the stage without domain weights (the ablation row's "
             "metrics); the cdsr command runs `dvc exp run hum` through DVC"),
    Rule(r"dvc exp run hum -S hum\.mode=parity",
         why="tests/test_hum.py checks parity's false negatives and weights; the ablation "
             "command beside it runs the hum stage through DVC"),
    Rule(r"dvc exp run \$\(recpipe preset hum\) -S dataset\.format=amazon2023 -S dataset\.path=\S+",
         why="the command above runs ingest, split and hum on the same folder under the preset; "
             "every other stage is in `dvc repro`, and tests/test_hum.py scores the baselines' "
             "stage on HUM's per-interaction samples (evaluate is the same for every model)"),
    Rule(r"dvc exp run hum \$\(recpipe preset hum\) -S dataset\.format=amazon2023 -S dataset\.path=\S+",
         needs_shared=True, check=hum_runs_on_amazon2023_categories),
    Rule(r"dvc exp run hum \$\(recpipe preset hum\) -S dataset\.format=cdsr -S dataset\.path=\S+",
         why="CI time: tests/test_reader_cdsr.py runs the ingest and split stages on the "
             "release's layout (per-user position split), tests/test_hum.py the hum stage, and "
             "the Amazon 2023 command `dvc exp run hum` through DVC on real data",
         needs_shared=True, check=hum_runs_on_a_cross_domain_release),
    Rule(r"dvc exp run \$\(recpipe preset hellm\) -S dataset\.format=seqtxt -S dataset\.path=/data/s3rec "
         r"-S ingest\.categories=\[Beauty\] .*",
         why="CI time (20 min cap; 178 s): its stages run on the same Beauty file in their own "
             "tests: the LOO split (tests/test_reader_seqtxt.py), profile and embed without text "
             "(test_textless.py), MMHCL on attributes (test_mmhcl_stage.py), SASRec "
             "(test_sasrec.py) and HeLLM (test_hellm.py); the ids-only release command runs "
             "every stage through DVC, and the HUM command expands a `$(recpipe preset ...)`",
         needs_shared=True),
    Rule(r"dvc exp run .*-S dataset\.path=\S+.*", needs_shared=True),
    Rule(r"dvc exp run \$\(recpipe preset rlmrec-release\) -S dataset\.path=<folder with trn_mat\.pkl \.\.\.> .*",
         needs_shared=True),
    Rule(r"(OPENAI_API_KEY=\.\.\. )?dvc exp run -S profile\.backend=openai .*", needs_server=True),
    Rule(r"dvc exp run -S profile\.backend=hf -S profile\.model=Qwen/Qwen2\.5-7B-Instruct",
         why="no model hub here: mapped to a local model it is the same hf-backend run as the "
             "smollm2-135m command, which runs (tiny-llama in CI; smollm2 in test_profiling)"),
    Rule(r"dvc exp run hum -S hum\.processes=2",
         why="CI time (20 min cap): tests/test_stage_launch.py starts the hum stage exactly as "
             "DVC does, `python stages/hum.py ...` with processes 2, and checks it against one "
             "process; the Amazon 2023 HUM command runs `dvc exp run hum` through DVC"),
    Rule(r"dvc (repro|exp run|metrics|plots|exp show|queue)\b.*"),
    Rule(r"cat reports/leaderboard\.md"),
    Rule(r"recpipe preset"),
    Rule(r"recpipe grid plan", check=lambda repo, res: grid_plan_lists_cells(res)),
    Rule(r"recpipe grid queue && dvc queue start -j 2",
         why="the CPU grid runs for hours; tests/test_grid.py queues a 4-cell grid with "
             "`recpipe grid queue` in this repo, runs it with `dvc queue start` and collects it "
             "(a failed, a missing and an n/a cell)"),
    Rule(r"recpipe grid collect", check=lambda repo, res: grid_collect_writes(repo)),
    Rule(r"recpipe params"),
    Rule(r"recpipe launch -n 2 examples/ddp_lm\.py /tmp/ddp 1"),
    Rule(r"python examples/ddp_lm\.py /tmp/one 2"),
]


def rule_for(cmd: str) -> list[Rule]:
    return [r for r in RULES if re.fullmatch(r.pattern, cmd)]


def first_rule(cmd: str) -> Rule:
    return rule_for(cmd)[0]


COMMANDS = readme_commands(README.read_text())


def test_readme_parser_joins_continuations_and_drops_comments():
    text = "x\n```bash\na -S x \\\n  -S y   # why\n# only a comment\nb\n```\n```\nnot bash\n```\n"
    assert readme_commands(text) == ["a -S x -S y", "b"]


def test_every_readme_command_has_a_rule():
    assert len(COMMANDS) > 20
    missing = [c for c in COMMANDS if not rule_for(c)]
    assert not missing, f"README commands without a rule in {__file__}: {missing}"


# ------------------------------------------------------------------------------ the repo

def env(extra: dict | None = None) -> dict:
    e = dict(os.environ)
    e["PATH"] = str(Path(sys.executable).parent) + os.pathsep + e.get("PATH", "")
    e.update(DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t.invalid",
             GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t.invalid", COLUMNS="160")
    e.update(extra or {})
    return e


def sh(repo: Path, cmd: str, extra_env: dict | None = None, check: bool = True, timeout: int = 900):
    # output through files, not pipes: `dvc queue start` leaves workers that inherit the pipes,
    # and reading a pipe to its end would wait for them to exit
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        # the repo's own recpipe/, not the editable install of the checkout running the tests
        code = subprocess.run(["bash", "-c", cmd], cwd=repo, env=env({"PYTHONPATH": str(repo), **(extra_env or {})}), stdout=out,
                              stderr=err, text=True, timeout=timeout).returncode
        out.seek(0)
        err.seek(0)
        res = subprocess.CompletedProcess(cmd, code, out.read(), err.read())
    if check and res.returncode != 0:
        raise AssertionError(f"`{cmd}` failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res


def build_repo(repo: Path) -> subprocess.CompletedProcess:
    """What a clean checkout has (tracked files, plus new ones not ignored) in a new git + DVC
    repo at `repo`, at SMALL scale, after `dvc repro` (whose result is returned) and a commit.
    One such repo serves this module and tests/test_pipeline_dvc.py (conftest's `dag_repo`)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout
    for name in files.decode().split("\0"):
        src = ROOT / name
        if name and src.is_file() and not name.startswith((".dvc/", "tests/")):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for dotted, values in SMALL.items():
        node = params
        for key in dotted.split("."):
            node = node[key]
        node.update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for f in ("dvc.lock",):  # the committed lock is for full scale: this repo makes its own
        (repo / f).unlink(missing_ok=True)
    sh(repo, "git init -q && dvc init -q && git add -A && git commit -qm init")
    res = sh(repo, "dvc repro", {"TQDM_DISABLE": "1"})
    sh(repo, "git add -A && git commit -qm repro")
    return res


@pytest.fixture(scope="module")
def repo(dag_repo):
    reset(dag_repo[0])  # whatever tests/test_pipeline_dvc.py left in the workspace
    return dag_repo[0]


def stop_workers(repo: Path) -> None:
    """End the queue's workers (only at the end: a `dvc queue stop` sent while no worker runs
    stays in the broker and shuts down the next `dvc queue start`'s workers on arrival)."""
    import signal

    sh(repo, "dvc queue stop", check=False)
    for pid_file in (repo / ".dvc" / "tmp" / "exps" / "celery").glob("*.pid"):
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        except (ValueError, ProcessLookupError, PermissionError):
            pass


def reset(repo: Path) -> None:
    """Back to the committed default state (params, lock and outputs from the cache)."""
    sh(repo, "git reset -q --hard && dvc checkout -q --force")


def queue_counts(repo: Path) -> tuple[str, int, int]:
    status = sh(repo, "dvc queue status").stdout
    return status, status.count("Success"), status.count("Failed")


def wait_for_queue(repo: Path, n: int, before: tuple[int, int]) -> None:
    """Until nothing is queued or running; then exactly `n` more successes and no new failure."""
    deadline = time.time() + 1200
    while time.time() < deadline:
        status, ok, failed = queue_counts(repo)
        if not any(s in status for s in ("Queued", "Running")):
            break
        time.sleep(3)
    if (ok - before[0], failed - before[1]) != (n, 0):
        failed = [line.split()[0] for line in status.splitlines() if "Failed" in line]
        logs = sh(repo, f"dvc queue logs {failed[0]}", check=False) if failed else None
        raise AssertionError(status + ("" if logs is None else logs.stdout[-3000:] + logs.stderr[-3000:]))


def check_queued_experiments(repo: Path, cmd: str) -> None:
    """Every combination the command's `-S 'key=a,b'` grid names is an experiment whose params
    say so and whose metrics/graph.json holds a test Recall@20 (`dvc exp show` compares them)."""
    import itertools

    grid = {k: v.split(",") for k, v in re.findall(r"-S '([\w.]+)=([\w,.]+)'", cmd)}
    rows = json.loads(sh(repo, "dvc exp show --json").stdout)
    seen = set()
    for commit in rows:
        for exp in commit.get("experiments") or []:
            if exp["revs"][0].get("error"):  # another test's failed experiment (test_grid.py)
                continue
            data = exp["revs"][0]["data"]
            params = data["params"]["params.yaml"]["data"]
            got = data["metrics"]["metrics/graph.json"]["data"]
            assert 0 <= got["test/recall@20"] <= 1
            values = []
            for key in grid:
                node = params
                for part in key.split("."):
                    node = node[part]
                values.append(str(node))
            seen.add(tuple(values))
    want = set(itertools.product(*grid.values()))
    assert want <= seen, f"queued {sorted(want - seen)} missing from dvc exp show"


def localise(cmd: str, server: FakeLLMServer | None) -> tuple[str, dict]:
    """The README command as it runs here: real data paths, a local model and server."""
    extra = {}
    for placeholder, (folder, scale) in DATA.items():
        if placeholder in cmd:
            cmd = cmd.replace(placeholder, str(SHARED / folder)) + scale
    if "graph.model=lightgcn,gccf,sgl,simgcl,dccf,autocf" in cmd:  # its rule says why
        cmd = cmd.replace("graph.model=lightgcn,gccf,sgl,simgcl,dccf,autocf", "graph.model=lightgcn")
    if "profile.model=smollm2-135m" in cmd:
        # the real model writes ~1 profile/s on 2 cores: the small sample's 270 profiles would
        # add minutes to CI. The same backend runs smollm2 in tests/test_profiling.py, and the
        # full run is measured in the README
        cmd = cmd.replace("smollm2-135m", "tiny-llama").replace("max_new_tokens=128",
                                                                "max_new_tokens=24")
    if cmd.startswith("python benchmarks/rlmrec_grid.py"):  # 2 cores, maybe no GPU: 3 epochs, 2 jobs
        import torch

        if not torch.cuda.is_available():
            cmd = cmd.replace("--device cuda", "--device cpu")
        cmd = cmd.replace("--jobs 12", "--jobs 2") + " --epochs 3 --out reports/rlmrec_grid_readme.md"
    if server is not None:
        if cmd.startswith("OPENAI_API_KEY=..."):
            cmd = cmd.replace("OPENAI_API_KEY=... ", "")
            extra["OPENAI_API_KEY"] = "sk-test-readme"
        if "base_url=" in cmd:
            cmd = cmd.replace("http://127.0.0.1:8000/v1", server.base_url)
        else:  # the hosted API is not reachable here: the same client against a local server
            cmd += f" -S profile.openai.base_url={server.base_url}"
    return cmd, extra


RUNNABLE = [c for c in COMMANDS if rule_for(c) and not first_rule(c).why]


@pytest.mark.parametrize("cmd", RUNNABLE)
def test_readme_command_runs(repo, cmd):
    rule = first_rule(cmd)
    if rule.needs_shared and not SHARED.exists():
        pytest.skip(f"real data not available: {SHARED} is missing (needs ../shared/data beside the repo)")
    if cmd.startswith(("dvc exp run", "dvc repro", "OPENAI_API_KEY")):
        reset(repo)
    before = queue_counts(repo)[1:] if rule.queue else None
    if rule.needs_server:
        with FakeLLMServer() as server:
            local, extra = localise(cmd, server)
            res = sh(repo, local, extra)
        assert server.log, "the profile stage never reached the server"
    else:
        local, extra = localise(cmd, None)
        res = sh(repo, local, extra)
    if rule.queue:
        wait_for_queue(repo, rule.queue, before)
        check_queued_experiments(repo, local)
    assert "Traceback" not in res.stdout + res.stderr, res.stdout[-3000:] + res.stderr[-3000:]
    if rule.check:
        rule.check(repo, res)


def test_default_outputs(repo):
    """What the README's Run section promises after `dvc repro`."""
    reset(repo)
    for png in ("metric_vs_k.png", "curves.png"):
        assert (repo / "reports" / png).read_bytes()[:4] == b"\x89PNG"
    board = (repo / "reports" / "leaderboard.md").read_text()
    assert "lightgcn-con" in board
    shown = sh(repo, "dvc metrics show").stdout
    assert max(map(len, shown.splitlines())) <= 160, shown
    json.loads(sh(repo, "dvc metrics show --json").stdout)


def test_ci_runs_the_readme_install_line():
    """The README's one install line is what .ci/run does (quietly), part for part."""
    (line,) = [c for c in COMMANDS if c.startswith("pip install")]
    ci = (ROOT / ".ci" / "run").read_text()
    for part in line.split(" && "):
        assert part.replace("pip install", "pip install -q") in ci, part
