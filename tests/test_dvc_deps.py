"""dvc.yaml's deps cover the code each stage runs (issue 13), checked statically in milliseconds.

`dvc repro` reruns a stage only when one of its `deps` changed, so a recpipe module that a
stage imports but does not list (say recpipe/config.py) can change the results while DVC
keeps the stale outputs. For every stage (foreach stages expanded per item) this test finds
the script in `cmd`, follows its recpipe imports transitively by reading the sources with
`ast` (nothing is imported: no torch, no polars) and asserts each module file lies under a
dep. It also asserts that every code dep (recpipe/..., stages/...) exists, so a moved module
does not leave a dep that silently covers nothing, and that every data path is written once:
in dvc.yaml's `vars: paths`, passed to the scripts, which have no default path.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path, PurePosixPath

import yaml

from conftest import ROOT, resolved_dvc_yaml

PACKAGE = "recpipe"
# registry entries ("recpipe.graph.lightgcn:LightGCN", see recpipe/registry.py) are imports
# done by importlib at run time, invisible to `import` statements
REGISTRY_ENTRY = re.compile(rf"^({PACKAGE}(?:\.\w+)+):\w+$")
CODE_DEPS = (f"{PACKAGE}/", "stages/")


def _module_file(name: str) -> Path | None:
    """The source file of module `name` (recpipe.a.b -> recpipe/a/b.py or .../b/__init__.py)."""
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _with_parents(name: str) -> list[str]:
    """Importing recpipe.a.b runs recpipe/__init__.py and recpipe/a/__init__.py first, so
    those are imported too: recpipe.a.b -> [recpipe, recpipe.a, recpipe.a.b]."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _runtime_nodes(tree: ast.AST):
    """ast.walk, minus the bodies of `if TYPE_CHECKING:` (imports for type annotations only)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))


def _imported_names(path: Path) -> set[str]:
    """Every module name `path` may import, wherever the import sits: module level, inside
    functions (this code base imports torch-heavy modules lazily) or as a registry string;
    not under `if TYPE_CHECKING:`, which never runs. Names outside recpipe included; for
    `from X import y` both X and X.y are returned, since y may be a submodule."""
    tree = ast.parse(path.read_text(), filename=str(path))
    # the package a relative import starts from: recpipe.a for recpipe/a/b.py and for
    # recpipe/a/__init__.py (stage scripts sit in no package and use no relative imports)
    rel = path.relative_to(ROOT).with_suffix("")
    package = list(rel.parts[:-1])
    names: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x, from ..a import x
                base = package[: len(package) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module
            names.add(stem)
            names.update(f"{stem}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if m := REGISTRY_ENTRY.match(node.value):
                names.add(m.group(1))
    return names


@lru_cache(maxsize=None)
def _direct_imports(path: Path) -> frozenset[Path]:
    """The recpipe module files `path` imports directly (parent packages included)."""
    files = set()
    for name in _imported_names(path):
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            for module in _with_parents(name):
                # `from recpipe.a import y` where y is a class, not a module: no file, skip
                if (file := _module_file(module)) is not None:
                    files.add(file)
    return frozenset(files)


def import_closure(script: Path) -> set[Path]:
    """Every recpipe module file `script` imports, transitively (depth-first over the files)."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for file in _direct_imports(todo.pop()):
            if file not in seen:
                seen.add(file)
                todo.append(file)
    return seen


def _stages() -> dict[str, dict]:
    """stage name -> {"cmd", "deps"}, interpolated, foreach stages expanded as DVC names them
    (baselines@pop)."""
    return {name: {"cmd": st["cmd"], "deps": [d.rstrip("/") for d in st.get("deps", [])]}
            for name, st in resolved_dvc_yaml()["stages"].items()}


STAGES = _stages()


def _covered(file: str, deps: list[str]) -> bool:
    """A dep covers a file when it is that file or a folder holding it."""
    return any(PurePosixPath(file).is_relative_to(dep) for dep in deps)


def test_every_stage_runs_a_script_under_stages():
    for name, st in STAGES.items():
        scripts = re.findall(r"\bstages/\w+\.py\b", st["cmd"])
        assert len(scripts) == 1 and (ROOT / scripts[0]).is_file(), (name, st["cmd"])


# modules every stage imports that cannot change an output: recpipe/resources.py prints the
# stage's wall time and peak memory to stderr at exit. As deps they would rerun the whole DAG
# on a change to a log line.
NOT_DEPS = {"recpipe/resources.py"}


