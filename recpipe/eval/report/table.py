"""One markdown table of the leaderboard: a row per method, a `mean ± std` cell per column
with its significance mark, and a line naming each column's reference baseline."""

from __future__ import annotations

from recpipe.eval.report.marks import _Column, _tests
from recpipe.eval.report.params import ReportParams
from recpipe.eval.report.per_user import _PerUser
from recpipe.eval.report.runs import Run, _cell
from recpipe.eval.significance import fmt_mean_std


def _table(methods: dict[str, list[Run]], cols: list[_Column], names: list[str], p: ReportParams,
           pu: _PerUser, notes: list[str], details: list[tuple] | None) -> list[str]:
    lines = ["| method | seeds | " + " | ".join(names) + " |",
             "|---|---:|" + "---:|" * len(names)]
    n_boot = 2000 if details is not None else 0
    tested = {c.key: _tests(methods, c, p, pu, notes, n_boot) for c in cols}
    for m, seeds in methods.items():
        cells = []
        for c in cols:
            mean, std = _cell(seeds, c.key)
            ref, res = tested[c.key]
            mark = ""
            if m in res and res[m].p(p.test) < p.alpha:
                mark = " *" if res[m].diff > 0 else " †"
            cells.append(fmt_mean_std(mean, std) + mark)
            if details is not None and m in res:
                details.append((m, c.key, ref, res[m]))
        lines.append(f"| {m} | {len(seeds)} | " + " | ".join(cells) + " |")
    refs = [f"{c.key.split('/', 1)[1]}: {tested[c.key][0]}"
            for c in cols if c.tested and tested[c.key][0]]
    lines.append("")
    lines.append("Reference baseline per column: " + ("; ".join(refs) if refs else
                                                      "none present (no significance marks)") + ".")
    return lines
