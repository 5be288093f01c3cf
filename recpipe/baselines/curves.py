"""The training curve of a trained baseline (BPR-MF, SASRec, LightGCN): dvclive files in
`log_dir` (shown by `dvc plots`) and the rows kept in `model.curve`."""

from __future__ import annotations

import warnings


def open_live(log_dir, name: str):
    """A dvclive Live writing only log files into `log_dir`, or None (no folder asked for, or
    dvclive cannot start: the curve is still returned in `model.curve`)."""
    if log_dir is None:
        return None
    from dvclive import Live
    from scmrepo.exceptions import SCMError

    # dvcyaml=None / save_dvc_exp=False: log files only, never touch dvc.yaml or DVC exps
    try:
        return Live(str(log_dir), dvcyaml=None, save_dvc_exp=False)
    except (SCMError, OSError) as e:  # dvclive 3.49 fails in a git repo without commits
        warnings.warn(f"{name}: no dvclive curve in {log_dir} ({type(e).__name__}: {e}); "
                      f"the curve is still returned. A first `git commit` fixes this.")
        return None


def close_live(live, res, select_metric: str) -> None:
    """Record the selection in the curve's summary and close it."""
    if live is not None:
        live.summary["selected_epoch"] = res.best_epoch
        live.summary[f"best_valid/{select_metric}"] = res.best_score
        live.end()


def curve_rows(history: list[dict]) -> list[dict]:
    """One row per validation: epoch, loss, valid/* (timings left out: same seed, same curve)."""
    return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in history if "eval_s" in r]
