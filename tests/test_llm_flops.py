"""FLOP counts and MFU (recpipe.llm.flops), and the loop's throughput columns in dvclive."""

from __future__ import annotations

import pytest

from recpipe.llm import smollm2
from recpipe.llm.flops import GPU_PEAK, cpu_peak, matmul_params, mfu, peak_flops, \
    train_flops_per_token

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def _lora_llama():
    from recpipe.llm.backbone import load_backbone
    from recpipe.llm.lora import LoraParams, apply_lora

    model, tok = load_backbone("tiny-llama", device="cpu", seed=0)
    return apply_lora(model, LoraParams(r=4, dropout=0.0)), tok


def test_flops_per_token_follow_the_palm_count():
    from recpipe.llm.backbone import load_backbone

    full, _ = load_backbone("tiny-llama", device="cpu")  # everything trains
    n, n_train = matmul_params(full)
    assert n == n_train == sum(p.numel() for p in full.parameters())  # tied: the head counts
    assert train_flops_per_token(full, 32) == 6 * n + 12 * 2 * 64 * 32
    gpt2, _ = load_backbone("tiny-gpt2", device="cpu")
    n2, _ = matmul_params(gpt2)
    assert n2 == sum(p.numel() for p in gpt2.parameters())  # GPT-2 ties wte too
    lora, _ = _lora_llama()
    n3, t3 = matmul_params(lora)
    assert 0 < t3 < n3 / 5 and train_flops_per_token(lora, 32) == 4 * n3 + 2 * t3 + 12 * 2 * 64 * 32


def test_peaks_and_mfu():
    peak, where = peak_flops("cpu")
    assert peak > 1e8 and "measured" in where  # even 1 slow thread does > 0.1 GFLOP/s
    assert 0.5 < cpu_peak(0.1) / peak < 2
    assert GPU_PEAK["H100"]["bfloat16"] == 989e12
    assert mfu(100.0, 1e9, 1e12) == pytest.approx(0.1) and mfu(100.0, 1e9, None) is None


@pytest.mark.skipif(not smollm2.installed(), reason=f"{smollm2.WHEEL} not installed: "
                                                     f"{smollm2.INSTALL}")
def test_smollm2_counts_its_134_5m_parameters():
    from recpipe.llm.backbone import load_backbone

    m, _ = load_backbone("smollm2-135m", device="cpu")
    assert matmul_params(m)[0] == 134_515_008  # tied embeddings: the head is a matmul
    assert train_flops_per_token(m, 128) == pytest.approx(6 * 134_515_008 + 12 * 30 * 576 * 128)


def test_the_loop_logs_tokens_per_second_memory_and_mfu(tmp_path):
    import torch
    from dvclive import Live

    from recpipe.train.loop import TrainConfig, fit
    from recpipe.train.sampler import ListBatches

    model, _ = _lora_llama()
    model.loss = lambda ids: model(input_ids=ids, labels=ids).loss
    model.batch_tokens = lambda ids: int(ids.numel())
    model.flops_per_token = train_flops_per_token(model, 16)
    model.peak_flops = peak_flops("cpu")[0]
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 300, (2, 16), generator=g) for _ in range(4)]
    with Live(str(tmp_path / "live"), dvcyaml=None, save_dvc_exp=False) as live:
        res = fit(model, ListBatches(batches), TrainConfig(epochs=2, eval_every=1, lr=1e-3),
                  live=live, progress=False)
    for row in res.history:
        assert row["tokens_per_s"] == pytest.approx(4 * 32 / row["epoch_s"], rel=1e-6)
        assert row["samples_per_s"] == pytest.approx(4 * 2 / row["epoch_s"], rel=1e-6)
        assert 0 < row["mfu"] < 1 and row["peak_mem_gb"] > 0.05
    logged = {p.name for p in (tmp_path / "live" / "plots" / "metrics" / "train").iterdir()}
    assert {"loss.tsv", "tokens_per_s.tsv", "mfu.tsv", "peak_mem_gb.tsv"} <= logged
    del model.batch_tokens  # a model that does not count tokens keeps the old columns
    res = fit(model, ListBatches(batches), TrainConfig(epochs=1), progress=False)
    assert not set(res.history[0]) & {"tokens_per_s", "samples_per_s", "mfu", "peak_mem_gb"}
