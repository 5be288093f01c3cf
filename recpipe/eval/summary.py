"""From ranked lists to metrics: per-unit values (`unit_metrics`) and per-domain summaries.

`evaluate` (per user) and `evaluate_samples` (per sample) share these, so a metric and its
key mean the same thing on both paths.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recpipe.eval.metrics import per_unit
from recpipe.eval.protocol import EvalConfig


def domain_summary(df: pl.DataFrame, metric_cols: list[str], domains: list[str]) -> dict:
    """Per-domain means of the units of `df` ("metric/<domain>"), their macro average, their
    spread (max - min over domains: HUM's robustness claim, the "domain seesaw"), and the
    domains that have no unit (named: they cannot enter the macro average or the spread)."""
    per = df.group_by("domain").agg([pl.col(m).mean() for m in metric_cols]).sort("domain")
    out = {}
    for row in per.iter_rows(named=True):
        out.update({f"{m}/{row['domain']}": float(row[m]) for m in metric_cols})
    out.update({f"{m}/macro": float(per[m].mean()) for m in metric_cols})
    out.update({f"{m}/spread": float(per[m].max() - per[m].min()) for m in metric_cols})
    seen = set(per["domain"].to_list())
    missing = [d for d in domains if d not in seen]
    out["domains_without_targets"] = missing
    out["domains_without_targets_count"] = len(missing)
    return out


def unit_metrics(idx: np.ndarray, ok: np.ndarray, targets, cfg: EvalConfig) -> dict:
    """{"recall@K": (units,), ...} of ranked lists `idx` (units, K_max) against `targets`."""
    hits = _hits(idx, ok, targets)
    return _rename(per_unit(hits, np.diff(targets.indptr), cfg.ks, cfg.ndcg_idcg), cfg)


def _hits(idx: np.ndarray, ok: np.ndarray, targets) -> np.ndarray:
    """hits[u, r] = item ranked r+1 for unit u is one of its targets (vectorised isin)."""
    n_items = targets.shape[1]
    unit = np.repeat(np.arange(targets.shape[0], dtype=np.int64), np.diff(targets.indptr))
    target_keys = unit * n_items + targets.indices.astype(np.int64)
    ranked_keys = np.arange(idx.shape[0], dtype=np.int64)[:, None] * n_items + idx
    return np.isin(ranked_keys, target_keys) & ok


def _rename(vals: dict, cfg: EvalConfig) -> dict:
    """Name the configured recall `recall@K`; keep the other denominator only if asked."""
    out = {}
    for key, v in vals.items():
        name, k = key.split("@")
        if name == "recall":
            if cfg.recall_denominator == "full":
                out[key] = v
        elif name == "recall_trunc":
            if cfg.recall_denominator == "truncated":
                out[f"recall@{k}"] = v
            elif cfg.also_truncated:
                out[key] = v
        else:
            out[key] = v
    return out
