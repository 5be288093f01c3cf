"""Pickle-free training checkpoints: tensors in safetensors, everything else in JSON.

A checkpoint holds the model, the optimiser state, the best model so far, RNG states and the
training history, so an interrupted run resumes where it stopped and ends exactly as an
uninterrupted one would. Written atomically (temporary names, then rename).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from recpipe.io import atomic_path


def _flat_optimizer(opt: torch.optim.Optimizer) -> tuple[dict, dict]:
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


def save(path: str | Path, model, opt, best_state: dict | None, meta: dict, rng: dict) -> None:
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if best_state is not None:
        tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in best_state.items()})
    opt_t, opt_meta = _flat_optimizer(opt)
    tensors.update(opt_t)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # dropout/noise drawn on the GPU
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    with atomic_path(path.with_suffix(".safetensors")) as tmp:
        save_file(tensors, str(tmp))
    doc = {"meta": meta, "optimizer": opt_meta, "rng": rng, "has_best": best_state is not None}
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(doc))


def exists(path: str | Path) -> bool:
    path = Path(path)
    return path.with_suffix(".json").exists() and path.with_suffix(".safetensors").exists()


def signature(path: str | Path) -> str | None:
    """The configuration signature a checkpoint was written with."""
    return json.loads(Path(path).with_suffix(".json").read_text())["meta"].get("signature")


def load(path: str | Path, model, opt, device="cpu") -> tuple[dict | None, dict, dict]:
    """Restore model and optimiser in place; return (best_state, meta, rng)."""
    from safetensors.torch import load_file

    path = Path(path)
    doc = json.loads(path.with_suffix(".json").read_text())
    t = load_file(str(path.with_suffix(".safetensors")), device=str(device))
    model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
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


def fingerprint(*parts) -> str:
    """What a checkpoint may only be resumed under: the run's configs (dataclasses), its split
    (SplitData: train and valid, which drive training and selection), arrays (the semantic
    tables) and the code that trains and evaluates. A change to any of them, a bug fix in a
    backbone included, starts training afresh instead of continuing stale state."""
    h = hashlib.sha256(code_digest("graph", "eval").encode())
    for x in parts:
        if dataclasses.is_dataclass(x):
            h.update(repr(dataclasses.asdict(x)).encode())
        elif hasattr(x, "train") and hasattr(x, "valid"):
            for m in (x.train, x.valid):
                h.update(m.indptr.tobytes() + m.indices.tobytes())
        elif isinstance(x, np.ndarray):
            h.update(repr(x.shape).encode() + np.ascontiguousarray(x).tobytes())
        else:
            h.update(repr(x).encode())
    return h.hexdigest()[:16]
