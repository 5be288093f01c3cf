"""The `report` stage's library: leaderboard tables, significance marks and PNG plots.

Inputs (paths relative to the project root):
- `metrics/*.json`: one file per method, either the declared headline (a few keys, as
  `recpipe.eval.output.write_headline` writes it) or a full flat file (`test/recall@20`,
  `test/recall@20/Books`, `preset`, ... plus `model` and `seed`). A headline
  `metrics/<stem>.json` (no protocol keys) stands for its full file, the single
  `models/**/<stem>/metrics.json` (`models/baselines/pop/metrics.json`,
  `models/graph/metrics.json`), which the report reads; a headline whose full file is missing
  is left out with a note. Files without any `test/` or `valid/` key (`dataset.json`,
  `profile.json`, `embed.json`) are not runs.
- Seeds, two conventions (mixable): (1) a stage that ran several seeds itself
  (`recpipe.eval.seeds`) writes a full file with the mean, `<key>_std` and a `per_seed` list
  of per-seed metrics files (`models/.../seed<k>/metrics.json`, each with its `seed` and
  `per_user`); the report reads those per-seed files as the runs. (2) One file per seed:
  further seeds of a model go to `metrics/<model>-seed<k>.json`, each a full flat file (e.g. a
  copy of another experiment's `models/baselines/<model>/metrics.json`). Runs are grouped by
  their `model` key (else the file stem without `-seed<k>`); `seed` comes from the key (else
  the `-seed<k>` suffix).
- Per-user tables: the file named by the run's `per_user` key (pass
  `per_user="models/.../per_user.parquet"` to `write_results`), else the single
  `models/**/<stem>/per_user.parquet` whose folder is the metrics file's stem.
- Training curves: dvclive TSVs, `plots/<run>/plots/metrics/<name>.tsv` (columns `step`,
  `<leaf of name>`), written by `Live("plots/<run>", dvcyaml=None, save_dvc_exp=False)`, and
  `models/<run>/curves/plots/metrics/<name>.tsv` (the baselines keep their curves in their
  model folder, so a model without a curve declares no empty plots folder); the run is
  labelled `<run>` either way.

Outputs: `reports/leaderboard.md`, `reports/metric_vs_k.png`, `reports/curves.png`.

Rules: runs are only compared inside one protocol (preset + recall denominator + NDCG IDCG +
validation masking), one table each. A cell is mean ± sample std over seeds. A `*` marks a cell
significantly better than the best baseline of that column (paired test on per-user values,
p < alpha), a `†` one significantly worse; with several seeds the per-user values are first
averaged over seeds, unit by unit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from recpipe.config import choice, rng
from recpipe.eval.output import CURVES, FULL_NAME
from recpipe.eval.significance import KEYS, PairedResult, fmt_mean_std, over_seeds, paired
from recpipe.io import atomic_path, read_json, write_text

NOT_RUNS = {"dataset.json", "ingest.json", "profile.json", "embed.json"}  # data stages
_SEED_SUFFIX = re.compile(r"^(?P<model>.+)-seed(?P<seed>\d+)$")
_PROTOCOL_KEYS = ("preset", "recall_denominator", "ndcg_idcg", "mask_valid_at_test")


@dataclass
class ReportParams:
    # test metrics in the leaderboard columns (names as in the per-user tables)
    metrics: list[str] = field(
        default_factory=lambda: ["recall@10", "recall@20", "ndcg@10", "ndcg@20"])
    # significance level of the paired test against the best baseline
    alpha: float = field(default=0.05, metadata=rng(0.0, 1.0, lo_open=True))
    # method names that count as baselines; the best present one is the reference per column
    baselines: list[str] = field(default_factory=lambda: ["pop", "itemknn", "ease", "bprmf"])
    # paired test behind the mark: ttest | wilcoxon
    test: str = field(default="ttest", metadata=choice("ttest", "wilcoxon"))


@dataclass
class Run:
    """One metrics file: one model, one seed."""

    model: str
    seed: int | None
    path: Path
    values: dict
    per_user: Path | None

    @property
    def protocol(self) -> tuple:
        return tuple(self.values.get(k) for k in _PROTOCOL_KEYS)


# ----------------------------------------------------------------------------- collection


def _find_per_user(root: Path, stem: str, values: dict) -> Path | None:
    if values.get("per_user"):
        p = root / values["per_user"]
        return p if p.exists() else None
    models = root / "models"
    found = models.rglob("per_user.parquet") if models.exists() else []
    hits = sorted(q for q in found if q.parent.name == stem)
    if len(hits) > 1:
        raise ValueError(f"report: several per-user tables for metrics/{stem}.json: {hits}; "
                         "name one with the run's `per_user` key")
    return hits[0] if hits else None


def _expand_seeds(root: Path, path: Path, values: dict) -> list[tuple[Path, dict]]:
    """A mean-over-seeds file -> its per-seed (path, values); any other file -> itself."""
    listed = values.get("per_seed")
    if not listed:
        if isinstance(values.get("seeds"), int) and values["seeds"] > 1:
            raise ValueError(f"report: {path} is a mean over {values['seeds']} seeds without a "
                             "`per_seed` list of their files; the report needs each seed's file")
        return [(path, values)]
    if not isinstance(listed, list):  # ValueError: the stage reports those, not a crash
        raise ValueError(f"report: {path}: `per_seed` must be a list of metrics files")  # noqa: TRY004
    out = []
    for rel in listed:
        p = root / rel
        if not p.exists():
            raise ValueError(f"report: {path} averages seeds whose file {p} is missing; "
                             "re-run the stage that wrote it (e.g. dvc repro baselines)")
        seed_values = read_json(p)
        seed_values.setdefault("model", values.get("model") or path.stem)
        out.append((p, seed_values))
    return out


def _full_file(path: Path, values: dict, index: list[Path]) -> Path | None:
    """The full metrics file behind `metrics/<stem>.json`: the file itself when it is full
    (has protocol keys), else the single `models/**/<stem>/metrics.json`; None when absent."""
    if any(k in values for k in _PROTOCOL_KEYS):
        return path
    hits = [q for q in index if q.parent.name == path.stem]
    if len(hits) > 1:
        raise ValueError(f"report: several full metrics files for {path}: "
                         f"{', '.join(map(str, hits))}; remove the stale one")
    return hits[0] if hits else None


def collect_runs(root: Path, skipped: list[str] | None = None) -> list[Run]:
    """Every method run under `root/metrics` (one per seed), sorted by file name.

    A headline file whose full file is missing is left out; `skipped` (if given) gets a line
    saying so.
    """
    runs, seen = [], {}
    models = root / "models"
    index = sorted(models.rglob(FULL_NAME)) if models.exists() else []
    for path in sorted((root / "metrics").glob("*.json")):
        values = read_json(path)
        if path.name in NOT_RUNS or not isinstance(values, dict):
            continue
        if not any(k.startswith(("test/", "valid/")) for k in values):
            continue
        full = _full_file(path, values, index)
        if full is None:
            if skipped is not None:
                skipped.append(f"{path.relative_to(root).as_posix()}: no full metrics file "
                               f"models/**/{path.stem}/{FULL_NAME}; left out (re-run its stage)")
            continue
        if full != path:
            values = read_json(full)
        m = _SEED_SUFFIX.match(path.stem)
        for src, vals in _expand_seeds(root, full, values):
            model = vals.get("model") or (m["model"] if m else path.stem)
            seed = vals.get("seed", int(m["seed"]) if m else None)
            run = Run(str(model), seed, src, vals, _find_per_user(root, path.stem, vals))
            key = (run.protocol, run.model, run.seed)
            if key in seen:
                raise ValueError(f"report: {seen[key]} and {src} both hold model {run.model!r} "
                                 f"seed {run.seed} under the same protocol; remove one")
            seen[key] = src
            runs.append(run)
    return runs


def group_runs(runs: list[Run], baselines: list[str]) -> dict[tuple, dict[str, list[Run]]]:
    """protocol -> model -> seeds; baselines first (in the configured order), then by name."""
    tables: dict[tuple, dict[str, list[Run]]] = {}
    for r in runs:
        tables.setdefault(r.protocol, {}).setdefault(r.model, []).append(r)
    order = {b: i for i, b in enumerate(baselines)}

    def rank(model: str):
        return (0, order[model], "") if model in order else (1, 0, model)

    ordered = sorted(tables.items(), key=lambda x: str(x[0]))
    return {p: {m: t[m] for m in sorted(t, key=rank)} for p, t in ordered}


# ----------------------------------------------------------------------------- per-user values


class _PerUser:
    """Per-user tables, read once; unit values of a method averaged over its seeds."""

    def __init__(self):
        self._cache: dict[Path, pl.DataFrame] = {}

    def _read(self, path: Path) -> pl.DataFrame:
        if path not in self._cache:
            self._cache[path] = pl.read_parquet(path)
        return self._cache[path]

    def units(self, seeds: list[Run], metric: str, part: str,
              domain: str | None) -> pl.DataFrame | None:
        """(uid, domain, part, metric) averaged over seeds; None when a table or column is missing.

        `domain=None` is the overall number: the "all" rows, or every row when a preset only has
        per-domain units (HUM). Raises ValueError when seeds were evaluated on different units.
        """
        frames = []
        for r in seeds:
            if r.per_user is None:
                return None
            df = self._read(r.per_user)
            if metric not in df.columns or "part" not in df.columns:
                return None
            df = df.filter(pl.col("part") == part)
            if domain is not None:
                df = df.filter(pl.col("domain") == domain)
            elif (df["domain"] == "all").any():
                df = df.filter(pl.col("domain") == "all")
            frames.append(df.select([*KEYS, pl.col(metric).cast(pl.Float64)]))
        n = frames[0].height
        avg = pl.concat(frames).group_by(list(KEYS)).agg(pl.col(metric).mean(),
                                                         pl.len().alias("_n"))
        same = all(f.height == n for f in frames) and avg.height == n
        if not same or (avg["_n"] != len(frames)).any():
            raise ValueError(f"seeds of {seeds[0].model!r} were evaluated on different units")
        return avg.drop("_n")


# ----------------------------------------------------------------------------- tables


def _cell(seeds: list[Run], key: str) -> tuple[float, float]:
    vals = [r.values[key] for r in seeds if isinstance(r.values.get(key), (int, float))]
    return over_seeds(vals) if vals else (math.nan, math.nan)


@dataclass
class _Column:
    key: str  # metrics-file key, e.g. "test/recall@20" or "test/recall@20/Books"
    metric: str  # per-user column, e.g. "recall@20"
    domain: str | None  # per-user domain filter; None = overall
    tested: bool = True  # False for averages of averages (macro), which have no per-user values


def _tests(methods: dict[str, list[Run]], col: _Column, p: ReportParams, pu: _PerUser,
           notes: list[str], n_boot: int) -> tuple[str | None, dict[str, PairedResult]]:
    """Best baseline of the column and each other method's paired result against it.

    `n_boot = 0` skips the bootstrap CI (the dominant cost) where no table shows it.
    """
    means = {m: _cell(s, col.key)[0] for m, s in methods.items()}
    base = [m for m in methods if m in p.baselines and not math.isnan(means[m])]
    if not base or not col.tested:
        return None, {}
    ref = max(base, key=lambda m: means[m])
    try:
        ref_units = pu.units(methods[ref], col.metric, "test", col.domain)
    except ValueError as e:
        notes.append(f"{col.key}: {e}; no marks")
        return ref, {}
    if ref_units is None:
        notes.append(f"{col.key}: no per-user values for baseline {ref!r}; no marks")
        return ref, {}
    out = {}
    for m, seeds in methods.items():
        if m == ref or math.isnan(means[m]):
            continue
        try:
            units = pu.units(seeds, col.metric, "test", col.domain)
            if units is None:
                notes.append(f"{col.key}: no per-user values for {m!r}; not tested")
                continue
            out[m] = paired(ref_units, units, col.metric, n_boot=n_boot)
        except ValueError as e:
            notes.append(f"{col.key}, {m!r}: {e}")
    return ref, out


def _table(methods: dict[str, list[Run]], cols: list[_Column], names: list[str], p: ReportParams,
           pu: _PerUser, notes: list[str], details: list[tuple] | None) -> list[str]:
    lines = ["| method | seeds | " + " | ".join(names) + " |",
             "|---|---:|" + "---:|" * len(names)]
    n_boot = 2000 if details is not None else 0
    tested = {c.key: _tests(methods, c, p, pu, notes, n_boot) for c in cols}
    for m, seeds in methods.items():
        cells = []
        for c in cols:
            mean, std = _cell(seeds, c.key)
            ref, res = tested[c.key]
            mark = ""
            if m in res and res[m].p(p.test) < p.alpha:
                mark = " *" if res[m].diff > 0 else " †"
            cells.append(fmt_mean_std(mean, std) + mark)
            if details is not None and m in res:
                details.append((m, c.key, ref, res[m]))
        lines.append(f"| {m} | {len(seeds)} | " + " | ".join(cells) + " |")
    refs = [f"{c.key.split('/', 1)[1]}: {tested[c.key][0]}"
            for c in cols if c.tested and tested[c.key][0]]
    lines.append("")
    lines.append("Reference baseline per column: " + ("; ".join(refs) if refs else
                                                      "none present (no significance marks)") + ".")
    return lines


def _protocol_title(proto: tuple) -> str:
    preset, rden, idcg, mvt = proto
    extra = []
    if rden is not None:
        extra.append(f"recall: {rden}")
    if idcg is not None:
        extra.append(f"NDCG IDCG: {idcg}")
    if mvt is not None:
        extra.append("validation items " + ("masked at test" if mvt else "stay candidates"))
    return f"Preset `{preset}`" + (f" ({', '.join(extra)})" if extra else "")


def _domains(methods: dict[str, list[Run]], metric: str) -> list[str]:
    pat = re.compile(rf"^test/{re.escape(metric)}/(.+)$")
    found = {m[1] for s in methods.values() for r in s for k in r.values if (m := pat.match(k))}
    return sorted(found - {"macro"}) + (["macro"] if "macro" in found else [])


def _no_targets(methods: dict[str, list[Run]]) -> list[str]:
    """A line per distinct `domains_without_targets` list (the evaluator's names of domains
    that had no test targets, so the macro average left them out), naming the methods unless
    every method of the table shares it."""
    groups: dict[tuple, list[str]] = {}
    for m, seeds in methods.items():
        doms: set[str] = set()
        for r in seeds:
            v = r.values.get("test/domains_without_targets")
            if isinstance(v, list):
                doms.update(map(str, v))
        if doms:
            groups.setdefault(tuple(sorted(doms)), []).append(m)
    return [f"Domains with no test targets (left out of the macro average)"
            f"{'' if len(ms) == len(methods) else ' for ' + ', '.join(ms)}: {', '.join(doms)}."
            for doms, ms in groups.items()]


def leaderboard(runs: list[Run], p: ReportParams, pu: _PerUser | None = None,
                skipped: list[str] | None = None) -> str:
    """The markdown leaderboard: one table per protocol, per-domain tables, paired-test details."""
    pu = pu or _PerUser()
    test_name = {"ttest": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}[p.test]
    out = ["# Leaderboard", "",
           f"Test metrics, mean ± sample std over seeds (one seed: the value). `*` / `†`: "
           f"significantly better / worse than the column's best baseline "
           f"({', '.join(p.baselines)}) on per-user values, {test_name}, p < {p.alpha} (no "
           f"multiple-comparison correction). Rows of different presets are never in one table.",
           ""]
    if skipped:
        out += ["Left out:", ""] + [f"- {s}" for s in skipped] + [""]
    if not runs:
        return "\n".join(out + ["No method metrics found in `metrics/`.", ""])
    for proto, methods in group_runs(runs, p.baselines).items():
        notes: list[str] = []
        details: list[tuple] = []
        out += [f"## {_protocol_title(proto)}", ""]
        cols = [_Column(f"test/{m}", m, None) for m in p.metrics]
        out += _table(methods, cols, p.metrics, p, pu, notes, details) + [""]
        if missing := _no_targets(methods):
            out += [*missing, ""]
        for metric in p.metrics:
            doms = _domains(methods, metric)
            if not doms:
                continue
            dcols = [_Column(f"test/{metric}/{d}", metric, d, tested=d != "macro") for d in doms]
            out += [f"### {metric} per domain", ""]
            names = [c.key.rsplit("/", 1)[1] for c in dcols]
            out += _table(methods, dcols, names, p, pu, notes, None)
            out += ["", "(`macro` is the unweighted mean of the domains; it is not tested.)", ""]
        if details:
            out += ["### Paired tests against the best baseline", "",
                    "| method | metric | baseline | units | difference | 95 % bootstrap CI "
                    "| t-test p | Wilcoxon p |",
                    "|---|---|---|---:|---:|---|---:|---:|"]
            for m, key, ref, r in details:
                out.append(f"| {m} | {key.split('/', 1)[1]} | {ref} | {r.n} | {r.diff:+.4f} | "
                           f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}] | {r.t_p:.3g} | "
                           f"{r.wilcoxon_p:.3g} |")
            out.append("")
        if notes:
            out += ["Notes:", ""] + [f"- {n}" for n in dict.fromkeys(notes)] + [""]
    return "\n".join(out)


# ----------------------------------------------------------------------------- plots


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # offline, no display
    import matplotlib.pyplot as plt

    return plt


def plot_metric_vs_k(runs: list[Run], p: ReportParams, path: Path) -> None:
    """One row per protocol, one panel per metric family: test metric vs K, error bars = std."""
    plt = _pyplot()
    families = list(dict.fromkeys(m.split("@")[0] for m in p.metrics))
    tables = group_runs(runs, p.baselines)
    rows = max(1, len(tables))
    fig, axes = plt.subplots(rows, len(families), figsize=(5.5 * len(families), 4 * rows),
                             squeeze=False)
    if not tables:
        axes[0][0].text(0.5, 0.5, "no method metrics found", ha="center", va="center")
    for row, (proto, methods) in enumerate(tables.items()):
        for col, fam in enumerate(families):
            ax = axes[row][col]
            ax.set_xscale("log")  # Ks are roughly geometric (5, 10, 20, 40, 100)
            pat = re.compile(rf"^test/{re.escape(fam)}@(\d+)$")
            all_ks: set[int] = set()
            for model, seeds in methods.items():
                ks = sorted({int(m[1]) for r in seeds for k in r.values if (m := pat.match(k))})
                if not ks:
                    continue
                all_ks.update(ks)
                stats = np.array([_cell(seeds, f"test/{fam}@{k}") for k in ks])
                err = np.nan_to_num(stats[:, 1]) if len(seeds) > 1 else None
                ax.errorbar(ks, stats[:, 0], yerr=err, marker="o", capsize=3,
                            label=f"{model} (n={len(seeds)})")
            if all_ks:
                ax.minorticks_off()
                ax.set_xticks(sorted(all_ks), [str(k) for k in sorted(all_ks)])
                ax.set_xlim(min(all_ks) / 1.25, max(all_ks) * 1.25)  # error bars widen autoscale
            ax.set_xlabel("K")
            ax.set_ylabel(f"test {fam}@K")
            ax.set_title(f"{fam}@K, preset {proto[0]}")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def read_curves(plots_dir: Path) -> dict[str, dict[str, pl.DataFrame]]:
    """metric name -> run label -> (step, value) frame, from dvclive TSVs under `plots_dir`."""
    curves: dict[str, dict[str, pl.DataFrame]] = {}
    if not plots_dir.exists():
        return curves
    for tsv in sorted(plots_dir.rglob("*.tsv")):
        parts = tsv.relative_to(plots_dir).with_suffix("").parts
        marks = [i for i in range(len(parts) - 1) if parts[i:i + 2] == ("plots", "metrics")]
        cut = marks[0] if marks else None
        if cut is None or cut + 2 >= len(parts):
            continue
        run, name = "/".join(parts[:cut]) or plots_dir.name, "/".join(parts[cut + 2:])
        df = pl.read_csv(tsv, separator="\t")
        value = [c for c in df.columns if c not in ("step", "timestamp")]
        if "step" not in df.columns or not value or df.height == 0:
            continue
        curves.setdefault(name, {})[run] = df.select("step", pl.col(value[-1]).alias("value"))
    return curves


def collect_curves(root: Path) -> dict[str, dict[str, pl.DataFrame]]:
    """`read_curves` of `root/plots` and of `root/models` (dvclive folders named `curves`
    inside model folders, labelled by the model folder: models/baselines/bprmf/curves ->
    `baselines/bprmf`, its seed k -> `baselines/bprmf/seed<k>`)."""
    curves = read_curves(root / "plots")
    for name, by_run in read_curves(root / "models").items():
        for run, df in by_run.items():
            parts = run.split("/")
            if parts[-1] != CURVES:
                continue  # a dvclive folder of another kind: not a model curve
            curves.setdefault(name, {})["/".join(parts[:-1])] = df
    return curves


def plot_curves(source: Path | dict, path: Path, max_panels: int = 9) -> int:
    """One panel per logged metric (validation first), one line per run; returns the panel count.

    `source`: a plots folder (`read_curves`) or curves already read (`collect_curves`).
    """
    plt = _pyplot()
    curves = source if isinstance(source, dict) else read_curves(source)
    plots_dir = "plots/ or models/*/curves/" if isinstance(source, dict) else source
    names = sorted(curves, key=lambda n: (not n.startswith("valid"), n))[:max_panels]
    n = max(1, len(names))
    cols = min(3, n)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3.6 * nrows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    if not names:
        axes[0][0].axis("on")
        axes[0][0].text(0.5, 0.5, f"no dvclive curves under {plots_dir}", ha="center", va="center")
    for ax, name in zip(axes.flat, names):
        for run, df in curves[name].items():
            ax.plot(df["step"].to_numpy(), df["value"].to_numpy(), marker=".", label=run)
        ax.set_title(name)
        ax.set_xlabel("step (dvclive)")
        ax.set_ylabel(name.rsplit("/", 1)[-1])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return len(names)


# ----------------------------------------------------------------------------- entry point


def build_report(root: Path, p: ReportParams, out_dir: Path | None = None) -> dict:
    """Read `root/metrics`, `root/models`, `root/plots`; write the three report files.

    The returned `skipped` lists the headline files left out (their full file is missing).
    """
    root = Path(root)
    out_dir = Path(out_dir) if out_dir is not None else root / "reports"
    skipped: list[str] = []
    runs = collect_runs(root, skipped)
    write_text(out_dir / "leaderboard.md", leaderboard(runs, p, skipped=skipped))
    plot_metric_vs_k(runs, p, out_dir / "metric_vs_k.png")
    panels = plot_curves(collect_curves(root), out_dir / "curves.png")
    return {"runs": len(runs), "models": len({(r.protocol, r.model) for r in runs}),
            "protocols": len({r.protocol for r in runs}), "curve_panels": panels,
            "skipped": len(skipped)}
