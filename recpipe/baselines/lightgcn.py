"""LightGCN without alignment behind the baselines' interface, so it can be fit once per domain
(row `lightgcn-single`).

Paper: X. He, K. Deng, X. Wang, Y. Li, Y. Zhang, M. Wang, "LightGCN: Simplifying and Powering
Graph Convolution Network for Recommendation", SIGIR 2020. Reference code:
https://github.com/gusye1234/LightGCN-PyTorch; the variant trained here is RLMRec's
(recpipe/graph/lightgcn.py: edge dropout, sum pooling).

The backbone, BPR batches, loop and selection are the `graph` stage's (recpipe.graph.run with
`align=none` and the `amazon` column of RLMRec's table: 3 layers, reg 1e-6, d 32); this class
adapts them to `fit(train, valid, data, cfg)` / `scorer()`. `baselines.lightgcn.model` takes
backbone keys over that preset, `train` the loop's keys over RLMRec's defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from recpipe.baselines.curves import close_live, curve_rows, open_live
from recpipe.config import rng


@dataclass
class LightGCNParams:
    # backbone keys over RLMRec's lightgcn-none preset (recpipe/graph/lightgcn.py LightGCNConfig)
    model: dict = field(default_factory=dict)
    # CPU threads for the training steps; 0 = torch's default
    threads: int = field(default=0, metadata=rng(0))
    # the training loop's keys (recpipe.train.loop.TrainConfig; its defaults are RLMRec's)
    train: dict = field(default_factory=dict)

    def validate(self) -> None:
        # the backbone keys are checked when the model is built (its config imports torch)
        self.train = asdict(self.train_config())

    def configs(self):
        """(LightGCNConfig, AlignConfig); raises ParamError naming a bad `model` key."""
        from recpipe.graph.presets import build_configs

        return build_configs("lightgcn", "none", "amazon", "clean", self.model,
                             where="baselines.lightgcn.model")

    def train_config(self):
        from recpipe.train.loop import train_config

        return train_config(self.train, {}, "baselines.lightgcn.train")


class LightGCN:
    Params = LightGCNParams

    def __init__(self, params: LightGCNParams | None = None, *, seed: int = 0,
                 device: str = "cpu", log_dir: str | Path | None = None):
        self.params = params or LightGCNParams()
        self.seed, self.device, self.log_dir = seed, device, log_dir
        self.model = None
        self.selected_epoch: int | None = None
        self.curve: list[dict] = []

    def fit(self, train, valid=None, data=None, cfg=None) -> LightGCN:
        """Train on `data`'s training graph; select on its validation part under `cfg`."""
        from recpipe.graph.run import build, select

        if data is None or cfg is None:
            raise ValueError("LightGCN needs the split data and the eval config")
        p, tc = self.params, self.params.train_config()
        self.model = build("lightgcn", "none", data, (None, None), self.seed,
                           device=self.device, configs=p.configs())
        live = open_live(self.log_dir, "lightgcn")
        res = select(self.model, data, tc, cfg, self.seed, device=self.device, live=live,
                     progress=False, desc="lightgcn", step_threads=p.threads)
        self.selected_epoch, self.curve = res.best_epoch, curve_rows(res.history)
        close_live(live, res, tc.select_metric)
        return self

    def scorer(self, part: str = "test"):
        from recpipe.graph.run import scorer

        if self.model is None:
            raise RuntimeError("LightGCN.scorer() called before fit()")
        return scorer(self.model, self.device)
