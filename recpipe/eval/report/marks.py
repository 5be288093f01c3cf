"""Significance marks: each column's best baseline and every other method's paired test
against it, on per-user values (a `*` / `†` in the table comes from these results)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from recpipe.eval.report.params import ReportParams
from recpipe.eval.report.per_user import _PerUser, unit_keys
from recpipe.eval.report.runs import Run, _cell
from recpipe.eval.significance import PairedResult, paired


@dataclass
class _Column:
    key: str  # metrics-file key, e.g. "test/recall@20" or "test/recall@20/Books"
    metric: str  # per-user column, e.g. "recall@20"
    domain: str | None  # per-user domain filter; None = overall
    tested: bool = True  # False for averages of averages (macro), which have no per-user values


def _tests(methods: dict[str, list[Run]], col: _Column, p: ReportParams, pu: _PerUser,
           notes: list[str], n_boot: int) -> tuple[str | None, dict[str, PairedResult]]:
    """Best baseline of the column and each other method's paired result against it.

    `n_boot = 0` skips the bootstrap CI (the dominant cost) where no table shows it.
    """
    means = {m: _cell(s, col.key)[0] for m, s in methods.items()}
    base = [m for m in methods if m in p.baseline_names() and not math.isnan(means[m])]
    if not base or not col.tested:
        return None, {}
    ref = max(base, key=lambda m: means[m])
    try:
        ref_units = pu.units(methods[ref], col.metric, "test", col.domain)
    except ValueError as e:
        notes.append(f"{col.key}: {e}; no marks")
        return ref, {}
    if ref_units is None:
        notes.append(f"{col.key}: no per-user values for baseline {ref!r}; no marks")
        return ref, {}
    out = {}
    for m, seeds in methods.items():
        if m == ref or math.isnan(means[m]):
            continue
        try:
            units = pu.units(seeds, col.metric, "test", col.domain)
            if units is None:
                notes.append(f"{col.key}: no per-user values for {m!r}; not tested")
                continue
            out[m] = paired(_on_units_of(ref_units, units, m, notes), units, col.metric,
                            unit_keys(units), n_boot=n_boot)
        except ValueError as e:
            notes.append(f"{col.key}, {m!r}: {e}")
    return ref, out


def _on_units_of(ref, units, m: str, notes: list[str]):
    """The baseline's rows on `m`'s units when `m` scored a subset of them (a user subsample,
    e.g. an LLM stage's `eval_users`), so the test pairs the same users; one note per method."""
    keys = unit_keys(units)
    if units.height >= ref.height or units.join(ref, on=keys, how="anti").height:
        return ref  # not a subset: `paired` reports what differs
    head = f"{m}: scored on a subsample of the test units"
    if not any(n.startswith(head) for n in notes):
        notes.append(f"{head} ({units.height:,} of {ref.height:,} overall); its marks pair it "
                     f"with the baseline on those units only (the baseline's row is over all)")
    return ref.join(units.select(keys), on=keys, how="semi")
