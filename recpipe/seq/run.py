"""One SASRec run, composed the same way wherever it happens (the `sasrec` stage, benchmarks):
build the model, train it through recpipe.train.loop.fit on `SeqBatches` with validation
selection, then evaluate valid and test once at the kept state.

What a user-level evaluation of a sequential model means (evaluation.md 5.4 and `unified`):
the unit is the user; its scores are the model's scores after the user's sequence *before* the
evaluated part. Validation reads the training sequence (LOO: items[:-2] -> items[-2]); test
reads training + validation (items[:-1] -> items[-1]), so the validation item is part of the
test input, as in HeLLM. The masks (history exclusion or not) are the eval preset's.
Under `eval.average=samples` (HUM's units: one per held-out interaction) a sample is scored
after its own history, every item of the user's sequence before its target, as HUM encodes it;
so a user's second test sample sees the first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recpipe.data.schema import SPLIT_NAMES
from recpipe.seq.batches import SeqBatches, shift

HISTORY = {"valid": ("train",), "test": ("train", "valid")}  # the input of each evaluated part


class SeqScorer:
    """Scores (B, n_items) of `model` after each user's sequence of `parts`, on the model's
    device (the evaluator masks and ranks them there). Sample-level units
    (`eval.average=samples`, recpipe/eval/samples.py) are scored after the sample's own history
    instead: every item of the user's sequence before the sample's target (`sample_scores`)."""

    def __init__(self, model, data, part: str, device):
        self.model, self.data, self.device = model, data, device
        self.seqs = data.sequences(HISTORY[part])
        self.maxlen = model.cfg.maxlen
        self.n_items = data.n_items

    def _window_scores(self, seqs, users: np.ndarray, end=None):
        import torch

        w = shift(seqs.window(np.asarray(users, np.int64), self.maxlen, end=end), seqs.pad)
        was = self.model.training
        self.model.eval()
        try:
            return self.model.scores(torch.from_numpy(w).to(self.device)).float()  # (B, n_items)
        finally:
            self.model.train(was)

    def device_scores(self, users: np.ndarray):
        return self._window_scores(self.seqs, users)

    def __call__(self, users: np.ndarray):
        return self.device_scores(users).cpu()

    def scores_before(self, users: np.ndarray, ends: np.ndarray):
        """(B, n_items) after the first ends[k] items of user users[k]'s whole sequence (every
        part, time order): the input of a sample whose target sits at that position."""
        return self._window_scores(self.data.sequences(SPLIT_NAMES), users, ends).cpu()

    def sample_scores(self, rows: np.ndarray, samples):
        seqs = self.data.sequences(SPLIT_NAMES)
        uid = samples.uid[rows]
        return self.scores_before(uid, samples.pos[rows] - seqs.indptr[uid])


def build(data, p, seed: int, device: str = "cpu"):
    """A seeded SASRec for `data`'s catalogue, its optimiser and batch source."""
    import torch

    from recpipe.seq.sasrec import SASRec
    from recpipe.train.seeds import seed_everything

    cfg, tc = p.model_config(), p.train_config()
    seed_everything(seed)
    model = SASRec(data.n_items, cfg, seed).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr, betas=tuple(p.betas),
                           weight_decay=p.weight_decay)
    batches = SeqBatches(data.sequences(("train",)), data.train, cfg.maxlen, tc.batch_size, seed,
                         negatives=cfg.loss == "bce")
    return model, opt, batches


def train(data, p, eval_cfg, seed: int, *, device: str = "cpu", ckpt: str | Path | None = None,
          live=None, signature: str = "", progress: bool = True, desc: str = "sasrec"):
    """Train one SASRec (params `p`: recpipe.seq.params.SASRecParams) on `data` (DataView),
    selecting on validation; return (model at the kept state, recpipe.train.loop.FitResult)."""
    from recpipe.eval.evaluator import evaluate
    from recpipe.train.loop import fit as loop_fit

    model, opt, batches = build(data, p, seed, device)
    valid = SeqScorer(model, data, "valid", device)
    res = loop_fit(model, batches, p.train_config(), device=device, ckpt=ckpt, live=live,
                   signature=signature, progress=progress, desc=desc, optimizer=opt,
                   step_threads=p.threads, lr_lambda=p.lr_lambda(),
                   validate=lambda m: evaluate(valid, data, eval_cfg, "valid").summary)
    return model, res


def fit(data, p, eval_cfg, seed: int, *, device: str = "cpu", ckpt: str | Path | None = None,
        live=None, signature: str = "", progress: bool = True) -> dict:
    """`train`, then valid and test evaluated once at the kept state; return {"valid", "test":
    EvalResult, "best_epoch", "model", "fit"}."""
    from recpipe.eval.evaluator import evaluate

    model, res = train(data, p, eval_cfg, seed, device=device, ckpt=ckpt, live=live,
                       signature=signature, progress=progress)
    return {"valid": evaluate(SeqScorer(model, data, "valid", device), data, eval_cfg, "valid"),
            "test": evaluate(SeqScorer(model, data, "test", device), data, eval_cfg, "test"),
            "best_epoch": res.best_epoch, "model": model, "fit": res}
