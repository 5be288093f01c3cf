"""The `graph` section of params.yaml: which backbone and alignment the graph stage trains, how.

Validated at stage start (recpipe.config.parse): an unknown key, a backbone or alignment that
does not exist, a device torch cannot see or a bad `train` key stops the stage naming it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from recpipe.config import choice, rng
from recpipe.graph import BACKBONES  # names only: the models import lazily


@dataclass
class GraphParams:
    # backbone (recpipe.graph.BACKBONES)
    model: str = field(default="lightgcn", metadata=choice(*BACKBONES))
    # RLMRec alignment: none | con | gen
    align: str = field(default="con", metadata=choice("none", "con", "gen"))
    # parity reproduces the reference's quirks; clean fixes them (README table)
    mode: str = field(default="clean", metadata=choice("clean", "parity"))
    # which column of RLMRec's per-dataset tables: amazon | yelp | steam
    kind: str = field(default="amazon", metadata=choice("amazon", "yelp", "steam"))
    # semantic tables for con/gen: profiles (embed stage) | release (RLMRec's ada-002 vectors)
    semantic: str = field(default="profiles", metadata=choice("profiles", "release"))
    # auto (cuda when present) | cpu | cuda | cuda:N | mps (checked at parse: recpipe.train.device)
    device: str = "auto"
    # CPU threads for torch; 0 = torch's default (1 can be far faster on a busy machine)
    threads: int = field(default=0, metadata=rng(0))
    # the training loop's keys (recpipe.train.loop.TrainConfig; its defaults are RLMRec's)
    train: dict = field(default_factory=dict)
    # backbone/alignment keys on top of the preset, clean mode only, keyed by <model> (all its
    # alignments) or <model>-<align>, e.g. {lightgcn-con: {kd_weight: 0.001}} (presets.py)
    overrides: dict = field(default_factory=dict)
    # several seeds in one run: [2023, 2024, 2025] -> metrics/graph.json holds mean and _std;
    # [] = the top-level `seed` (recpipe/eval/seeds.py)
    seeds: list = field(default_factory=list)

    def validate(self) -> None:
        from recpipe.train.device import check_device

        check_device(self.device, "graph.device")
        # a bad train key stops the stage at parse time; the resolved keys are kept
        self.train = asdict(self.train_config())

    def train_config(self):
        from recpipe.train.loop import train_config

        # no graph defaults on top: TrainConfig's own defaults are RLMRec's
        return train_config(self.train, {}, "graph.train")
