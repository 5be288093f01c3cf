"""Pickle-free, single-file, atomic training checkpoints, and the fingerprint that guards them.

One `<path>.safetensors` file holds the model, the optimiser state, the best state so far and
the torch RNG states as tensors; everything else (the loop's counters and history, numpy
generator states, the optimiser's param groups) travels as JSON in the file's metadata. One
file written to a temporary name and renamed is atomic: a run killed at any instant leaves
either the previous checkpoint or the new one, never a torn pair.

A checkpoint is resumed only under the `fingerprint` it was written with (configs, split,
arrays, code), so a persisted checkpoint of another configuration is never continued.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from recpipe.io import atomic_path

SUFFIX = ".safetensors"


def _file(path: str | Path) -> Path:
    return Path(path).with_suffix(SUFFIX)


def _flat_optimizer(opt) -> tuple[dict, dict]:
    """Optimiser state -> (tensors "opt.<pid>.<key>", JSON-able rest)."""
    import torch

    sd = opt.state_dict()
    tensors, meta = {}, {"param_groups": sd["param_groups"], "state": {}}
    for pid, st in sd["state"].items():
        meta["state"][str(pid)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{pid}.{k}"] = v.detach().cpu().contiguous()
                meta["state"][str(pid)][k] = "tensor"
            else:
                meta["state"][str(pid)][k] = v
    return tensors, meta


def model_state(model) -> dict:
    """What a checkpoint and the kept best state hold of a model: its whole state_dict, or, for
    a model with `trainable_state_only = True` (an LLM with LoRA: 2.5M trainable of 135M), only
    the parameters that train (and the buffers named by `state_buffers`); the frozen rest is
    rebuilt from the backbone on load."""
    if getattr(model, "trainable_state_only", False):
        out = {k: p for k, p in model.named_parameters() if p.requires_grad}
        return {**out, **_kept_buffers(model)}
    return model.state_dict()


def _kept_buffers(model) -> dict:
    """Buffers whose names start with one of `model.state_buffers` (state that is not a
    parameter but must survive a resume: HUM's domain weights)."""
    keep = tuple(getattr(model, "state_buffers", ()))
    return {k: b for k, b in model.named_buffers() if keep and k.startswith(keep)}


def load_model_state(model, state: dict) -> None:
    """model_state's inverse: a partial state must cover exactly the trainable parameters."""
    if not getattr(model, "trainable_state_only", False):
        model.load_state_dict(state)
        return
    want = {k for k, p in model.named_parameters() if p.requires_grad} | set(_kept_buffers(model))
    if set(state) != want:
        raise ValueError(f"checkpoint holds {len(state)} tensors, the model trains {len(want)}: "
                         f"e.g. {sorted(set(state) ^ want)[:3]}")
    model.load_state_dict(state, strict=False)


def save(path: str | Path, model, opt, best_state: dict | None, meta: dict, rng: dict) -> None:
    """Write the checkpoint atomically. `meta`, `rng`: JSON-able (loop state, numpy RNG states)."""
    import torch
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model_state(model).items()}
    if best_state is not None:
        tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in best_state.items()})
    opt_t, opt_meta = _flat_optimizer(opt)
    tensors.update(opt_t)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # dropout/noise drawn on the GPU
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    doc = {"meta": meta, "optimizer": opt_meta, "rng": rng, "has_best": best_state is not None}
    with atomic_path(_file(path)) as tmp:
        save_file(tensors, str(tmp), metadata={"recpipe": json.dumps(doc)})


def exists(path: str | Path) -> bool:
    return _file(path).exists()


def _doc(path: str | Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(_file(path)), framework="pt") as f:
        return json.loads((f.metadata() or {})["recpipe"])


def signature(path: str | Path) -> str | None:
    """The fingerprint a checkpoint was written with (None: unreadable, so never resumed)."""
    try:
        return _doc(path)["meta"].get("signature")
    except (OSError, KeyError, ValueError):
        return None


def load(path: str | Path, model, opt, device="cpu") -> tuple[dict | None, dict, dict]:
    """Restore model, optimiser and torch RNGs in place; return (best_state, meta, rng)."""
    import torch
    from safetensors.torch import load_file

    doc = _doc(path)
    t = load_file(str(_file(path)), device=str(device))
    load_model_state(model, {k[6:]: v for k, v in t.items() if k.startswith("model.")})
    best = {k[5:]: v for k, v in t.items() if k.startswith("best.")} if doc["has_best"] else None
    state = {}
    for pid, st in doc["optimizer"]["state"].items():
        state[int(pid)] = {k: (t[f"opt.{pid}.{k}"] if v == "tensor" else v) for k, v in st.items()}
    opt.load_state_dict({"state": state, "param_groups": doc["optimizer"]["param_groups"]})
    torch.set_rng_state(t["rng.torch"].cpu())
    if "rng.cuda" in t and torch.cuda.is_available():
        torch.cuda.set_rng_state(t["rng.cuda"].cpu())
    return best, doc["meta"], doc["rng"]


def code_digest(*packages: str, root: Path | None = None) -> str:
    """Hash of the Python sources of sub-packages of `root` (default: recpipe), e.g. "graph"."""
    root = Path(__file__).resolve().parents[1] if root is None else Path(root)
    h = hashlib.sha256()
    for pkg in packages:
        for f in sorted((root / pkg).rglob("*.py")):
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def fingerprint(*parts, code: tuple[str, ...] = ("train", "eval")) -> str:
    """What a checkpoint may only be resumed under: the run's configs (dataclasses), its split
    (anything with CSR `train` and `valid`: they drive training and selection), arrays (e.g.
    semantic tables), other values by repr, and the sources of the recpipe sub-packages in
    `code` (the caller adds its model's package, e.g. "graph"). A change to any of them, a bug
    fix in a backbone included, starts training afresh instead of continuing stale state."""
    h = hashlib.sha256(code_digest(*code).encode())
    for x in parts:
        # the split first: it is a dataclass too, whose repr would only show its matrices' shapes
        if hasattr(getattr(x, "train", None), "indptr") and hasattr(getattr(x, "valid", None), "indptr"):
            for m in (x.train, x.valid):
                h.update(m.indptr.tobytes() + m.indices.tobytes())
        elif dataclasses.is_dataclass(x):
            h.update(repr(dataclasses.asdict(x)).encode())
        elif isinstance(x, np.ndarray):
            h.update(repr(x.shape).encode() + np.ascontiguousarray(x).tobytes())
        else:
            h.update(repr(x).encode())
    return h.hexdigest()[:16]
