"""Writing evaluation results: a flat metrics JSON for `dvc metrics` and per-user Parquet.

`metrics/<method>.json` holds keys like `test/recall@20`, `valid/ndcg@20`,
`test/recall@20/Books`, plus the protocol (`preset`, `recall_denominator`, `ndcg_idcg`) so two
numbers are only compared when their protocols match. The per-user table (one row per unit and
part) lets two runs be compared user by user (`recpipe.eval.significance`).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recpipe.eval.evaluator import EvalResult
from recpipe.eval.protocol import EvalConfig
from recpipe.io import write_json, write_parquet


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
    """Write `metrics_path` (flat JSON) and, if given, `per_user_path` (Parquet).

    Several seeds of one method: `recpipe.eval.seeds.run_seeds` calls this once per seed and
    writes the mean ± std file on top.
    """
    m = metrics_dict(results, cfg, **extra)
    write_json(metrics_path, m)
    if per_user_path is not None:
        frames = [r.per_unit.with_columns(part=pl.lit(p)) for p, r in results.items()]
        write_parquet(per_user_path, pl.concat(frames, how="diagonal"))
    return m
