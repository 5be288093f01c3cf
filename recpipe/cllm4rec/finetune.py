"""CLLM4Rec finetuning and prediction: rec <-> content epochs from the pretrained sets, the
epoch with the best validation R@20 + R@40 + N@100 kept (cllm4rec.md 5), then valid and test
scored once by the one evaluator from each user's prompt of all training items (section 6).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from recpipe.cllm4rec.run import Setup, _throughput, build
from recpipe.train.seeds import subsample

SELECTION_KS = (20, 40, 100)  # the reference's R@20 + R@40 + N@100


class CLLM4RecScorer:
    """Scores (B, n_items) from each user's prompt of all training items (ascending ids in
    clean mode; a seeded shuffle in parity, where the reference's shuffle is unseeded)."""

    def __init__(self, model, s: Setup, batch_size: int):
        self.model, self.s, self.batch_size = model, s, batch_size

    def __call__(self, users: np.ndarray):
        import torch

        from recpipe.cllm4rec.data import pad, rec_prompt

        s, train = self.s, self.s.data.train
        rng = np.random.default_rng([s.seed, 3])
        rows = []
        for u in np.asarray(users).tolist():
            items = np.sort(train.indices[train.indptr[u]:train.indptr[u + 1]]).astype(np.int64)
            if s.p.mode == "parity":
                items = rng.permutation(items)
            rows.append(rec_prompt(s.ids, s.pieces, u, items, s.p.max_tokens,
                                   keep_suffix=s.p.mode == "clean"))
        was = self.model.training
        self.model.eval()
        out = []
        try:
            with torch.no_grad():
                for a in range(0, len(rows), self.batch_size):
                    ids, mask = (torch.from_numpy(x).to(s.device)
                                 for x in pad(rows[a:a + self.batch_size]))
                    out.append(self.model.scores(ids, mask).float().cpu())
        finally:
            self.model.train(was)
        return torch.cat(out)


def finetune(s: Setup, tables: dict, eval_cfg, *, ckpt=None, live=None, signature: str = "",
             progress: bool = True) -> dict:
    """Finetune the rec set from pretrained `tables`; {"valid", "test", "model", "fit",
    "eval_users", "best_epoch"} with valid and test at the kept (best validated) state; None on
    a launcher's process other than 0 (it trains only)."""
    from recpipe.cllm4rec.batches import FinetuneBatches
    from recpipe.eval.evaluator import evaluate
    from recpipe.llm.launch import is_worker
    from recpipe.train.loop import fit

    fp = s.p.finetune_params()
    tc = fp.train_config()
    model = build(s, tables)
    docs = s.docs if fp.content else []
    batches = FinetuneBatches(s.users, docs, s.ids, s.pieces, s.data.n_items, tc.batch_size,
                              s.seed, mask_ratio=fp.mask_ratio,
                              target="masked" if s.p.mode == "clean" else "all",
                              max_tokens=s.p.max_tokens, keep_suffix=s.p.mode == "clean",
                              group=s.p.group_by_length)
    eval_users = subsample(s.data.n_users, s.p.eval_users, s.seed, 2)
    scorer = CLLM4RecScorer(model, s, s.p.eval_batch_size)
    # selection reads R@20, R@40 and N@100 whatever the preset's cut-offs (hellm: 5, 10, 20)
    valid_cfg = replace(eval_cfg, ks=sorted({*eval_cfg.ks, *SELECTION_KS}))
    _throughput(model, s)
    res = fit(model, batches, tc, device=s.device, ckpt=ckpt, live=live, signature=signature,
              progress=progress, desc="cllm4rec finetune",
              validate=lambda m: evaluate(scorer, s.data, valid_cfg, "valid", eval_users).summary)
    if is_worker():  # under a launcher: process 0 evaluates and writes
        return None
    return {"valid": evaluate(scorer, s.data, eval_cfg, "valid", eval_users),
            "test": evaluate(scorer, s.data, eval_cfg, "test", eval_users),
            "model": model, "fit": res, "best_epoch": res.best_epoch, "eval_users": eval_users}