def test_deps_cover_every_recpipe_module_each_stage_imports():
    missing = {}
    for name, st in STAGES.items():
        script = ROOT / re.search(r"\bstages/\w+\.py\b", st["cmd"]).group(0)
        needed = {script} | import_closure(script)
        files = sorted(f.relative_to(ROOT).as_posix() for f in needed
                       if f.relative_to(ROOT).as_posix() not in NOT_DEPS)
        if lacking := [f for f in files if not _covered(f, st["deps"])]:
            missing[name] = lacking
    assert not missing, "dvc.yaml deps miss modules the stage imports:\n" + "\n".join(
        f"  {name}: {', '.join(files)}" for name, files in missing.items())


def test_code_deps_exist():
    stale = {
        name: bad for name, st in STAGES.items()
        if (bad := [d for d in st["deps"] if d.startswith(CODE_DEPS) and not (ROOT / d).exists()])
    }
    assert not stale, "dvc.yaml deps name code that does not exist:\n" + "\n".join(
        f"  {name}: {', '.join(paths)}" for name, paths in stale.items())


def test_import_closure_follows_lazy_submodule_and_registry_imports():
    """The helper itself, on cases this code base relies on."""
    graph = {f.relative_to(ROOT).as_posix() for f in import_closure(ROOT / "stages/graph.py")}
    # `from recpipe.graph.run import fit` inside a function, and what run.py imports lazily
    assert {"recpipe/graph/run.py", "recpipe/train/loop.py"} <= graph
    # `from recpipe.train import checkpoint` (in loop.py): a submodule named in a from-import
    assert "recpipe/train/checkpoint.py" in graph
    # BACKBONES = {"lightgcn": "recpipe.graph.lightgcn:LightGCN", ...} loaded by registry.resolve
    assert {"recpipe/registry.py", "recpipe/graph/lightgcn.py"} <= graph
    # parent packages run first
    assert {"recpipe/__init__.py", "recpipe/graph/__init__.py"} <= graph
    # nothing outside recpipe (torch, numpy) and no class names mistaken for modules
    assert all(p.startswith("recpipe/") and p.endswith(".py") for p in graph)



def _path(entry) -> str:
    """A deps/outs/metrics/plots entry's path (`- path` or `- path: {options}`)."""
    return next(iter(entry)) if isinstance(entry, dict) else entry


def test_data_paths_are_written_once_in_vars():
    """Every data, model, metrics and plots path in dvc.yaml is a `${...}` (`paths` in `vars`,
    or a params.yaml key such as dataset.path); only code deps are literal."""
    raw = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert isinstance(raw["vars"][0]["paths"], dict)
    literal = []
    for name, st in raw["stages"].items():
        body = st.get("do", st)
        for entry in body.get("deps", []) + body.get("outs", []):
            if not _path(entry).startswith((*CODE_DEPS, "${")):
                literal.append(f"{name}: {_path(entry)}")
    literal += [_path(e) for e in raw["metrics"] + raw["plots"] if not _path(e).startswith("${")]
    assert not literal, literal


def _add_argument_calls(script: Path):
    """(flag, {keyword: literal value}) of each `ap.add_argument("--flag", ...)` in `script`."""
    for node in ast.walk(ast.parse(script.read_text(), filename=str(script))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            yield node.args[0].value, {k.arg: ast.literal_eval(k.value) for k in node.keywords
                                       if isinstance(k.value, ast.Constant)}


def test_scripts_take_their_paths_from_the_stage_command():
    """No script has a default path (only --params: params.yaml, and defaults derived from
    another argument, None here); each stage's cmd passes every required argument."""
    for name, st in STAGES.items():
        script = ROOT / re.search(r"\bstages/\w+\.py\b", st["cmd"]).group(0)
        for flag, kw in _add_argument_calls(script):
            if kw.get("required"):
                assert flag in st["cmd"].split(), (name, flag, st["cmd"])
            elif flag != "--params":
                assert not isinstance(kw.get("default"), str), (script.name, flag, kw["default"])


def test_every_stage_script_imports_its_own_checkouts_recpipe(tmp_path):
    """A queued `dvc exp run` runs each cell in a copy of the repo, and recpipe is installed
    editable from the original: a script that imported the installed package would run the
    original's current code, not the code DVC hashed for the cell. Each script started as
    dvc.yaml starts it (`python stages/<x>.py`) must import the recpipe beside it."""
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "stages", copy / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "recpipe", copy / "recpipe", ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "recpipe" / "__init__.py", "a") as f:
        f.write('\nraise SystemExit("imported the copy\'s recpipe")\n')
    scripts = sorted({re.findall(r"\bstages/\w+\.py\b", st["cmd"])[0] for st in STAGES.values()})
    assert len(scripts) >= 10
    for script in scripts:
        res = subprocess.run([sys.executable, script, "--help"], cwd=copy, capture_output=True,
                             text=True, timeout=120)
        assert "imported the copy's recpipe" in res.stderr, (script, res.stdout[-500:], res.stderr[-1500:])
