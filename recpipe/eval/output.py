"""Writing evaluation results: two metrics files per method, and per-user Parquet.

Every stage keeps one convention (README "Metrics"):

- the **full** flat JSON sits inside the stage's own output folder, as `metrics.json`
  (`models/baselines/<m>/metrics.json`, `models/graph/metrics.json`, per seed
  `<folder>/seed<k>/metrics.json`): keys like `test/recall@20`, `valid/ndcg@20`,
  `test/recall@20/Books`, plus the protocol (`preset`, `recall_denominator`, `ndcg_idcg`,
  `mask_valid_at_test`) so two numbers are only compared when their protocols match. The
  report (`recpipe.eval.report`) reads these files.
- the **headline** `metrics/<method>.json`, declared under `metrics:` in dvc.yaml, holds only
  what one compares across experiments (`headline`): test recall and NDCG at K=20, the
  selected epoch, and with several seeds their `_std` and the seed count. `dvc metrics show`
  then stays one readable table.

The per-user table (one row per unit and part) lets two runs be compared user by user
(`recpipe.eval.significance`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from recpipe.io import write_json

if TYPE_CHECKING:
    from recpipe.eval.evaluator import EvalResult
    from recpipe.eval.protocol import EvalConfig

FULL_NAME = "metrics.json"  # the full flat file inside a stage's output folder
HEADLINE_K = 20  # the cut-off whose test metrics are declared (nearest K when a preset lacks it)
HEADLINE_METRICS = ("recall", "ndcg")  # `hr` stands in when a preset has no recall
STD = "_std"  # suffix of a key's sample std over seeds (recpipe.eval.seeds)
CURVES = "curves"  # a model folder's dvclive directory (models/<run>/curves/), read by the report
_OVERALL = re.compile(r"^test/(?P<m>[a-z_]+)@(?P<k>\d+)$")


def headline(full: dict) -> dict:
    """The few keys of a full method metrics dict that `metrics/<method>.json` declares.

    `test/recall@20` and `test/ndcg@20` (a preset without K=20: the nearest K; without recall:
    `hr`), each with its `_std` when several seeds ran, `selected_epoch` (trained models) and
    `seeds` (several seeds). Everything else stays in the full file.
    """
    ks: dict[str, list[int]] = {}
    for key in full:
        if (m := _OVERALL.match(key)) and isinstance(full[key], (int, float)):
            ks.setdefault(m["m"], []).append(int(m["k"]))
    names = [n for n in HEADLINE_METRICS if n in ks] or (["hr"] if "hr" in ks else [])
    out: dict = {}
    for name in names:
        k = min(ks[name], key=lambda x: (abs(x - HEADLINE_K), x))
        for key in (f"test/{name}@{k}", f"test/{name}@{k}{STD}"):
            if key in full:
                out[key] = full[key]
    for key in ("selected_epoch", "selected_epoch" + STD, "seeds"):
        if isinstance(full.get(key), (int, float)) and not isinstance(full.get(key), bool):
            out[key] = full[key]
    return out


def metrics_dict(results: dict[str, EvalResult], cfg: EvalConfig, **extra) -> dict:
    out: dict = {
        "preset": cfg.preset,
        "recall_denominator": cfg.recall_denominator,
        "ndcg_idcg": cfg.ndcg_idcg,
        "mask_valid_at_test": cfg.mask_valid_at_test,
    }
    out.update(extra)
    for part, res in results.items():
        out.update({k: round(v, 6) if isinstance(v, float) else v for k, v in res.prefixed(part).items()})
    return out


def write_results(results: dict[str, EvalResult], cfg: EvalConfig, metrics_path: str | Path,
                  per_user_path: str | Path | None = None, **extra) -> dict:
    """Write the full flat JSON `metrics_path` and, if given, `per_user_path` (Parquet).

    A stage calls this through `recpipe.eval.seeds.run_seeds`, which puts the full file in the
    stage's output folder and writes the headline `metrics/<method>.json` (`write_headline`).
    """
    import polars as pl

    from recpipe.io import write_parquet

    m = metrics_dict(results, cfg, **extra)
    write_json(metrics_path, m)
    if per_user_path is not None:
        frames = [r.per_unit.with_columns(part=pl.lit(p)) for p, r in results.items()]
        write_parquet(per_user_path, pl.concat(frames, how="diagonal"))
    return m


def write_headline(headline_path: str | Path, full: dict) -> dict:
    """Write `headline(full)` to the declared `metrics/<method>.json`; return it."""
    h = headline(full)
    write_json(headline_path, h)
    return h
