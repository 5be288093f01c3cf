"""Stage `report`: method metrics + per-user tables + dvclive curves -> reports/.

Reads params: report. Each declared `metrics/<m>.json` (headline keys) stands for its full
file `models/**/<m>/metrics.json` (every K, domain and part), which the tables and plots use;
extra full files `metrics/<m>-seed<k>.json` count as further seeds. Writes
reports/leaderboard.md (one table per preset, mean ± std over seeds, `*` = paired test against
the best baseline), reports/metric_vs_k.png and reports/curves.png. A stage that ran several
seeds (`<stage>.seeds`) counts as one row with n seeds, its per-seed per-user values averaged
before the test. Conventions (seeds, per-user files): recpipe/eval/report/__init__.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recpipe.config import ParamError, load_params, section
from recpipe.eval.report import ReportParams, build_report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--root", default=".", help="folder holding metrics/, models/ and plots/")
    ap.add_argument("--out", default="reports")
    args = ap.parse_args(argv)
    try:
        cfg = section(load_params(args.params), "report", ReportParams)
        info = build_report(Path(args.root), cfg, Path(args.out))
    except (ParamError, ValueError) as e:
        print(f"report failed: {e}", file=sys.stderr)
        return 2
    print(f"report: {info['runs']} runs of {info['models']} methods in {info['protocols']} "
          f"preset table(s), {info['curve_panels']} curve panel(s) -> {args.out}/")
    if info["skipped"]:
        print(f"report: {info['skipped']} metrics file(s) without their full metrics file left "
              f"out; the leaderboard lists them", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
