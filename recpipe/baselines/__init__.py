"""Classic recommenders every method is compared against, on the same split and evaluator.

Each model is one class with the same small interface:

    model = MODELS[name](params, seed=..., device=..., log_dir=...)
    model.fit(train_csr, valid_csr, split_data, eval_cfg)  # -> model
    scorer = model.scorer(part)    # a scorer for recpipe.eval.evaluate on part valid | test
    model.selected_epoch, model.curve  # None / [] for models without training epochs

`BaselinesParams` is the `baselines` section of params.yaml: the models to run and one
sub-section of hyper-parameters per model. `PER_DOMAIN` adds SASRec and LightGCN behind the same
interface for the single-domain rows only (`baselines.single_domain`): their merged rows are
the `sasrec` and `graph` stages' (a `sasrec` row here would collide with metrics/sasrec.json).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from recpipe.baselines.bprmf import BPRMF, BPRMFParams
from recpipe.baselines.ease import EASE, EASEParams
from recpipe.baselines.itemknn import ItemKNN, ItemKNNParams
from recpipe.baselines.lightgcn import LightGCN, LightGCNParams
from recpipe.baselines.pop import MostPopular, PopParams
from recpipe.baselines.sasrec import SASRecBaseline, SASRecBaselineParams
from recpipe.config import choice

MODELS: dict[str, type] = {
    "pop": MostPopular,
    "itemknn": ItemKNN,
    "ease": EASE,
    "bprmf": BPRMF,
}

# models that `baselines.single_domain` may also name (one per domain; module docstring)
PER_DOMAIN: dict[str, type] = {**MODELS, "sasrec": SASRecBaseline, "lightgcn": LightGCN}


@dataclass
class BaselinesParams:
    # which baselines to fit and evaluate, in this order
    models: list[str] = field(default_factory=lambda: list(MODELS), metadata=choice(*MODELS))
    # also fit these one model per domain, each on its domain's interactions alone (rows
    # `<name>-single`; needs eval.candidates=target_domain, the `hum` preset): HUM's
    # single-domain baselines (recpipe/baselines/single_domain.py)
    single_domain: list[str] = field(default_factory=list, metadata=choice(*PER_DOMAIN))
    # auto (cuda when available, else cpu) | cpu | cuda | cuda:N | mps: where BPR-MF trains and
    # scoring runs (checked at parse: recpipe.train.device)
    device: str = "auto"
    # several seeds in one run, e.g. [1, 2, 3]; [] = the top-level `seed` (recpipe/eval/seeds.py)
    seeds: list = field(default_factory=list)  # checked by parse_seeds (its own message)
    pop: PopParams = field(default_factory=PopParams)
    itemknn: ItemKNNParams = field(default_factory=ItemKNNParams)
    ease: EASEParams = field(default_factory=EASEParams)
    bprmf: BPRMFParams = field(default_factory=BPRMFParams)
    # single-domain only: the `sasrec` section's keys but device and seeds (the ones above)
    sasrec: SASRecBaselineParams = field(default_factory=SASRecBaselineParams)
    # single-domain only: LightGCN without alignment (backbone `model` keys, loop `train` keys)
    lightgcn: LightGCNParams = field(default_factory=LightGCNParams)

    def validate(self) -> None:
        from recpipe.train.device import check_device

        check_device(self.device, "baselines.device")

    def model_params(self, name: str):
        return getattr(self, name)


__all__ = ["BPRMF", "EASE", "MODELS", "PER_DOMAIN", "BaselinesParams", "ItemKNN", "LightGCN",
           "MostPopular", "SASRecBaseline"]
