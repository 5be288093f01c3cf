"""The `cllm4rec` section of params.yaml: backbone, ID tokens, documents, regulariser, and the
`pretrain:` and `finetune:` subsections, each with the training core's `train:` keys.

Defaults are the reference's (cllm4rec.md section 7: yaochenzhu/LLM4Rec `scripts/run.sh`,
`src/training.py`, `src/finetuning.py`) where they are not a hardware choice: lambda_V 1, Adam
lr 1e-3 (pretraining) and 1e-4 (finetuning), batch 20, 10 content warm-up epochs then 100
alternating ones, 150 finetuning epochs selected on validation R@20 + R@40 + N@100, 20% of each
user's items masked. The backbone is the offline SmolLM2-135M (the paper: GPT-2 small, which
needs the hub); documents are cut to 128 tokens (the single-GPU profile, section 10).

`mode` switches the reference's quirks (cllm4rec.md section 9) as one unit:
    clean   items reordered at random in every collaborative sample and epoch; the finetuning
            target is the masked items only; the first text token is predicted from the last
            prompt token; the regulariser is lambda_V x the mean squared distance over the
            unique user/item rows of the batch (a Gaussian prior per embedding); prompts that
            are too long drop items, never the "will interact with" suffix
    parity  ascending item ids; the target is every training item (visible ones included); the
            first text token is never a target; lambda_V x the squared distance summed over
            batch x tokens x hidden; long prompts are cut at the end
Both modes are seeded, shuffle their training batches and select finetuning on validation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from recpipe.config import ParamError, choice, parse, rng

# recpipe.train.loop.TrainConfig overrides per phase. Pretraining has no validation (the
# reference keeps embeddings by training loss): the last state is the result. Finetuning
# validates every epoch and keeps the best R@20 + R@40 + N@100, with no early stop.
PRETRAIN_TRAIN = {"lr": 1e-3, "batch_size": 20, "epochs": 110, "eval_every": 1, "patience": 0}
FINETUNE_TRAIN = {"lr": 1e-4, "batch_size": 20, "epochs": 150, "eval_every": 1, "patience": 0,
                  "select_metric": "recall@20+recall@40+ndcg@100"}


@dataclass
class PretrainParams:
    # content-only epochs first, without the regulariser (reference 10 of 110); every later
    # epoch is one collaborative epoch then one content epoch, each regularised to the other
    content_warmup: int = field(default=10, metadata=rng(0))
    # train the content LM at all; false = collaborative-only pretraining (the paper's ablation)
    content: bool = True
    # initial content embeddings: random (N(0, 0.02), the reference) | mean (each ID token
    # starts at the mean token embedding of its documents: the author's suggestion)
    content_init: str = field(default="random", metadata=choice("random", "mean"))
    # the training loop's keys (recpipe.train.loop.TrainConfig) over PRETRAIN_TRAIN
    train: dict = field(default_factory=dict)

    def train_config(self):
        from recpipe.train.loop import train_config

        return train_config(self.train, PRETRAIN_TRAIN, "cllm4rec.pretrain.train")


@dataclass
class FinetuneParams:
    # fraction of each user's training items hidden from the prompt (at least one)
    mask_ratio: float = field(default=0.2, metadata=rng(0.0, 1.0, lo_open=True))
    # a content epoch (regularised toward the rec set) after each rec epoch, as the reference;
    # false: rec epochs only, without the regulariser
    content: bool = True
    # the training loop's keys over FINETUNE_TRAIN
    train: dict = field(default_factory=dict)

    def train_config(self):
        from recpipe.train.loop import train_config

        return train_config(self.train, FINETUNE_TRAIN, "cllm4rec.finetune.train")


@dataclass
class CLLM4RecParams:
    # the causal LM: smollm2-135m (real, offline) | tiny-gpt2 | tiny-llama | tiny-qwen2 (random,
    # tests only) | a Hugging Face id or local folder (the paper: openai-community/gpt2)
    model: str = "smollm2-135m"
    # auto (bf16 on a GPU that supports it, else float32) | float32 | bfloat16 | float16; the
    # ID embeddings always train in float32
    dtype: str = "auto"
    attn: str = "sdpa"
    # clean | parity (module docstring)
    mode: str = field(default="clean", metadata=choice("clean", "parity"))
    # weight of the mutual regulariser between the two embedding sets (reference lambda_V 1)
    lambda_v: float = field(default=1.0, metadata=rng(0.0))
    # tokens kept of each review (reference up to 1024 in all; the single-GPU profile 128)
    doc_tokens: int = field(default=128, metadata=rng(1))
    # tokens of a whole sequence (prompt and text, or a finetuning prompt)
    max_tokens: int = field(default=1024, metadata=rng(8))
    # texts when a dataset has no reviews: item (each training pair's item title and
    # description) | none (the content LM is off; the collaborative LM still runs)
    fallback: str = field(default="item", metadata=choice("item", "none"))
    # training users, drawn with the seed (their pairs and documents only); 0 = all
    users: int = field(default=0, metadata=rng(0))
    # evaluated users (valid and test), drawn with the seed; 0 = all
    eval_users: int = field(default=0, metadata=rng(0))
    # training batches of users (and of documents) with similar lengths, drawn at random
    # within windows of 50 batches: less padding, the same epochs (recpipe.cllm4rec.batches);
    # false = plain random batches, as the reference
    group_by_length: bool = True
    # users per forward pass when scoring
    eval_batch_size: int = field(default=32, metadata=rng(1))
    # chunk of positions per item/vocabulary cross-entropy block (bounds the logits' memory)
    ce_chunk: int = field(default=1024, metadata=rng(1))
    # auto (cuda when present) | cpu | cuda | cuda:N | mps
    device: str = "auto"
    # CPU threads for torch; 0 = torch's default
    threads: int = field(default=0, metadata=rng(0))
    # processes that train data-parallel (torchrun: one per GPU, gloo on CPUs); process 0
    # validates, evaluates and writes. 1 = this process alone
    processes: int = field(default=1, metadata=rng(1))
    # several seeds in one run (each pretrained and finetuned; mean and _std in the metrics);
    # [] = the top-level `seed`
    seeds: list = field(default_factory=list)
    pretrain: dict = field(default_factory=dict)
    finetune: dict = field(default_factory=dict)

    def validate(self) -> None:
        from recpipe.llm.backbone import ATTN, check_name
        from recpipe.train.device import check_device

        check_name(self.model, "cllm4rec.model")
        check_device(self.device, "cllm4rec.device")
        if self.attn not in ATTN:
            raise ParamError(f"cllm4rec.attn: {self.attn!r} is not allowed; choose "
                             f"{', '.join(ATTN)}")
        pre, fine = self.pretrain_params(), self.finetune_params()
        if fine.mask_ratio >= 1:
            raise ParamError(f"cllm4rec.finetune.mask_ratio: {fine.mask_ratio!r} must be < 1 "
                             f"(some items stay in the prompt)")
        # resolved keys go to hparams.json
        self.pretrain = {**asdict(pre), "train": asdict(pre.train_config())}
        self.finetune = {**asdict(fine), "train": asdict(fine.train_config())}

    def pretrain_params(self) -> PretrainParams:
        return parse(PretrainParams, self.pretrain, prefix="cllm4rec.pretrain")

    def finetune_params(self) -> FinetuneParams:
        return parse(FinetuneParams, self.finetune, prefix="cllm4rec.finetune")
