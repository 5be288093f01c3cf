"""Stage `report`: method metrics + per-user tables + dvclive curves -> <out>/.

Reads params: report. Reads, under --root (dvc.yaml: the repo's root), each declared
`metrics/<m>.json` (headline keys), which stands for its full file `models/**/<m>/metrics.json`
(every K, domain and part) that the tables and plots use; extra full files
`metrics/<m>-seed<k>.json` count as further seeds; curves from `plots/` and the model folders.
Writes <out>/leaderboard.md (one table per preset, mean ± std over seeds, `*` = paired test
against the best baseline), <out>/metric_vs_k.png and <out>/curves.png. Every path is a
required argument; dvc.yaml passes them (its `paths` vars). A stage that ran several
seeds (`<stage>.seeds`) counts as one row with n seeds, its per-seed per-user values averaged
before the test. Conventions (seeds, per-user files): recpipe/eval/report/__init__.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# this checkout's recpipe before any installed one: DVC runs a queued experiment in a copy
# of the repo, and the copy must import the code it hashed as a dependency
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recpipe.config import ParamError, load_params, section
from recpipe.eval.report import ReportParams, build_report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--root", required=True, help="folder holding metrics/, models/ and plots/")
    ap.add_argument("--out", required=True, help="folder for the leaderboard and plots")
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
    from recpipe.resources import report

    sys.exit(report("report", main))
