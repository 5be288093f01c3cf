"""Collect the grid's experiments into one leaderboard (reports/leaderboard_all.md and PNGs).

Input: `dvc exp show --json` (every experiment of the commit the grid was queued from, or of
the last N commits with `commits=N`, each cell's newest: its params, its metrics files and its
executor's log) and the planned cells (recpipe/grid/plan.py).
Each cell becomes one record:

- status: done | failed | queued | running | missing (planned, never queued) | n/a (reason);
- the method's full metrics (its `models/<method>/metrics.json`, read from the experiment
  through DVC's cache; the headline `metrics/<method>.json` when the cache lacks it);
- for a failed cell, its error line: the last line of its log that names the failure;
- wall time and peak memory: the `recpipe-resources:` lines its stages printed
  (recpipe/resources.py), summed (wall) and maxed (memory) over the stages the cell ran;
- its setup: the params that name its backbone or profile model.

Per (dataset, method) row: mean +- sample std over the seeds that finished, and two paired
t-tests against the best baseline of that dataset (the highest mean among `plan.BASELINES`):
over the seeds both finished, and over the users both scored, each user's value averaged over
the seeds (its per-user table, recpipe/grid/units.py). Nothing is retrained: collecting twice reads
the same experiments.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from recpipe.grid.plan import BASELINES, DATASETS, METHODS, Cell
from recpipe.grid.units import read_units, seed_mean, versus
from recpipe.resources import parse as parse_resources

# the log lines that name a failure, newest first wins; DVC's own summary line is the fallback
FAILURE = re.compile(r"(failed:|Error\b|error:|Exception\b|Killed|Traceback|MemoryError)")
DVC_SUMMARY = "ERROR: failed to reproduce"
MAX_DOMAINS = 4  # more domains than this: only their macro average and spread get columns


@dataclass
class Record:
    cell: Cell
    status: str  # done | failed | queued | running | missing | n/a
    metrics: dict = field(default_factory=dict)  # the method's headline keys
    error: str = ""
    wall_s: float | None = None
    peak_rss_mib: int | None = None
    peak_gpu_mib: int | None = None
    setup: str = ""
    units: object = None  # the per-user test table (polars), when the cache holds it


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(_flat(v, key) if isinstance(v, dict) else {key: v})
    return out


def experiments(show: list) -> dict[str, dict]:
    """{exp name: {state, params (flat), metrics {file: dict}, log}} from `dvc exp show --json`.
    A name found under several commits (a cell queued again after a code commit) keeps its
    newest experiment, by the experiment's timestamp."""
    out = {}
    for base in show:
        for exp in base.get("experiments") or []:
            revs = exp.get("revs") or [{}]
            rev = revs[0]
            data = rev.get("data") or {}
            ex = exp.get("executor") or {}
            state = ex.get("state") or ("failed" if rev.get("error") else "success")
            params = {}
            for file_params in (data.get("params") or {}).values():
                params.update(_flat(file_params.get("data") or {}))
            metrics = {path: m["data"] for path, m in (data.get("metrics") or {}).items()
                       if isinstance(m, dict) and "data" in m}
            name = exp.get("name") or rev.get("name")
            log = (ex.get("local") or {}).get("log")
            when = data.get("timestamp") or ""
            if name and (name not in out or when > out[name]["timestamp"]):
                out[name] = {"state": state, "params": params, "metrics": metrics, "log": log,
                             "rev": rev.get("rev"), "timestamp": when}
    return out


