"""The report's PNG figures: test metric vs K per protocol, and the training curves.

matplotlib is imported inside `_pyplot`, so importing the report (the stage, the tests) does
not pay for it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from recpipe.eval.report.curves import read_curves
from recpipe.eval.report.params import ReportParams
from recpipe.eval.report.runs import Run, _cell, group_runs
from recpipe.io import atomic_path


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
    tables = group_runs(runs, p.baseline_names())
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
