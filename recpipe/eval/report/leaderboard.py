"""The markdown leaderboard document: per protocol a headline table, per-domain tables, the
paired-test details and notes (`reports/leaderboard.md`)."""

from __future__ import annotations

import re

from recpipe.eval.report.marks import _Column
from recpipe.eval.report.params import ReportParams
from recpipe.eval.report.per_user import _PerUser
from recpipe.eval.report.runs import Run, group_runs
from recpipe.eval.report.table import _table


def _protocol_title(proto: tuple) -> str:
    preset, rden, idcg, mvt = proto
    extra = []
    if rden is not None:
        extra.append(f"recall: {rden}")
    if idcg is not None:
        extra.append(f"NDCG IDCG: {idcg}")
    if mvt is not None:
        extra.append("validation items " + ("masked at test" if mvt else "stay candidates"))
    return f"Preset `{preset}`" + (f" ({', '.join(extra)})" if extra else "")


def _domains(methods: dict[str, list[Run]], metric: str) -> list[str]:
    pat = re.compile(rf"^test/{re.escape(metric)}/(.+)$")
    found = {m[1] for s in methods.values() for r in s for k in r.values if (m := pat.match(k))}
    # macro and spread are summaries of the domains, listed after them
    return sorted(found - {"macro", "spread"}) + [d for d in ("macro", "spread") if d in found]


def _no_targets(methods: dict[str, list[Run]]) -> list[str]:
    """A line per distinct `domains_without_targets` list (the evaluator's names of domains
    that had no test targets, so the macro average left them out), naming the methods unless
    every method of the table shares it."""
    groups: dict[tuple, list[str]] = {}
    for m, seeds in methods.items():
        doms: set[str] = set()
        for r in seeds:
            v = r.values.get("test/domains_without_targets")
            if isinstance(v, list):
                doms.update(map(str, v))
        if doms:
            groups.setdefault(tuple(sorted(doms)), []).append(m)
    return [f"Domains with no test targets (left out of the macro average)"
            f"{'' if len(ms) == len(methods) else ' for ' + ', '.join(ms)}: {', '.join(doms)}."
            for doms, ms in groups.items()]


def leaderboard(runs: list[Run], p: ReportParams, pu: _PerUser | None = None,
                skipped: list[str] | None = None) -> str:
    """The markdown leaderboard: one table per protocol, per-domain tables, paired-test details."""
    pu = pu or _PerUser()
    test_name = {"ttest": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}[p.test]
    out = ["# Leaderboard", "",
           f"Test metrics, mean ± sample std over seeds (one seed: the value). `*` / `†`: "
           f"significantly better / worse than the column's best baseline "
           f"({', '.join(p.baselines)}) on per-user values, {test_name}, p < {p.alpha} (no "
           f"multiple-comparison correction). Rows of different presets are never in one table.",
           ""]
    if skipped:
        out += ["Left out:", ""] + [f"- {s}" for s in skipped] + [""]
    if not runs:
        return "\n".join(out + ["No method metrics found in `metrics/`.", ""])
    for proto, methods in group_runs(runs, p.baseline_names()).items():
        notes: list[str] = []
        details: list[tuple] = []
        out += [f"## {_protocol_title(proto)}", ""]
        cols = [_Column(f"test/{m}", m, None) for m in p.metrics]
        out += _table(methods, cols, p.metrics, p, pu, notes, details) + [""]
        if missing := _no_targets(methods):
            out += [*missing, ""]
        for metric in p.metrics:
            doms = _domains(methods, metric)
            if not doms:
                continue
            dcols = [_Column(f"test/{metric}/{d}", metric, d, tested=d not in ("macro", "spread"))
                     for d in doms]
            out += [f"### {metric} per domain", ""]
            names = [c.key.rsplit("/", 1)[1] for c in dcols]
            out += _table(methods, dcols, names, p, pu, notes, None)
            out += ["", "(`macro` is the unweighted mean of the domains, `spread` their max - min "
                    "(lower = more even across domains); neither is tested.)", ""]
        if details:
            out += ["### Paired tests against the best baseline", "",
                    "| method | metric | baseline | units | difference | 95 % bootstrap CI "
                    "| t-test p | Wilcoxon p |",
                    "|---|---|---|---:|---:|---|---:|---:|"]
            for m, key, ref, r in details:
                out.append(f"| {m} | {key.split('/', 1)[1]} | {ref} | {r.n} | {r.diff:+.4f} | "
                           f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}] | {r.t_p:.3g} | "
                           f"{r.wilcoxon_p:.3g} |")
            out.append("")
        if notes:
            out += ["Notes:", ""] + [f"- {n}" for n in dict.fromkeys(notes)] + [""]
    return "\n".join(out + _llm_runs(runs))


def _llm_runs(runs: list[Run]) -> list[str]:
    """What each LLM run was (the metrics of a stage that names its `backbone`): the model and
    how far training got, so a CPU subsample is never read as the paper's setting."""
    llm = [r for r in runs if "backbone" in r.values]
    if not llm:
        return []

    def n(v) -> str:
        return f"{v:,.0f}" if isinstance(v, (int, float)) else "-"

    out = ["## LLM runs", "",
           "| method | seed | backbone | parameters | trainable | trained on | steps | test units |",
           "|---|---:|---|---:|---:|---|---:|---:|"]
    for r in llm:
        v = r.values
        trained = f"{n(v.get('train_samples'))} samples of {n(v.get('train_users'))} users"
        out.append(f"| {r.model} | {r.seed if r.seed is not None else '-'} | {v['backbone']} | "
                   f"{n(v.get('backbone_parameters'))} | {n(v.get('trainable'))} | {trained} | "
                   f"{n(v.get('steps'))} ({v.get('stopped', '-')}) | {n(v.get('test/units'))} |")
    return out + [""]
