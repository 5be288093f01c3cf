"""Training curves for the report: dvclive TSVs read into (step, value) frames, labelled by run.

Two places hold them: `plots/<run>/plots/metrics/<name>.tsv` and, for the baselines, which
keep curves in their model folder, `models/<run>/curves/plots/metrics/<name>.tsv`.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recpipe.eval.output import CURVES


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
