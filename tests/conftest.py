"""Shared test fixtures.

Real data lives in ../shared/data beside the repo (developers and CI); on a user's machine
it is absent and the tests that need it skip with a message saying so. Override the location
with RECPIPE_SHARED_DATA.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RECPIPE_SHARED_DATA", ROOT.parent / "shared" / "data"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"

if str(ROOT) not in sys.path:  # `stages` (the scripts as a package) next to recpipe
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture(scope="session")
def dag_repo(tmp_path_factory):
    """(repo, result of its `dvc repro`): the project in a fresh git + DVC repo at small scale,
    reproduced once and committed (tests/test_readme_commands.py builds it); the README and
    pipeline tests share it, each resetting it to the committed state when they change it.

    Under pytest-xdist the first worker to ask builds it once, beside the workers' own temp
    folders and under a file lock, and each worker then works in its own copy (a git + DVC repo
    copies whole: paths inside are relative, DVC's state is kept per repo path). Building it
    twice, on 2 cores at once, cost CI ~150 s."""
    from test_readme_commands import build_repo, stop_workers

    repo = tmp_path_factory.mktemp("dag")
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        res = build_repo(repo)
    else:
        built, res = _built_once(tmp_path_factory.getbasetemp().parent, build_repo)
        shutil.copytree(built, repo, symlinks=True, dirs_exist_ok=True)
    yield repo, res
    stop_workers(repo)


def _built_once(root: Path, build) -> tuple[Path, subprocess.CompletedProcess]:
    """(folder, result of build(folder)) for folder root / "dag-built", built once for this
    pytest run's workers (`root` is their shared parent)."""
    import json

    from filelock import FileLock

    built, record = root / "dag-built", root / "dag-built.json"
    with FileLock(str(root / "dag-built.lock")):
        if not record.exists():
            built.mkdir()
            res = build(built)
            record.write_text(json.dumps({"returncode": res.returncode, "stdout": res.stdout,
                                          "stderr": res.stderr}))
        r = json.loads(record.read_text())
    return built, subprocess.CompletedProcess("dvc repro", r["returncode"], r["stdout"], r["stderr"])


def shared_path(*parts: str) -> Path:
    """Path inside the shared data folder; skips the calling test when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available: {p} is missing (needs ../shared/data beside the repo)")
    return p


def stage(name: str):
    """stages/<name>.py as a module: tests call its `main(argv)` and use its dataclasses."""
    return importlib.import_module(f"stages.{name}")


_REF = r"\$\{\s*([\w.]+)\s*\}"


def resolved_dvc_yaml() -> dict:
    """dvc.yaml as DVC resolves it, for the static checks (no DVC import): every `${...}`
    interpolated from params.yaml and dvc.yaml's inline `vars` (`${item}`: the foreach item) and
    each foreach stage expanded under DVC's names (baselines@pop); in cmd, deps, outs and the
    top-level sections alike. tests/test_pipeline_dvc.py runs the real thing."""
    raw = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    context = yaml.safe_load((ROOT / "params.yaml").read_text())
    for entry in raw.get("vars", []):
        assert isinstance(entry, dict), f"vars: {entry!r}: only inline mappings are resolved here"
        context.update(entry)

    def lookup(ref: str, item):
        if ref == "item":
            return item
        value = context
        for part in ref.split("."):
            value = value[part]
        return value

    def resolve(node, item=None):
        if isinstance(node, str):
            if whole := re.fullmatch(_REF, node):  # the value itself (a list for foreach)
                return lookup(whole.group(1), item)
            return re.sub(_REF, lambda m: str(lookup(m.group(1), item)), node)
        if isinstance(node, list):
            return [resolve(v, item) for v in node]
        if isinstance(node, dict):
            return {resolve(k, item): resolve(v, item) for k, v in node.items()}
        return node

    stages = {}
    for name, st in raw["stages"].items():
        if "foreach" in st:
            items = resolve(st["foreach"])
            assert isinstance(items, list), f"{name}: foreach over a list only in this helper"
            stages.update({f"{name}@{item}": resolve(st["do"], item) for item in items})
        else:
            stages[name] = resolve(st)
    top = {key: resolve(value) for key, value in raw.items() if key not in ("vars", "stages")}
    return {**top, "stages": stages}


@pytest.fixture
def shared():
    return shared_path


@pytest.fixture(scope="session")
def small_processed(tmp_path_factory):
    """A small real processed split folder: synthetic generator -> amazon2018 reader -> split.

    200 users x 150 items (data/processed layout); `small_split` is it loaded.
    """
    from recpipe.config import parse
    from recpipe.data.ingest import ingest
    from recpipe.data.processed import build
    from recpipe.data.sample import SampleConfig, generate
    from recpipe.params import DatasetParams, IngestParams, SplitParams

    d = tmp_path_factory.mktemp("small_split")
    generate(SampleConfig(n_users=200, n_items=150, reviews_per_user_mean=10.0, seed=3), d / "raw")
    ingest(DatasetParams(path=str(d / "raw")), IngestParams(), d / "interim")
    build(d / "interim", d / "processed", parse(SplitParams, {}, prefix="split"), 3)
    return d / "processed"


@pytest.fixture(scope="session")
def rlmrec_processed(tmp_path_factory):
    """RLMRec's Amazon-book release (11,000 users x 9,332 items), ingested and kept as split
    (`split.protocol: rlmrec`): a data/processed folder, built once per test session."""
    from recpipe.config import parse
    from recpipe.data.ingest import ingest
    from recpipe.data.processed import build
    from recpipe.params import DatasetParams, IngestParams, SplitParams

    src = shared_path("rlmrec", "amazon")
    root = tmp_path_factory.mktemp("rlmrec_amazon")
    ingest(DatasetParams(format="rlmrec", path=str(src)), IngestParams(), root / "interim")
    build(root / "interim", root / "processed", parse(SplitParams, {"protocol": "rlmrec"}, prefix="split"), 2023)
    return root / "processed"


@pytest.fixture(scope="session")
def small_split(small_processed):
    """The small real split as the evaluator and the graph backbones see it (SplitData)."""
    from recpipe.eval.data import load_split

    return load_split(small_processed)


def md_tables(md: str) -> list[dict[str, list[str]]]:
    """Each markdown table as {header: ..., row name: cells} in order of appearance."""
    tables, cur = [], None
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cur is None:
                cur = {"header": cells}
                tables.append(cur)
            elif not set(line) <= set("|-: "):
                cur[cells[0]] = cells
        else:
            cur = None
    return tables


@pytest.fixture
def one_torch_thread():
    """torch on 1 CPU thread for the test, then the caller's count again. Tiny models are
    latency-bound: on a busy 2-core runner, 2 threads spin-wait against each other (measured
    7x slower), and 1 thread makes float sums repeatable."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
