"""The `report` stage's library: leaderboard tables, significance marks and PNG plots.

One file a concept: `params` (the params section), `runs` (finding the runs), `per_user`
(per-user values, seeds averaged), `marks` (paired tests against the best baseline), `table`
(one markdown table), `leaderboard` (the markdown document), `curves` (dvclive TSVs), `plots`
(the PNGs) and `build` (`build_report`, the entry point). This file re-exports their public
names, so `from recpipe.eval.report import ...` stays the one import.

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

from recpipe.eval.report.build import build_report
from recpipe.eval.report.curves import collect_curves, read_curves
from recpipe.eval.report.leaderboard import leaderboard
from recpipe.eval.report.params import ReportParams
from recpipe.eval.report.plots import plot_curves, plot_metric_vs_k
from recpipe.eval.report.runs import NOT_RUNS, Run, collect_runs, group_runs

__all__ = [
    "NOT_RUNS",
    "ReportParams",
    "Run",
    "build_report",
    "collect_curves",
    "collect_runs",
    "group_runs",
    "leaderboard",
    "plot_curves",
    "plot_metric_vs_k",
    "read_curves",
]
