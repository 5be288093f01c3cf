"""The `hum` section of params.yaml: backbone, texts, negatives, domain weights, training keys.

Defaults are the reference's (hum.md section 5: Honghui-BAO/HUM `configs/train_HUM.yaml`,
`run_hum.py`, `HUM_Trainer.py`) where they are not a hardware choice: LoRA r 8 / alpha 16 /
dropout 0.1 on q/k/v/o, AdamW lr 5e-5 eps 1e-4 weight decay 0.001, linear warm-up over 0.1% of
the steps then linear decay, history 10 items, titles cut at 42 tokens, 10 in-domain negatives,
temperature 1, domain weights updated every 50 steps with eta 0.001 and temperature 1, masking
off, select on Recall@10, patience 10. The reference trains Qwen2.5-1.5B at batch 16 x 8 GPUs;
the offline default is SmolLM2-135M at batch 8 (a CPU choice: `train.batch_size`).

`mode` switches the reference's quirks (hum.md section 8) as one unit:
    clean   negatives exclude the target; domain weights start at 1/K, persist across epochs
            and are all-reduced under data parallelism; each sample counts once
    parity  negatives may include the target; weights start at 1 each (sum K, so the loss
            scale drops ~K-fold at the first update), reset every epoch, and stay per process
Both modes select on validation and always test the kept state (the reference tests only when
early stopping fires), and both encode items once per evaluation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from recpipe.config import ParamError, choice, rng

# the reference's prompt (prompt_selection 0), shared by users and items
PROMPT = "Compress the following description about the user or item into the last token:"
EMB_TOKEN = "<|emb|>"

# LoRA on the attention projections (hum.md 5: q/k/v/o); GPT-2 maps to c_attn/c_proj
LORA_DEFAULTS = {"r": 8, "alpha": 16, "dropout": 0.1, "targets": "attention"}

# recpipe.train.loop.TrainConfig overrides. The reference validates every 100 steps and
# stops after 10 validations without gain; here validation is per epoch (eval_every)
TRAIN_DEFAULTS = {"lr": 5e-5, "batch_size": 8, "epochs": 50, "eval_every": 1, "patience": 10,
                  "select_metric": "recall@10"}


@dataclass
class HUMParams:
    # the encoder LM: smollm2-135m (real, offline) | minilm (the real all-MiniLM-L6-v2, a
    # bidirectional encoder: a fast CPU run) | tiny-qwen2 | tiny-llama | tiny-gpt2 (random,
    # tests only) | a Hugging Face id or local folder (the paper: Qwen/Qwen2.5-1.5B)
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
    # items of a user's history (the last ones before the target, every domain, in time order)
    history: int = field(default=10, metadata=rng(1))
    # title tokens kept per item (the reference's item_max_tokens)
    title_tokens: int = field(default=42, metadata=rng(1))
    # negatives per training sample, drawn uniformly from the items of the target's domain
    # that occur in training
    negatives: int = field(default=10, metadata=rng(1))
    # clean mode: also never draw an item of the user's own history as a negative
    exclude_history: bool = False
    # scores are dot products / temperature (reference 1: raw dot products)
    temperature: float = field(default=1.0, metadata=rng(0.0, None, lo_open=True))
    # dot (the reference) | cosine (embeddings L2-normalised; pair it with a temperature such
    # as 0.05). On the CPU's MiniLM, raw dot products collapse to uniform scores (README)
    score: str = field(default="dot", metadata=choice("dot", "cosine"))
    # none (the reference) | mean: subtract each side's mean embedding (users', items') before
    # scoring. A causal LM's last states share one dominant direction (SmolLM2-135M on the
    # embedded data: 93% of a user vector's energy, 96% of an item's), so a raw dot product is
    # mostly a per-item offset that every user shares, a random "popularity". Both means are
    # estimated once, from the untrained encoder, on `center_samples` items and as many
    # training histories drawn with the seed, and kept fixed (and checkpointed) from then on
    center: str = field(default="none", metadata=choice("none", "mean"))
    center_samples: int = field(default=256, metadata=rng(1))
    # domain-importance weights (the robustness enhancer); false = plain sample mean of the
    # losses, the ablation row
    domain_weights: bool = True
    # w_d <- w_d * exp(eta * mean loss of d / dro_temperature) every dro_interval steps
    dro_eta: float = field(default=0.001, metadata=rng(0.0))
    dro_temperature: float = field(default=1.0, metadata=rng(0.0, None, lo_open=True))
    dro_interval: int = field(default=50, metadata=rng(1))
    # training only: drop each history item of the target's domain with this probability when
    # the history spans several domains (the masking enhancer; reference 0.0 = off)
    mask_ratio: float = field(default=0.0, metadata=rng(0.0, 1.0))
    # training samples (one per training interaction after a user's first), drawn with the
    # seed; 0 = all (a CPU run states its count)
    train_samples: int = field(default=0, metadata=rng(0))
    # evaluated users (valid and test), drawn with the seed; 0 = all
    eval_users: int = field(default=0, metadata=rng(0))
    # sequences per forward pass when encoding items and users for evaluation
    eval_batch_size: int = field(default=32, metadata=rng(1))
    # AdamW (reference: eps 1e-4, weight decay 0.001), linear warm-up share of all steps
    adam_eps: float = field(default=1e-4, metadata=rng(0.0, None, lo_open=True))
    weight_decay: float = field(default=0.001, metadata=rng(0.0))
    warmup: float = field(default=0.001, metadata=rng(0.0, 1.0))
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
        from recpipe.llm.backbone import ATTN, ENCODERS, check_name
        from recpipe.train.device import check_device

        if self.model not in ENCODERS:
            check_name(self.model, "hum.model")
        check_device(self.device, "hum.device")
        if self.attn not in ATTN:
            raise ParamError(f"hum.attn: {self.attn!r} is not allowed; choose {', '.join(ATTN)}")
        if self.mask_ratio >= 1:
            raise ParamError(f"hum.mask_ratio: {self.mask_ratio!r} must be < 1 (1 would empty "
                             f"every history of the target's domain)")
        self.lora = asdict(self.lora_params())  # resolved keys go to hparams.json
        self.train = asdict(self.train_config())

    def lora_params(self):
        from recpipe.llm.lora import lora_params

        return lora_params({**LORA_DEFAULTS, **(self.lora or {})}, "hum.lora")

    def train_config(self):
        from recpipe.train.loop import train_config

        return train_config(self.train, TRAIN_DEFAULTS, "hum.train")

    def lr_lambda(self, epochs: int):
        """lr factor at fractional epoch e: linear warm-up over `warmup` of all epochs, then
        linear decay to 0 at the last (the reference's get_linear_schedule_with_warmup)."""
        warm = max(self.warmup * epochs, 1e-9)

        def f(e: float) -> float:
            if e < warm:
                return e / warm
            return max(0.0, (epochs - e) / max(epochs - warm, 1e-9))
        return f
