"""peft LoRA from params: adapters by role, new-token rows, adapters saved as safetensors.

    lora = lora_params({"r": 16, "targets": "mlp"}, key="hellm.lora")
    model = apply_lora(model, lora, trainable_token_indices=range(n_old, n_new))
    save_adapter(model, "models/hellm/adapter")
    model = load_adapter(base, "models/hellm/adapter")   # base resized to n_new first

- targets: a role, mapped per architecture (`ROLES`, by `config.model_type`): `attention`,
  `mlp`, or `all-linear` (peft's rule: every Linear/Conv1D but the output head, any model); or
  an explicit list of module-name suffixes (`[gate_proj, up_proj]`). Every name must match.
- New tokens (ID tokens appended to the vocab) train through peft's `trainable_token_indices`:
  only their rows, stored in the adapter, never the whole embedding. A tied output head
  follows them (peft ties the two wrappers); on an untied model the head's rows are listed too.
- The adapter holds the LoRA matrices and those rows, not the base: before `load_adapter`,
  resize the base exactly as before training (`resize_token_embeddings(n)`). The trained rows'
  values come from the adapter (peft stores values, not deltas), so the resize init of those
  rows does not matter; added rows that were *not* trained must be rebuilt identically.
"""

from __future__ import annotations

import warnings

from dataclasses import asdict, dataclass, field
from pathlib import Path

from recpipe.config import ParamError, choice, parse, rng

_LLAMA = {"attention": ["q_proj", "k_proj", "v_proj", "o_proj"],
          "mlp": ["gate_proj", "up_proj", "down_proj"]}
# role -> module-name suffixes, per `config.model_type`
ROLES = {t: _LLAMA for t in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3",
                             "gemma3_text")}
ROLES["gpt2"] = {"attention": ["attn.c_attn", "attn.c_proj"], "mlp": ["mlp.c_fc", "mlp.c_proj"]}
# BERT-style encoders (MiniLM): self-attention q/k/v and its output projection
ROLES["bert"] = {"attention": ["attention.self.query", "attention.self.key",
                               "attention.self.value", "attention.output.dense"],
                 "mlp": ["intermediate.dense"]}
# GPT-2's projections are Conv1D, which store the weight transposed (in x out)
_CONV1D = {"gpt2"}
TARGETS = ("attention", "mlp", "all-linear")
ADAPTER_FILE = "adapter_model.safetensors"


@dataclass
class LoraParams:
    # rank of the update B @ A
    r: int = field(default=8, metadata=rng(1))
    # scale: the update is multiplied by alpha / r
    alpha: int = field(default=16, metadata=rng(1))
    # dropout on the LoRA branch's input, in [0, 1)
    dropout: float = field(default=0.05, metadata=rng(0.0, 1.0))
    # attention | mlp | all-linear (every linear layer but the head) | a list of module names
    targets: str | list[str] = "all-linear"
    # biases trained: none | all | lora_only (those of the LoRA-wrapped layers)
    bias: str = field(default="none", metadata=choice("none", "all", "lora_only"))

    def check(self, key: str = "lora") -> LoraParams:
        """Every field checked, errors named `<key>.<field>` (code-built params skip parse)."""
        # not named `validate`: parse() calls that without the key, and here we call parse
        parse(LoraParams, asdict(self), prefix=key)
        if self.dropout >= 1:
            raise ParamError(f"{key}.dropout: {self.dropout!r} must be < 1")
        t = self.targets
        if isinstance(t, str) and t not in TARGETS:
            raise ParamError(f"{key}.targets: {t!r} is not allowed; choose attention, mlp, "
                             f"all-linear or a list of module names")
        if isinstance(t, list) and (not t or not all(isinstance(n, str) and n for n in t)):
            raise ParamError(f"{key}.targets: {t!r} must be a non-empty list of module names")
        return self


def lora_params(data: dict | None, key: str = "lora") -> LoraParams:
    """A params.yaml mapping (e.g. the `hellm.lora` keys) as checked LoraParams."""
    return parse(LoraParams, data, prefix=key).check(key)


def _matches(model, name: str) -> bool:
    # peft's rule for a list of names: the full module name or a dotted suffix of it
    return any(n == name or n.endswith("." + name) for n, _ in model.named_modules())


def resolve_targets(model, targets: str | list[str], key: str = "lora") -> str | list[str]:
    """peft's target_modules for `targets` on `model`; every name must match a module."""
    if targets == "all-linear":
        return targets
    arch = getattr(model.config, "model_type", None)
    if isinstance(targets, str):
        if arch not in ROLES:
            raise ParamError(f"{key}.targets: role {targets!r} is not mapped for architecture "
                             f"{arch!r} (mapped: {', '.join(sorted(ROLES))}); use all-linear "
                             f"or a list of module names")
        targets = ROLES[arch][targets]
    missing = [t for t in targets if not _matches(model, t)]
    if missing:
        raise ParamError(f"{key}.targets: {', '.join(missing)} match no module of this "
                         f"{arch or type(model).__name__} model")
    return list(targets)


