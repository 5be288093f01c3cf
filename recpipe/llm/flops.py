"""FLOPs of a causal-LM training step, and model FLOPs utilisation (MFU).

Per token of a sequence of T tokens through a decoder with N matmul parameters, L layers and
width d (the PaLM appendix B count, matmuls only):

    forward                      2N + 4 L d T        (weights; attention scores QK^T and AV)
    backward, activations        2N + 8 L d T        (every layer passes gradients down)
    backward, weight gradients   2 N_trainable       (only what trains: LoRA + new rows)

so full fine-tuning is the familiar 6N + 12 L d T, and LoRA on a frozen backbone about 4N.
MFU = achieved FLOP/s / the device's peak: the datasheet's dense bf16 (or fp32) figure for
known GPUs, or, on a CPU, a measured float32 matmul peak (`cpu_peak`), stated as such.
"""

from __future__ import annotations

import time

# dense (no sparsity) tensor-core peaks, FLOP/s, from the vendors' datasheets (SXM parts)
GPU_PEAK = {
    "H200": {"bfloat16": 989e12, "float32": 67e12},
    "H100": {"bfloat16": 989e12, "float32": 67e12},
    "A100": {"bfloat16": 312e12, "float32": 19.5e12},
    "L40S": {"bfloat16": 362e12, "float32": 91.6e12},
    "L4": {"bfloat16": 121e12, "float32": 30.3e12},
    "A10": {"bfloat16": 125e12, "float32": 31.2e12},
}


def matmul_params(model) -> tuple[int, int]:
    """(N, N_trainable): the parameters a token's matmuls use. The input embedding is a lookup,
    not a matmul, so it is left out unless it is also the (tied) output head; norms and biases
    stay in (under 0.1% of N)."""
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    tied = head is not None and head.weight.data_ptr() == emb.data_ptr()
    n = n_train = 0
    for p in model.parameters():
        if p.data_ptr() == emb.data_ptr() and not tied:
            continue
        n += p.numel()
        n_train += p.numel() if p.requires_grad else 0
    return n, n_train


def train_flops_per_token(model, seq_len: int, head: bool = True) -> float:
    """FLOPs to train on one token of a seq_len-token sequence (module docstring); head=False
    for a model that reads hidden states and never runs the vocabulary head (HeLLM, HUM)."""
    cfg = model.config
    layers = getattr(cfg, "num_hidden_layers", None) or cfg.n_layer
    width = getattr(cfg, "hidden_size", None) or cfg.n_embd
    n, n_train = matmul_params(model)
    out = model.get_output_embeddings()
    if not head and out is not None:  # counted once by matmul_params, tied or not
        n -= out.weight.numel()
        n_train -= out.weight.numel() if out.weight.requires_grad else 0
    return 4 * n + 2 * n_train + 12 * layers * width * seq_len


def cpu_peak(seconds: float = 0.3, size: int = 1024) -> float:
    """Measured float32 matmul FLOP/s on this CPU with torch's current thread count."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        a @ b
        n += 1
    return 2 * size**3 * n / (time.perf_counter() - t)


def peak_flops(device: str, dtype: str = "bfloat16") -> tuple[float | None, str]:
    """(peak FLOP/s, where it comes from) for `device`; (None, why) when unknown."""
    import torch

    if str(device).startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
        for key, peaks in GPU_PEAK.items():
            if key in name:
                return peaks.get(dtype, peaks["float32"]), f"{key} datasheet, dense {dtype}"
        return None, f"no datasheet peak for {name}"
    if str(device) == "cpu":
        return cpu_peak(), "measured float32 matmul peak of this CPU"
    return None, f"no peak for device {device}"


def mfu(tokens_per_s: float, flops_per_token: float, peak: float | None) -> float | None:
    return tokens_per_s * flops_per_token / peak if peak else None
