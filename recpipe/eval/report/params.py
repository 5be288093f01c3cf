"""The `report` params section: which metrics the leaderboard shows and how cells are marked."""

from __future__ import annotations

from dataclasses import dataclass, field

from recpipe.config import choice, rng


@dataclass
class ReportParams:
    # test metrics in the leaderboard columns (names as in the per-user tables)
    metrics: list[str] = field(
        default_factory=lambda: ["recall@10", "recall@20", "ndcg@10", "ndcg@20"])
    # significance level of the paired test against the best baseline
    alpha: float = field(default=0.05, metadata=rng(0.0, 1.0, lo_open=True))
    # method names that count as baselines; the best present one is the reference per column
    # (each one's single-domain row, `<name>-single`, counts too)
    baselines: list[str] = field(default_factory=lambda: ["pop", "itemknn", "ease", "bprmf"])
    # paired test behind the mark: ttest | wilcoxon
    test: str = field(default="ttest", metadata=choice("ttest", "wilcoxon"))

    def baseline_names(self) -> list[str]:
        """The baselines in their configured order, each followed by its single-domain row."""
        return [n for b in self.baselines for n in (b, f"{b}-single")]
