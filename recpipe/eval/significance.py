"""Paired significance tests between two runs, and mean ± std over seeds.

Two runs are compared unit by unit (a unit is one row of the evaluator's per-user table: a
user, or a (user, domain) pair, within one split part), so the test sees the per-user spread
instead of two averages. The unit sets must be identical: comparing runs evaluated on
different users (another split, another preset) would be meaningless, so `paired` refuses.

Reported per comparison (difference = b - a):
- the mean difference and both means;
- the paired t-test p-value: t = mean(d) / (sd(d) / sqrt(n)), sd with ddof=1, two-sided;
- the Wilcoxon signed-rank p-value (zero differences dropped, scipy's default `wilcox`);
- a percentile bootstrap confidence interval of the mean difference (units resampled with
  replacement, seeded, vectorised in blocks of resamples).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import polars as pl

KEYS: tuple[str, ...] = ("uid", "domain", "part")

# bootstrap resamples are drawn in blocks of at most this many (resample x unit) indices,
# so a 50k-user comparison never materialises a 2000 x 50k index matrix (800 MB)
_BOOT_BLOCK = 1 << 22


@dataclass(frozen=True)
class PairedResult:
    n: int  # paired units
    mean_a: float
    mean_b: float
    diff: float  # mean(b - a)
    t_p: float  # paired t-test, two-sided
    wilcoxon_p: float  # Wilcoxon signed-rank, two-sided
    ci_low: float  # bootstrap percentile CI of `diff`
    ci_high: float
    confidence: float

    def p(self, test: str) -> float:
        """The p-value of `test` ("ttest" or "wilcoxon")."""
        return {"ttest": self.t_p, "wilcoxon": self.wilcoxon_p}[test]


def align(a: pl.DataFrame, b: pl.DataFrame, metric: str,
          keys: Sequence[str] = KEYS) -> tuple[np.ndarray, np.ndarray]:
    """Values of `metric` in `a` and `b`, both (n,) float64, in the same unit order.

    Raises ValueError when a key or the metric column is missing, a unit appears twice, or the
    two unit sets differ (with counts and an example of each side's extra units).
    """
    keys = list(keys)
    for name, df in (("a", a), ("b", b)):
        missing = [c for c in [*keys, metric] if c not in df.columns]
        if missing:
            raise ValueError(f"paired: run {name} lacks column(s) {missing}; has {df.columns}")
        if df.select(keys).is_duplicated().any():
            raise ValueError(f"paired: run {name} has duplicate units on keys {keys}")
    left = a.select([*keys, pl.col(metric).alias("_a")])
    right = b.select([*keys, pl.col(metric).alias("_b")])
    only_a = left.join(right, on=keys, how="anti")
    only_b = right.join(left, on=keys, how="anti")
    if only_a.height or only_b.height:
        raise ValueError(
            f"paired: the two runs were evaluated on different units ({a.height} vs {b.height} "
            f"rows; {only_a.height} only in a, e.g. {only_a.select(keys).head(1).to_dicts()}; "
            f"{only_b.height} only in b, e.g. {only_b.select(keys).head(1).to_dicts()}). "
            "Compare runs of the same split and preset only."
        )
    both = left.join(right, on=keys, how="inner").sort(keys)
    return both["_a"].to_numpy().astype(np.float64), both["_b"].to_numpy().astype(np.float64)


def ttest_p(d: np.ndarray) -> float:
    """Two-sided paired t-test p-value of differences `d` (n,); NaN when n < 2."""
    from scipy import stats

    n = len(d)
    if n < 2:
        return math.nan
    sd = float(np.std(d, ddof=1))
    mean = float(np.mean(d))
    if sd == 0.0:  # constant differences: t is 0/0 (identical runs) or infinite
        return 1.0 if mean == 0.0 else 0.0
    t = mean / (sd / math.sqrt(n))
    return float(2.0 * stats.t.sf(abs(t), df=n - 1))


def wilcoxon_p(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value; 1.0 when every difference is zero.

    Exact (scipy's null distribution) for up to 50 differences without zeros or ties, else the
    normal approximation with tie correction (as R's wilcox.test). scipy's "auto" would run a
    permutation test on small samples with ties, ~0.35 s each: minutes for a report with many
    per-domain columns of a few units each (HUM's 23 Amazon 2023 domains)."""
    from scipy import stats

    if len(d) == 0:
        return math.nan
    if not np.any(d != 0):
        return 1.0  # scipy raises here; no unit differs, so there is no evidence of a difference
    nz = np.abs(d[d != 0])
    exact = len(d) <= 50 and len(nz) == len(d) and len(np.unique(nz)) == len(nz)
    return float(stats.wilcoxon(d, method="exact" if exact else "asymptotic").pvalue)


def bootstrap_ci(d: np.ndarray, confidence: float = 0.95, n_boot: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(d): resample the n units with replacement `n_boot` times.

    Cost ~ n_boot * n random indices: about 2.6 s for 2,000 x 52,643 units on 2 CPU cores.
    """
    n = len(d)
    if n == 0 or n_boot == 0:  # n_boot = 0: the caller only needs p-values
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot, dtype=np.float64)
    block = max(1, _BOOT_BLOCK // n)
    for start in range(0, n_boot, block):
        m = min(block, n_boot - start)
        idx = rng.integers(0, n, size=(m, n))  # (m, n) resampled unit indices
        means[start:start + m] = d[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(means, [tail, 100.0 - tail])
    return float(lo), float(hi)


def paired(a, b, metric: str | None = None, keys: Sequence[str] = KEYS, *,
           confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> PairedResult:
    """Compare run `b` against run `a` on one metric, unit by unit.

    `a`, `b`: per-user polars frames (columns `keys` + `metric`), aligned on `keys`; or two
    1-D arrays that are already aligned (same length, same unit order).
    """
    if isinstance(a, pl.DataFrame) or isinstance(b, pl.DataFrame):
        if metric is None:
            raise ValueError("paired: name the metric column to compare")
        va, vb = align(a, b, metric, keys)
    else:
        va, vb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if va.shape != vb.shape or va.ndim != 1:
            raise ValueError(f"paired: arrays must be 1-D and equally long, got {va.shape} "
                             f"and {vb.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"paired: confidence must be in (0, 1), got {confidence}")
    d = vb - va
    lo, hi = bootstrap_ci(d, confidence, n_boot, seed)
    n = len(d)
    return PairedResult(
        n=n,
        mean_a=float(va.mean()) if n else math.nan,
        mean_b=float(vb.mean()) if n else math.nan,
        diff=float(d.mean()) if n else math.nan,
        t_p=ttest_p(d),
        wilcoxon_p=wilcoxon_p(d),
        ci_low=lo,
        ci_high=hi,
        confidence=confidence,
    )


def over_seeds(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample std with ddof=1); std is NaN for a single seed (it is undefined)."""
    v = np.asarray([x for x in values], dtype=np.float64)
    if v.size == 0:
        raise ValueError("over_seeds: no values")
    std = float(np.std(v, ddof=1)) if v.size > 1 else math.nan
    return float(v.mean()), std


def fmt_mean_std(mean: float, std: float, digits: int = 4) -> str:
    """"0.1234 ± 0.0012"; just the mean when std is NaN (one seed); "–" for a missing mean."""
    if mean is None or math.isnan(mean):
        return "–"
    if std is None or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