def _name(model, module) -> str:
    return next(n for n, m in model.named_modules() if m is module)


def apply_lora(model, params: LoraParams, trainable_token_indices=None, modules_to_save=None,
               key: str = "lora", task_type: str = "CAUSAL_LM"):
    """`model` (changed in place) wrapped as a PeftModel: base frozen, LoRA on the targets,
    the rows `trainable_token_indices` of the input embedding (and of its head) trainable,
    the modules `modules_to_save` (e.g. a head) trained in full and saved whole; `task_type`
    FEATURE_EXTRACTION for an encoder without a head (HUM on MiniLM). A tied
    head in modules_to_save trains a copy: the input table stays frozen (peft warns)."""
    from peft import LoraConfig, get_peft_model

    params.check(key)
    modules_to_save = [modules_to_save] if isinstance(modules_to_save, str) else modules_to_save
    target_modules = resolve_targets(model, params.targets, key)
    tokens = None
    if trainable_token_indices is not None:
        tokens = sorted({int(i) for i in trainable_token_indices})
        emb, head = model.get_input_embeddings(), model.get_output_embeddings()
        n = emb.num_embeddings
        if not tokens or tokens[0] < 0 or tokens[-1] >= n:
            raise ValueError(f"trainable_token_indices must be non-empty and within the vocab "
                             f"(0..{n - 1}); resize_token_embeddings before adding rows")
        tied = head is not None and head.weight is emb.weight
        if head is not None and not tied:  # untied: name both tables, or the head rows stay put
            tokens = {_name(model, emb): tokens, _name(model, head): tokens}
        elif tied and any(_name(model, head) == m or _name(model, head).endswith("." + m)
                          for m in modules_to_save or []):
            # peft wraps the head's full copy in a token wrapper and the forward then fails
            raise ValueError("modules_to_save holds the output head, which is tied to the input "
                             "embeddings: with trainable_token_indices peft cannot train both")
    for m in modules_to_save or []:
        if not _matches(model, m):
            raise ValueError(f"modules_to_save: {m!r} matches no module of the model")
    arch = getattr(model.config, "model_type", None)
    cfg = LoraConfig(r=params.r, lora_alpha=params.alpha, lora_dropout=params.dropout,
                     target_modules=target_modules, bias=params.bias, task_type=task_type,
                     fan_in_fan_out=arch in _CONV1D, trainable_token_indices=tokens,
                     modules_to_save=list(modules_to_save) if modules_to_save else None)
    with warnings.catch_warnings():  # peft reads the attribute transformers 5 renamed
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
        return get_peft_model(model, cfg)


def trainable_summary(model) -> dict:
    """Trainable and total parameters (tied weights counted once) and the trainable share."""
    params = list(model.parameters())  # deduplicated: a tied table is one Parameter
    trainable = sum(p.numel() for p in params if p.requires_grad)
    total = sum(p.numel() for p in params)
    return {"trainable": trainable, "total": total,
            "percent": round(100.0 * trainable / max(total, 1), 4)}


def save_adapter(model, folder: str | Path) -> Path:
    """Write the adapter (peft layout, safetensors) into `folder`; returns the weights file."""
    folder = Path(folder)
    # save_embedding_layers=False: on "auto" peft saves the whole embedding whenever the vocab
    # differs from the base's config on disk, i.e. always after adding tokens; the trained
    # rows are in the adapter already, and the base is resized by the caller on load
    model.save_pretrained(folder, safe_serialization=True, save_embedding_layers=False)
    weights = folder / ADAPTER_FILE
    if not weights.is_file():
        raise RuntimeError(f"peft wrote no {ADAPTER_FILE} in {folder}")
    return weights


def load_adapter(base_model, folder: str | Path, trainable: bool = False):
    """`base_model` (resized as it was for training) with the adapter in `folder` on top;
    frozen and in eval mode unless `trainable` (to resume training)."""
    import json

    from peft import PeftModel

    folder = Path(folder)
    if not (folder / ADAPTER_FILE).is_file() or not (folder / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{folder}: no {ADAPTER_FILE} and adapter_config.json; write "
                                f"it with save_adapter")
    rows = json.loads((folder / "adapter_config.json").read_text()).get("trainable_token_indices")
    if isinstance(rows, dict):
        rows = [i for v in rows.values() for i in v]
    n = base_model.get_input_embeddings().num_embeddings
    if rows and max(rows) >= n:
        raise ValueError(f"{folder}: the adapter trains token rows up to {max(rows)} but the base "
                         f"has {n}; resize_token_embeddings as before training, then load")
    return PeftModel.from_pretrained(base_model, folder, is_trainable=trainable)
