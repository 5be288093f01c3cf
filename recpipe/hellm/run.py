"""One HeLLM run, composed the same way wherever it happens (the `hellm` stage, tests):
load the stage-1 exports (`exports`), build the backbone, LoRA and the HeLLM module (`build`),
train through recpipe.train.loop.fit with the reference's warm-up + cosine schedule and
validation selection, then evaluate valid and test once at the kept state (`fit`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recpipe.config import ParamError
from recpipe.train.seeds import subsample


class ExportError(ValueError):
    """A stage-1 export that is missing or does not fit the split."""


def exports(mmhcl_dir: Path, sasrec_dir: Path, n_items: int, seed: int | None = None):
    """(MMHCL items [n_items, d1], SASRec items [n_items + 1, d2]) as float32. A folder with a
    `seed<k>` subfolder (a several-seed stage-1 run) gives seed k's export, else the top one's."""
    out = []
    for folder, rows, what in ((mmhcl_dir, n_items, "MMHCL"), (sasrec_dir, n_items + 1, "SASRec")):
        folder = Path(folder)
        if seed is not None and (folder / f"seed{seed}" / "item_emb.npy").is_file():
            folder = folder / f"seed{seed}"
        path = folder / "item_emb.npy"
        if not path.is_file():
            raise ExportError(f"{path}: no {what} item export; run its stage first")
        a = np.load(path, allow_pickle=False).astype(np.float32, copy=False)
        if a.ndim != 2 or a.shape[0] != rows:
            raise ExportError(f"{path}: {what} export has shape {list(a.shape)}, expected "
                             f"[{rows}, d] for the split's {n_items:,} items"
                             + (" (row 0 = padding)" if what == "SASRec" else ""))
        out.append(a)
    return out[0], out[1]


def build(p, mmhcl, sasrec, seed: int, device: str = "cpu"):
    """(model, AdamW) under params `p` (HeLLMParams) for the items of the exports `mmhcl`
    [n_items, d1] and `sasrec` [n_items + 1, d2]: the backbone frozen, LoRA on it, the
    projector, prefix and head seeded."""
    import torch

    from recpipe.hellm.data import prompt_ids
    from recpipe.hellm.model import HeLLM
    from recpipe.llm.backbone import load_backbone
    from recpipe.llm.lora import apply_lora
    from recpipe.train.seeds import seed_everything

    lm, tok = load_backbone(p.model, device=device, dtype=p.dtype, attn=p.attn,
                            gradient_checkpointing=p.gradient_checkpointing, seed=seed, key="hellm")
    if p.gradient_checkpointing and p.prefix_len and lm.config.model_type == "gpt2":
        raise ParamError("hellm.gradient_checkpointing: GPT-2 drops the prefix cache when it "
                         "recomputes activations; set it false or hellm.prefix_len=0")
    seed_everything(seed)  # LoRA's A init draws from it
    lm = apply_lora(lm, p.lora_params(), key="hellm.lora")
    seed_everything(seed)
    instruct, response = prompt_ids(tok, double_bos=p.mode == "parity")
    model = HeLLM(lm, instruct, response, mmhcl, sasrec, prefix_len=p.prefix_len,
                  prefix_dropout=p.prefix_dropout, mask_padding=p.mode == "clean",
                  gram_mean=p.gram_mean, item_head=p.item_head)
    model.to(device)  # the new parts in float32 (the reference casts its trainables to fp32)
    tc = p.train_config()
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=tc.lr, betas=tuple(p.betas), weight_decay=p.weight_decay)
    return model, opt


class HeLLMScorer:
    """Scores (B, n_items) of `model` after each user's history for `part`, computed
    `batch_size` users per forward (left-padded, masked), on the model's device."""

    def __init__(self, model, data, part: str, max_len: int, batch_size: int, device):
        self.model, self.data, self.part = model, data, part
        self.max_len, self.batch_size, self.device = max_len, batch_size, device

    def device_scores(self, users: np.ndarray):
        import torch

        from recpipe.hellm.data import histories

        hist = torch.from_numpy(histories(self.data, users, self.part, self.max_len))
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                return torch.cat([self.model.scores(h.to(self.device)).float()
                                  for h in hist.split(self.batch_size)])
        finally:
            self.model.train(was)

    def __call__(self, users: np.ndarray):
        return self.device_scores(users).cpu()


def fit(data, p, eval_cfg, seed: int, mmhcl, sasrec, *, device: str = "cpu",
        ckpt: str | Path | None = None, live=None, signature: str = "",
        progress: bool = True) -> dict:
    """Train one HeLLM on `data` (DataView); return {"valid", "test": EvalResult at the kept
    state, "best_epoch", "model", "fit", "users", "eval_users"}, or None on a launcher's
    process other than 0 (it trains only)."""
    from recpipe.eval.evaluator import evaluate
    from recpipe.hellm.data import SampleBatches
    from recpipe.llm.flops import peak_flops, train_flops_per_token
    from recpipe.llm.launch import is_worker
    from recpipe.train.loop import fit as loop_fit

    model, opt = build(p, mmhcl, sasrec, seed, device)
    tc = p.train_config()
    users = subsample(data.n_users, p.users, seed, 1)
    eval_users = subsample(data.n_users, p.eval_users, seed, 2)
    batches = SampleBatches(data, p.max_len, tc.batch_size, seed, users)
    if not len(batches):
        raise ParamError(f"hellm: {len(batches.user)} training samples make no batch of "
                         f"hellm.train.batch_size={tc.batch_size}")
    seq = len(model.instruct) + len(model.response) + p.max_len // 2 + p.prefix_len
    model.flops_per_token = train_flops_per_token(model.lm, seq, head=False)
    model.peak_flops = peak_flops(str(device))[0]  # a CPU: its measured float32 matmul peak

    def score(part):
        return HeLLMScorer(model, data, part, p.max_len, p.eval_batch_size, device)

    valids, tests = [], []  # results of this process's validations (in order)

    def validate(m):
        if p.report_best_test_epoch:
            tests.append(evaluate(score("test"), data, eval_cfg, "test", eval_users).summary)
        valids.append(evaluate(score("valid"), data, eval_cfg, "valid", eval_users))
        return valids[-1].summary

    res = loop_fit(model, batches, tc, device=device, ckpt=ckpt, live=live, signature=signature,
                   progress=progress, desc="hellm", optimizer=opt, step_threads=p.threads,
                   lr_lambda=p.lr_lambda(tc.epochs), validate=validate)
    if is_worker():  # under a launcher: process 0 evaluates and writes
        return None
    metric = tc.select_metric.split("|")[0]
    validated = [r["epoch"] for r in res.history if f"valid/{metric}" in r]
    epochs = validated[len(validated) - len(valids):]  # those this process ran (not a resumed one's)
    # the kept state's validation, when this process ran it (an LLM pass is worth saving)
    kept = valids[epochs.index(res.best_epoch)] if res.best_epoch in epochs and valids else None
    out = {"valid": kept or evaluate(score("valid"), data, eval_cfg, "valid", eval_users),
           "test": evaluate(score("test"), data, eval_cfg, "test", eval_users),
           "best_epoch": res.best_epoch, "model": model, "fit": res,
           "samples": len(batches.user), "users": users, "eval_users": eval_users}
    if tests:  # the reference's reporting (hellm.md 6): the epoch whose *test* was best
        k = int(np.argmax([t[metric] for t in tests]))
        out["best_test"] = {"best_test_epoch": epochs[k], f"best_test/{metric}": tests[k][metric]}
    return out
