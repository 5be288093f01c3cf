"""The `sasrec` section of params.yaml: SASRec's model, optimiser and training keys.

Defaults are the E4SRec recipe (hellm.md section 4): d 64, 2 blocks, 1 head, maxlen 50,
dropout 0.5, BCE with one sampled negative, Adam lr 1e-3 betas (0.9, 0.98) without weight decay
(E4SRec's `--weight_decay 1e-4` never reaches its optimiser), lr x 0.5 every 100 epochs,
batch 128, 300 epochs. Selection is the project's: on validation with the one evaluator,
every 5 epochs (the reference's cadence, where it looked at sampled *test* metrics).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from recpipe.config import choice, rng


@dataclass
class SASRecConfig:
    # hidden size d (E4SRec: 64)
    dim: int = field(default=64, metadata=rng(1))
    # self-attention blocks (E4SRec: 2)
    layers: int = field(default=2, metadata=rng(1))
    # attention heads; dim must divide by it (E4SRec: 1)
    heads: int = field(default=1, metadata=rng(1))
    # input length T: the last T items of a sequence (E4SRec and HeLLM: 50)
    maxlen: int = field(default=50, metadata=rng(1))
    # dropout on embeddings, attention weights and the FFN (E4SRec: 0.5)
    dropout: float = field(default=0.5, metadata=rng(0.0, 1.0))
    # bce: one sampled negative per position (the reference) | ce: full softmax over all items
    loss: str = field(default="bce", metadata=choice("bce", "ce"))


# SASRec's training defaults (params.yaml `sasrec.train` keys replace them). patience 0: the
# reference trains all 300 epochs; the kept state is still the best validated one
TRAIN_DEFAULTS = {"lr": 1e-3, "batch_size": 128, "epochs": 300, "eval_every": 5, "patience": 0,
                  "select_metric": "ndcg@10"}


@dataclass
class SASRecParams:
    # the network and its loss (recpipe.seq.sasrec.SASRecConfig)
    model: dict = field(default_factory=dict)
    # Adam betas (E4SRec: 0.9, 0.98)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98], metadata=rng(0.0, 1.0))
    # Adam L2 weight decay (E4SRec: none reaches the optimiser)
    weight_decay: float = field(default=0.0, metadata=rng(0.0))
    # StepLR: lr x lr_gamma after every lr_step epochs (E4SRec: 0.5 every 100); 0 = constant
    lr_step: int = field(default=100, metadata=rng(0))
    lr_gamma: float = field(default=0.5, metadata=rng(0.0, 1.0, lo_open=True))
    # auto (cuda when present) | cpu | cuda | cuda:N | mps
    device: str = "auto"
    # CPU threads for torch; 0 = torch's default
    threads: int = field(default=0, metadata=rng(0))
    # several seeds in one run (mean and _std in the metrics); [] = the top-level `seed`
    seeds: list = field(default_factory=list)
    # the training loop's keys (recpipe.train.loop.TrainConfig) over TRAIN_DEFAULTS
    train: dict = field(default_factory=dict)

    def validate(self) -> None:
        from recpipe.config import ParamError
        from recpipe.train.device import check_device

        check_device(self.device, "sasrec.device")
        if len(self.betas) != 2:
            raise ParamError(f"sasrec.betas: {self.betas!r} must be two numbers in [0, 1]")
        self.model = asdict(self.model_config())  # resolved keys go to hparams.json
        self.train = asdict(self.train_config())

    def model_config(self) -> SASRecConfig:
        from recpipe.config import ParamError, parse

        cfg = parse(SASRecConfig, self.model, prefix="sasrec.model")
        if cfg.dim % cfg.heads:
            raise ParamError(f"sasrec.model.dim={cfg.dim} must be divisible by "
                             f"sasrec.model.heads={cfg.heads}")
        return cfg

    def train_config(self):
        from recpipe.train.loop import train_config

        return train_config(self.train, TRAIN_DEFAULTS, "sasrec.train")

    def lr_lambda(self):
        """The StepLR factor as a function of the fractional epoch (None = constant lr)."""
        if not self.lr_step:
            return None
        step, gamma = self.lr_step, self.lr_gamma
        return lambda e: gamma ** (int(e) // step)