def error_line(log: str) -> str:
    """The line of a failed cell's log that says why: the last one naming a failure that is
    not DVC's own summary, else DVC's summary, else the last line."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip() and not ln.startswith("recpipe-resources:")]
    for ln in reversed(lines):
        if FAILURE.search(ln) and not ln.startswith(DVC_SUMMARY):
            return ln
    return next((ln for ln in reversed(lines) if ln.startswith(DVC_SUMMARY)), lines[-1] if lines else "")


def read_log(repo: Path, name: str, path: str | None) -> str:
    """The cell's log: the executor's file, else `dvc queue logs` (empty when neither has it)."""
    if path and Path(path).is_file():
        return Path(path).read_text(errors="replace")
    res = subprocess.run(["dvc", "queue", "logs", name], cwd=repo, capture_output=True, text=True, check=False)
    return res.stdout if res.returncode == 0 else ""


def read_full(repo: Path, rev: str | None, path: str) -> dict | None:
    """The experiment's full metrics file from DVC's cache, or None (gc'ed, never written)."""
    if not rev:
        return None
    import dvc.api

    try:
        return json.loads(dvc.api.read(path, repo=str(repo), rev=rev))
    except Exception:  # noqa: BLE001 - any miss falls back to the headline file
        return None


def setup_line(keys, params: dict) -> str:
    """`key=value, ...` of the setup params a cell ran with. The template profile backend
    writes profiles without a language model, so its `profile.model` is left out: naming a
    model that did not run would misreport the cell."""
    skip = {"profile.model"} if params.get("profile.backend") == "template" else set()
    return ", ".join(f"{k}={params[k]}" for k in keys if k in params and k not in skip)


def record(cell: Cell, exp: dict | None, log: str, full: dict | None = None) -> Record:
    if cell.na:
        return Record(cell, "n/a", error=cell.na)
    if exp is None:
        return Record(cell, "missing")
    state = {"success": "done"}.get(exp["state"], exp["state"])
    m = METHODS[cell.method]
    setup = setup_line(m.setup, exp["params"])
    rec = Record(cell, state if state in ("done", "failed", "running", "queued") else "failed",
                 metrics=full or exp["metrics"].get(m.metrics, {}), setup=setup)
    res = parse_resources(log)
    if res:
        rec.wall_s = round(sum(r["wall_s"] for r in res), 1)
        rec.peak_rss_mib = max(r["peak_rss_mib"] for r in res)
        rec.peak_gpu_mib = max(r["peak_gpu_mib"] for r in res)
    if rec.status == "done" and not rec.metrics:
        rec.status, rec.error = "failed", f"no {m.metrics} in the experiment"
    if rec.status == "failed" and not rec.error:
        rec.error = error_line(log) or "failed (no log kept)"
    return rec


def collect(repo: Path, cells: list[Cell], show: list | None = None,
            commits: int = 1) -> list[Record]:
    """One Record per planned cell. `show`: a parsed `dvc exp show --json` (else it is run,
    over the last `commits` commits)."""
    if show is None:
        res = subprocess.run(["dvc", "exp", "show", "--json", "-n", str(commits)], cwd=repo,
                             capture_output=True, text=True, check=True)
        show = json.loads(res.stdout)
    exps = experiments(show)
    out = []
    for c in cells:
        e = exps.get(c.name)
        log = read_log(repo, c.name, e["log"]) if e is not None and not c.na else ""
        full = (read_full(repo, e["rev"], METHODS[c.method].full)
                if e is not None and e["state"] == "success" and not c.na else None)
        rec = record(c, e, log, full)
        if rec.status == "done" and isinstance(full, dict) and full.get("per_user"):
            rec.units = read_units(repo, e["rev"], full["per_user"])
        out.append(rec)
    return out


# ---- aggregation ---------------------------------------------------------------------------

def primary_key(records: list[Record]) -> str | None:
    """The headline key of the dataset's finished cells: test recall at the headline K (20,
    or the nearest K the protocol has; `hr` without recall), as `metrics/<method>.json` has."""
    from recpipe.eval.output import headline

    for r in records:
        if r.status == "done" and (keys := [k for k in headline(r.metrics) if k.count("/") == 1
                                            and "@" in k and not k.endswith("_std")]):
            return keys[0]
    return None


def mean_std(xs: list[float]) -> tuple[float, float | None]:
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def paired_p(a: dict[int, float], b: dict[int, float]) -> float | None:
    """Two-sided paired t-test over the seeds both have (None below 2 or with equal pairs)."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    d = [a[s] - b[s] for s in seeds]
    m, sd = mean_std(d)
    if not sd:
        return None
    from scipy import stats

    return float(2 * stats.t.sf(abs(m / (sd / math.sqrt(len(d)))), len(d) - 1))


@dataclass
class Row:
    dataset: str
    method: str
    status: str  # "3/3" seeds done, or the reason none finished
    values: dict[str, tuple[float, float | None]]  # key -> (mean, std)
    by_seed: dict[int, float]  # primary metric per finished seed
    notes: list[str]  # failed / missing / queued seeds
    wall_s: float | None
    peak_rss_mib: int | None
    peak_gpu_mib: int | None
    setup: str
    p: float | None = None
    versus: str = ""
    key: str | None = None  # the dataset's headline key (primary_key)
    units: object = None  # per-user headline metric, averaged over the seeds (units.seed_mean)
    p_units: float | None = None  # paired t-test over the users both rows scored ...
    n_units: int = 0  # ... and how many they are


def rows(records: list[Record]) -> dict[str, list[Row]]:
    """{dataset: one Row per method, in plan order}."""
    out: dict[str, list[Row]] = {}
    groups: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        groups.setdefault((r.cell.dataset, r.cell.method), []).append(r)
    keys = {ds: primary_key([r for r in records if r.cell.dataset == ds])
            for ds in dict.fromkeys(r.cell.dataset for r in records)}
    for (ds, method), recs in groups.items():
        done = [r for r in recs if r.status == "done"]
        key = keys[ds]
        values = {}
        for k in sorted({k for r in done for k in r.metrics if k.startswith("test/") and not k.endswith("_std")}):
            xs = [float(r.metrics[k]) for r in done if isinstance(r.metrics.get(k), (int, float))]
            if xs:
                values[k] = mean_std(xs)
        groups_: dict[tuple[str, str], list[int]] = {}  # (status, error) -> seeds
        for r in recs:
            if r.status not in ("done", "n/a"):
                groups_.setdefault((r.status, r.error if r.status == "failed" else ""), []).append(r.cell.seed)
        notes = [f"seed{'s' if len(ss) > 1 else ''} {', '.join(map(str, ss))} {st}"
                 + (f": {err}" if err and done else "") for (st, err), ss in groups_.items()]
        if recs[0].status == "n/a":
            status = f"n/a: {recs[0].error}"
        elif done:
            status = f"{len(done)}/{len(recs)}"
        else:
            status = next((f"failed: {r.error}" for r in recs if r.status == "failed"),
                          recs[0].status)
        walls = [r.wall_s for r in done if r.wall_s is not None]
        out.setdefault(ds, []).append(Row(
            ds, method, status, values,
            {r.cell.seed: float(r.metrics[key]) for r in done if key and key in r.metrics},
            notes, round(sum(walls) / len(walls), 1) if walls else None,
            max((r.peak_rss_mib for r in done if r.peak_rss_mib is not None), default=None),
            max((r.peak_gpu_mib for r in done if r.peak_gpu_mib is not None), default=None),
            next((r.setup for r in done if r.setup), ""), key=key,
            units=seed_mean([r.units for r in done], key.split("/", 1)[1]) if key else None))
    for ds, rs in out.items():
        base = [r for r in rs if r.method in BASELINES and r.by_seed]
        if not base:
            continue
        best = max(base, key=lambda r: sum(r.by_seed.values()) / len(r.by_seed))
        for r in rs:
            if r is not best and r.by_seed:
                r.p, r.versus = paired_p(r.by_seed, best.by_seed), best.method
                if r.key:
                    r.p_units, r.n_units = versus(r.units, best.units, r.key.split("/", 1)[1])
    return out


# ---- output --------------------------------------------------------------------------------

def _fmt(v: tuple[float, float | None] | None) -> str:
    if v is None:
        return "–"
    m, s = v
    return f"{m:.4f}" if s is None else f"{m:.4f} ± {s:.4f}"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def tally(records: list[Record]) -> dict[str, str]:
    """{dataset: one line}: its cells by status, and the stage time its done cells took, summed
    over every method and seed (what the grid cost on this machine, without DVC's own time)."""
    out = {}
    for ds in dict.fromkeys(r.cell.dataset for r in records):
        recs = [r for r in records if r.cell.dataset == ds]
        counts = Counter(r.status for r in recs)
        heavy: dict[str, float] = {}  # method -> its done cells' stage seconds
        for r in recs:
            if r.status == "done" and r.wall_s is not None:
                heavy[r.cell.method] = heavy.get(r.cell.method, 0.0) + r.wall_s
        top = sorted(heavy.items(), key=lambda kv: -kv[1])[:3]
        line = (f"{len(recs)} cells: " + ", ".join(f"{n} {st}" for st, n in counts.items())
                + f". The done cells' stages ran {sum(heavy.values()) / 60:.1f} min in all")
        if top:
            line += " (most: " + ", ".join(f"{m} {t / 60:.1f}" for m, t in top) + ")"
        out[ds] = line + "."
    return out


def markdown(table: dict[str, list[Row]], n_exps: int, tallies: dict[str, str] | None = None) -> str:
    intro = (f"Collected by `recpipe grid collect` from {n_exps} experiment(s). Values are test "
             "metrics, mean ± sample std over the seeds that finished. Against the best baseline "
             "of the dataset (named in the column), `p seeds` is a two-sided paired t-test over "
             "seeds, and `p users` one over the users both scored (n), each user's value "
             "averaged over the seeds. Wall time is the mean over seeds of the stages each cell ran (stages "
             "DVC restored from its cache are not counted), peak memory the largest over them.")
    lines = ["# Leaderboard: every method on one split and one evaluator per dataset", "", intro, ""]
    for ds, rs in table.items():
        keys = {k for r in rs for k in r.values}
        key = next((r.key for r in rs if r.key), None)
        cols = []
        if key is not None:
            ndcg = "test/ndcg@" + key.split("@")[1]
            subs = sorted({k.split("/")[2] for k in keys if k.startswith(key + "/")} - {"macro", "spread"})
            cols = [key, *([ndcg] if ndcg in keys else []),
                    *(f"{key}/{d}" for d in (subs if len(subs) <= MAX_DOMAINS else [])),
                    *(f"{key}/{d}" for d in ("macro", "spread") if f"{key}/{d}" in keys)]
        lines += [f"## {ds}", "", DATASETS[ds].about + ".", ""]
        if tallies and ds in tallies:
            lines += [tallies[ds], ""]
        head = ["method", "seeds", *[k.removeprefix("test/") for k in cols], "p seeds",
                "p users (n)",
                "wall s", "peak RSS MiB", "peak GPU MiB", "setup", "notes"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rs:
            p = "–" if r.p is None else f"{_p(r.p)} ({r.versus})"
            pu = "–" if r.p_units is None else f"{_p(r.p_units)} ({r.n_units:,})"
            cells = [r.method, r.status, *[_fmt(r.values.get(k)) for k in cols], p, pu,
                     "–" if r.wall_s is None else f"{r.wall_s:.0f}",
                     "–" if r.peak_rss_mib is None else str(r.peak_rss_mib),
                     "–" if not r.peak_gpu_mib else str(r.peak_gpu_mib), r.setup or "–",
                     "; ".join(r.notes) or "–"]
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def bar_labels(shown: list[Row]) -> tuple[list[str], list[bool]]:
    """(label, whether the row scored a subsample) per row. A row scored on fewer units than
    the dataset's fullest row (an LLM stage's seeded user subsample on a CPU) names its count
    and is hatched: its mean is not over the same users as the full rows'."""
    n = [0 if r.units is None else r.units.height for r in shown]
    part = [0 < k < max(n, default=0) for k in n]
    return [f"{r.method} (n={k:,})" if sub else r.method
            for r, k, sub in zip(shown, n, part)], part


def plot(table: dict[str, list[Row]], out: Path) -> list[Path]:
    """One PNG per dataset: the primary metric per method, mean with std bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for ds, rs in table.items():
        key = next((r.key for r in rs if r.key), None)
        shown = [r for r in rs if key in r.values]
        if not shown:
            continue
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(shown) + 1.2))
        means = [r.values[key][0] for r in shown]
        errs = [r.values[key][1] or 0.0 for r in shown]
        labels, part = bar_labels(shown)
        bars = ax.barh(labels, means, xerr=errs, color="#4c72b0")
        for bar, sub in zip(bars, part):
            if sub:
                bar.set(facecolor="#c6d3ea", hatch="//", edgecolor="#4c72b0")
        ax.invert_yaxis()
        ax.set_xlabel(f"{key} (mean ± std over seeds)" + ("; hatched: a user subsample"
                                                         if any(part) else ""))
        ax.set_title(ds)
        fig.tight_layout()
        path = out / f"leaderboard_all_{ds}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def write(records: list[Record], out: Path) -> list[Path]:
    """reports/leaderboard_all.md, its PNGs and every cell as JSON (grid_cells.json)."""
    out.mkdir(parents=True, exist_ok=True)
    table = rows(records)
    n = sum(r.status not in ("missing", "n/a") for r in records)
    md = out / "leaderboard_all.md"
    md.write_text(markdown(table, n, tally(records)))
    cells = [{"name": r.cell.name, "dataset": r.cell.dataset, "method": r.cell.method,
              "seed": r.cell.seed, "status": r.status, "error": r.error, "metrics": r.metrics,
              "wall_s": r.wall_s, "peak_rss_mib": r.peak_rss_mib, "peak_gpu_mib": r.peak_gpu_mib,
              "setup": r.setup, "units": None if r.units is None else r.units.height}
             for r in records]
    (out / "grid_cells.json").write_text(json.dumps(cells, indent=1) + "\n")
    return [md, out / "grid_cells.json", *plot(table, out)]
