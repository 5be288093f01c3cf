"""The `hellm` section of params.yaml: HeLLM's backbone, adapters, prefix, data and training keys.

Defaults are the reference's (hellm.md section 5.7: Xu107/HeLLM `config_HeLLM.py` and its logged
Namespaces) where they are not a hardware choice: LoRA r 16 / alpha 16 / dropout 0.05 on the FFN,
a 10-slot prefix with MLP dropout 0.3, AdamW lr 3e-4 betas (0.9, 0.95) weight decay 0.1, one
warm-up epoch then a half-cosine to 5e-6, batch 7, 25 epochs, max_len 50. The backbone is the
offline SmolLM2-135M (the reference: LLaMA-2-7B, which needs a GPU and the hub).

`mode` switches the reference's quirks (hellm.md section 7) as one unit:
    clean   padded history rows are masked out of the Gram matrix; one BOS (the response is
            tokenised without special tokens)
    parity  padded rows enter the Gram matrix as item 0, as in the reference; the response
            gets its own BOS (the reference tokenises both text pieces with special tokens)
Selection is on validation in both (quirk 1); the reference's best *test* epoch is recorded
as `best_test_epoch` only when `report_best_test_epoch` asks for it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from recpipe.config import ParamError, choice, rng

# LoRA on the FFN only (hellm.md 5.5); the `mlp` role maps to gate/up/down on LLaMA-style
# models and to c_fc/c_proj on GPT-2 (recpipe.llm.lora.ROLES)
LORA_DEFAULTS = {"r": 16, "alpha": 16, "dropout": 0.05, "targets": "mlp"}

# recpipe.train.loop.TrainConfig overrides: the reference trains 25 epochs (Beauty, Toys) at
# batch 7 and never selects (quirk 1); validation every epoch with patience 3 stops after its
# peak, which the logs put at epochs 7-14 (hellm.md section 6)
TRAIN_DEFAULTS = {"lr": 3e-4, "batch_size": 7, "epochs": 25, "eval_every": 1, "patience": 3,
                  "select_metric": "ndcg@10"}


@dataclass
class HeLLMParams:
    # the causal LM: smollm2-135m (real, offline) | tiny-llama | tiny-qwen2 | tiny-gpt2 (random,
    # tests only) | a Hugging Face id or local folder (the reference: LLaMA-2-7B)
    model: str = "smollm2-135m"
    # auto (bf16 on a GPU that supports it, else float32) | float32 | bfloat16 | float16
    dtype: str = "auto"
    # attention kernel: sdpa | eager
    attn: str = "sdpa"
    # recompute activations in the backward pass (less memory, ~30% more time)
    gradient_checkpointing: bool = False
    # clean | parity (module docstring)
    mode: str = field(default="clean", metadata=choice("clean", "parity"))
    # LoRA keys (recpipe.llm.lora.LoraParams) over LORA_DEFAULTS
    lora: dict = field(default_factory=dict)
    # graph-enhanced prefix slots per layer (reference adapter_len 10); 0 = no prefix
    prefix_len: int = field(default=10, metadata=rng(0))
    # dropout inside the two Gram-matrix MLPs (reference 0.3)
    prefix_dropout: float = field(default=0.3, metadata=rng(0.0, 1.0))
    # divide the Gram matrix by the history length (a clean-mode option; the reference sums)
    gram_mean: bool = False
    # the linear head over all items: frozen (its random init, as in the reference) | trained
    # (E4SRec) | tied (row i = the item's soft token, item_proj([e_MMHCL(i); e_SASRec(i)]), as
    # an LM ties its output layer to its input embeddings; no new parameters)
    item_head: str = field(default="frozen", metadata=choice("frozen", "trained", "tied"))
    # the last max_len items of each user's whole sequence are kept; training samples come
    # from its training part (hellm.md 2.4: Beauty gives 127,598)
    max_len: int = field(default=50, metadata=rng(3))
    # training users, drawn with the seed; 0 = all (a CPU run labels itself with the count)
    users: int = field(default=0, metadata=rng(0))
    # evaluated users (valid and test), drawn with the seed; 0 = all
    eval_users: int = field(default=0, metadata=rng(0))
    # users per forward pass when scoring (left-padded, masked)
    eval_batch_size: int = field(default=32, metadata=rng(1))
    # AdamW (reference: betas 0.9, 0.95, weight decay 0.1)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95], metadata=rng(0.0, 1.0))
    weight_decay: float = field(default=0.1, metadata=rng(0.0))
    # linear warm-up epochs, then a half-cosine from lr to min_lr at the last epoch
    warmup_epochs: float = field(default=1.0, metadata=rng(0.0))
    min_lr: float = field(default=5e-6, metadata=rng(0.0))
    # evaluate test after every validation and record the best test epoch (the reference's
    # reporting, hellm.md section 6) next to the selected one; costs one test pass per epoch
    report_best_test_epoch: bool = False
    # auto (cuda when present) | cpu | cuda | cuda:N | mps
    device: str = "auto"
    # CPU threads for torch; 0 = torch's default
    threads: int = field(default=0, metadata=rng(0))
    # processes that train data-parallel (torchrun: one per GPU, gloo on CPUs); process 0
    # validates, evaluates and writes. 1 = this process alone
    processes: int = field(default=1, metadata=rng(1))
    # several seeds in one run (mean and _std in the metrics); [] = the top-level `seed`
    seeds: list = field(default_factory=list)
    # the training loop's keys (recpipe.train.loop.TrainConfig) over TRAIN_DEFAULTS
    train: dict = field(default_factory=dict)

    def validate(self) -> None:
        from recpipe.llm.backbone import ATTN, check_name
        from recpipe.train.device import check_device

        check_name(self.model, "hellm.model")
        check_device(self.device, "hellm.device")
        if self.attn not in ATTN:
            raise ParamError(f"hellm.attn: {self.attn!r} is not allowed; choose {', '.join(ATTN)}")
        if len(self.betas) != 2:
            raise ParamError(f"hellm.betas: {self.betas!r} must be two numbers in [0, 1]")
        if self.prefix_dropout >= 1:
            raise ParamError(f"hellm.prefix_dropout: {self.prefix_dropout!r} must be < 1")
        self.lora = asdict(self.lora_params())  # resolved keys go to hparams.json
        self.train = asdict(self.train_config())

    def lora_params(self):
        from recpipe.llm.lora import lora_params

        return lora_params({**LORA_DEFAULTS, **(self.lora or {})}, "hellm.lora")

    def train_config(self):
        from recpipe.train.loop import train_config

        return train_config(self.train, TRAIN_DEFAULTS, "hellm.train")

    def lr_lambda(self, epochs: int):
        """lr factor at fractional epoch e: e / warmup during the warm-up, then the reference's
        half-cosine from 1 to min_lr / lr over the remaining epochs (utils/lr_sched.py)."""
        import math

        warm, floor = self.warmup_epochs, self.min_lr / self.train_config().lr
        span = max(epochs - warm, 1e-9)

        def f(e: float) -> float:
            if e < warm:
                return e / warm
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(e - warm, span) / span))
        return f
