"""The report stage's entry point: read the runs and curves, write the three report files."""

from __future__ import annotations

from pathlib import Path

from recpipe.eval.report.curves import collect_curves
from recpipe.eval.report.leaderboard import leaderboard
from recpipe.eval.report.params import ReportParams
from recpipe.eval.report.plots import plot_curves, plot_metric_vs_k
from recpipe.eval.report.runs import collect_runs
from recpipe.io import write_text


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
