"""SASRec behind the baselines' interface, so it can be fit once per domain (row `sasrec-single`).

Paper: W.-C. Kang, J. McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018. Reference
code: https://github.com/kang205/SASRec; the recipe is E4SRec's
(https://github.com/HestiaSky/E4SRec), as in the `sasrec` stage (recpipe/seq/).

The network, batches, loop and selection are the `sasrec` stage's own (recpipe.seq.run.train):
this class only adapts them to `fit(train, valid, data, cfg)` / `scorer(part)`. It needs a
DataView with interaction rows (sequences), which the baselines stage and `domain_view` give.
A user-level unit is scored after the user's sequence before `part`; a sample-level unit
(`eval.average=samples`) after its own history (recpipe.seq.run.SeqScorer).

Its hyperparameters are `baselines.sasrec`, the keys of the `sasrec` section except `device`
and `seeds`, which are the baselines section's own: set both sections alike to compare the
merged `sasrec` row with `sasrec-single` under the same recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recpipe.baselines.curves import close_live, curve_rows, open_live
from recpipe.config import ParamError
from recpipe.seq.params import SASRecParams


@dataclass
class SASRecBaselineParams(SASRecParams):
    def validate(self) -> None:
        for key, default in (("device", "auto"), ("seeds", [])):
            if getattr(self, key) != default:
                raise ParamError(f"baselines.sasrec.{key}: set baselines.{key} instead (one "
                                 f"value for every baseline)")
        super().validate()


class SASRecBaseline:
    Params = SASRecBaselineParams

    def __init__(self, params: SASRecParams | None = None, *, seed: int = 0,
                 device: str = "cpu", log_dir: str | Path | None = None):
        self.params = params or SASRecBaselineParams()
        self.seed, self.device, self.log_dir = seed, device, log_dir
        self.model = None  # recpipe.seq.sasrec.SASRec at the selected state
        self.data = None
        self.selected_epoch: int | None = None
        self.curve: list[dict] = []

    def fit(self, train, valid=None, data=None, cfg=None) -> SASRecBaseline:
        """Train on `data`'s training sequences; select on its validation part under `cfg`."""
        from recpipe.seq.run import train as train_seq

        if data is None or cfg is None or not getattr(data, "rows", None):
            raise ValueError("SASRec needs the split's interaction rows (a DataView from "
                             "load_view) and the eval config")
        live = open_live(self.log_dir, "sasrec")
        self.model, res = train_seq(data, self.params, cfg, self.seed, device=self.device,
                                    live=live, progress=False)
        self.data, self.selected_epoch = data, res.best_epoch
        self.curve = curve_rows(res.history)
        close_live(live, res, self.params.train_config().select_metric)
        return self

    def scorer(self, part: str = "test"):
        from recpipe.seq.run import SeqScorer

        if self.model is None:
            raise RuntimeError("SASRecBaseline.scorer() called before fit()")
        return SeqScorer(self.model, self.data, part, self.device)
