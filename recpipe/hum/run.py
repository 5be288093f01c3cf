"""One HUM run, composed the same way wherever it happens (the `hum` stage, tests): build the
encoder (`build`), the training batches (`HUMBatches`), train through recpipe.train.loop.fit
with validation selection, then evaluate valid and test once at the kept state (`fit`).

Evaluation encodes every item once per pass (`item_vectors`, the reference re-encodes the
catalogue every 100 steps) and ranks through the one evaluator: with `eval.average=samples`
(the `hum` preset) every interaction of the part is a sample whose history is the user's last
items before it (`HUMScorer.sample_scores`); under any other protocol a user's history is the
end of their training (and, at test, validation) sequence, as for every other model.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recpipe.config import ParamError
from recpipe.data.schema import SPLIT_NAMES
from recpipe.hum.data import Texts, histories, mask_history, training_samples
from recpipe.train.seeds import subsample


def build(p, data, seed: int, device: str = "cpu"):
    """(model, AdamW, Texts) under params `p` (HUMParams) for the view `data`: the backbone
    with <|emb|> added (its row the mean of the vocabulary), LoRA on it, domain weights."""
    import torch

    from recpipe.hum.domains import DomainWeights
    from recpipe.hum.model import HUM
    from recpipe.hum.params import EMB_TOKEN
    from recpipe.llm.backbone import ENCODERS, load_backbone, load_encoder
    from recpipe.llm.lora import apply_lora
    from recpipe.llm.tokens import special_id
    from recpipe.train.seeds import seed_everything

    encoder = p.model in ENCODERS  # a bidirectional encoder (MiniLM) instead of a causal LM
    if encoder:
        lm, tok = load_encoder(p.model, device=device, dtype=p.dtype, key="hum")
    else:
        lm, tok = load_backbone(p.model, device=device, dtype=p.dtype, attn=p.attn, seed=seed,
                                gradient_checkpointing=p.gradient_checkpointing, key="hum")
    emb = special_id(tok, EMB_TOKEN, add=True, model=lm)  # looked up, or added: never hard-coded
    seed_everything(seed)  # LoRA's A init draws from it
    lm = apply_lora(lm, p.lora_params(), key="hum.lora",
                    task_type="FEATURE_EXTRACTION" if encoder else "CAUSAL_LM")
    parity = p.mode == "parity"
    weights = None
    if p.domain_weights:
        weights = DomainWeights(len(data.domains), p.dro_eta, p.dro_temperature, p.dro_interval,
                                start="ones" if parity else "uniform", sync=not parity)
    model = HUM(lm, emb, p.temperature, weights, score=p.score).to(device)
    model.reset_each_epoch = parity
    texts = Texts(tok, data.item_titles, p.title_tokens, emb)
    tc = p.train_config()
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=tc.lr,
                            eps=p.adam_eps, weight_decay=p.weight_decay)
    return model, opt, texts


class HUMBatches:
    """Each epoch, the training samples in a fresh seeded order, `batch_size` at a time, as
    (u_ids, u_mask, i_ids, i_mask, cand, domain) (recpipe.hum.model.HUM.loss). Negatives come
    from the training core's sampler, uniform over the target domain's training items; clean
    mode redraws the target (and, with exclude_history, the user's training items)."""

    def __init__(self, data, texts: Texts, p, batch_size: int, seed: int):
        self.seqs, self.texts, self.p, self.batch_size = data.sequences(("train",)), texts, p, batch_size
        self.item_domain = data.item_domain
        uid, pos = training_samples(data)
        keep = subsample(len(uid), p.train_samples, seed, 3)
        self.uid, self.pos = (uid, pos) if keep is None else (uid[keep], pos[keep])
        self.target, self.domain = self.seqs.items[self.pos], self.seqs.domain[self.pos]
        self.clean = p.mode == "clean"
        self.rng = np.random.default_rng([seed, 4])
        from recpipe.train.sampler import NegativeSampler

        pools = [data.domain_items(d, seen_in=("train",)) for d in range(len(data.domains))]
        pools = [x if len(x) else np.zeros(1, np.int32) for x in pools]  # no target lives there
        seen = data.train if self.clean and p.exclude_history else sp.csr_matrix(data.train.shape)
        self.sampler = NegativeSampler(seen, self.rng, dist="set", item_sets=pools)

    def __len__(self) -> int:
        return -(-len(self.uid) // self.batch_size)

    def batch(self, rows: np.ndarray) -> tuple:
        p, t = self.p, self.texts
        hist = histories(self.seqs, self.uid[rows], self.pos[rows], p.history)
        if p.mask_ratio > 0:
            hist = [mask_history(h, self.item_domain[h], d, p.mask_ratio, self.rng)
                    for h, d in zip(hist, self.domain[rows])]
        n = p.negatives
        neg = self.sampler.draw(np.repeat(self.uid[rows], n),
                                targets=np.repeat(self.target[rows], n) if self.clean else None,
                                sets=np.repeat(self.domain[rows], n)).reshape(len(rows), n)
        cand = np.concatenate([self.target[rows, None], neg], axis=1)  # (B, 1 + N), target first
        items, inv = np.unique(cand, return_inverse=True)  # each distinct item encoded once
        u_ids, u_mask = t.pad([t.user(h) for h in hist])
        i_ids, i_mask = t.pad([t.item(i) for i in items])
        return (u_ids, u_mask, i_ids, i_mask, inv.reshape(cand.shape).astype(np.int64),
                self.domain[rows].astype(np.int64))

    def epoch(self):
        order = self.rng.permutation(len(self.uid))
        for at in range(0, len(order), self.batch_size):
            yield self.batch(order[at:at + self.batch_size])

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


def item_vectors(model, texts: Texts, batch_size: int, device):
    """(n_items, H) float32: every item's <|emb|> state, encoded once for an evaluation."""
    was = model.training
    model.eval()
    try:
        return model.encode_all([texts.item(i) for i in range(len(texts.titles))], texts.pad,
                                batch_size, device, 1)
    finally:
        model.train(was)


class HUMScorer:
    """Dot products (B, n_items) of user vectors with the cached item vectors. User-level
    (`device_scores`): the last `history` items of the user's train (valid) or train + valid
    (test) sequence. Sample-level (`sample_scores`): the items before each sample's target."""

    def __init__(self, model, data, texts: Texts, items, part: str, history: int,
                 batch_size: int, device):
        self.model, self.data, self.texts, self.items = model, data, texts, items
        self.part, self.history, self.batch_size, self.device = part, history, batch_size, device
        self.n_items = data.n_items

    def _scores(self, hist: list[np.ndarray]):
        was = self.model.training
        self.model.eval()
        try:
            u = self.model.encode_all([self.texts.user(h) for h in hist], self.texts.pad,
                                      self.batch_size, self.device, 0)
        finally:
            self.model.train(was)
        return u @ self.items.T  # (B, n_items)

    def device_scores(self, users: np.ndarray):
        seqs = self.data.sequences(("train",) if self.part == "valid" else ("train", "valid"))
        users = np.asarray(users, dtype=np.int64)
        return self._scores(histories(seqs, users, seqs.indptr[users + 1], self.history))

    def __call__(self, users: np.ndarray):
        return self.device_scores(users).cpu()

    def sample_scores(self, rows: np.ndarray, samples):
        seqs = self.data.sequences(SPLIT_NAMES)
        return self._scores(histories(seqs, samples.uid[rows], samples.pos[rows],
                                      self.history)).cpu()


def fit(data, p, eval_cfg, seed: int, *, device: str = "cpu", ckpt=None, live=None,
        signature: str = "", progress: bool = True) -> dict:
    """Train one HUM on `data` (DataView); return {"valid", "test": EvalResult at the kept
    state, "best_epoch", "model", "fit", "samples", "eval_users", "weights"}."""
    from recpipe.eval.evaluator import evaluate
    from recpipe.llm.flops import peak_flops, train_flops_per_token
    from recpipe.llm.launch import is_worker
    from recpipe.train.loop import fit as loop_fit

    model, opt, texts = build(p, data, seed, device)
    tc = p.train_config()
    batches = HUMBatches(data, texts, p, tc.batch_size, seed)
    if not len(batches):
        raise ParamError("hum: the training part has no sample (every user has a single "
                         "training interaction); a HUM sample needs an item before its target")
    if p.center == "mean":  # the centres, from the untrained encoder (HUMParams.center)
        rows = subsample(len(batches.uid), p.center_samples, seed, 5)
        rows = np.arange(len(batches.uid)) if rows is None else rows
        items = subsample(data.n_items, p.center_samples, seed, 6)
        items = range(data.n_items) if items is None else items
        users = histories(batches.seqs, batches.uid[rows], batches.pos[rows], p.history)
        model.fit_means([texts.user(h) for h in users], [texts.item(i) for i in items],
                        texts.pad, p.eval_batch_size, device)
    eval_users = subsample(data.n_users, p.eval_users, seed, 2)
    item_len = int(np.mean([len(texts.item(i)) for i in range(min(data.n_items, 1000))]))
    model.flops_per_token = train_flops_per_token(model.lm, item_len, head=False)
    model.peak_flops = peak_flops(str(device))[0]

    def score(part, items):
        return HUMScorer(model, data, texts, items, part, p.history, p.eval_batch_size, device)

    valids = []  # (EvalResult, item vectors) of this process's validations, in order

    def validate(m):
        items = item_vectors(model, texts, p.eval_batch_size, device)
        valids.append((evaluate(score("valid", items), data, eval_cfg, "valid", eval_users), items))
        return valids[-1][0].summary

    res = loop_fit(model, batches, tc, device=device, ckpt=ckpt, live=live, signature=signature,
                   progress=progress, desc="hum", optimizer=opt, step_threads=p.threads,
                   lr_lambda=p.lr_lambda(tc.epochs), validate=validate)
    if is_worker():  # under a launcher: process 0 evaluates and writes
        return None
    metric = tc.select_metric.split("|")[0]
    validated = [r["epoch"] for r in res.history if f"valid/{metric}" in r]
    epochs = validated[len(validated) - len(valids):]  # those this process ran
    # the kept state's validation and item vectors, when this process ran it (an LLM pass
    # over the catalogue is worth saving)
    kept, items = valids[epochs.index(res.best_epoch)] if res.best_epoch in epochs and valids \
        else (None, item_vectors(model, texts, p.eval_batch_size, device))
    w = model.weights.w.tolist() if model.weights is not None else None
    return {"valid": kept or evaluate(score("valid", items), data, eval_cfg, "valid", eval_users),
            "test": evaluate(score("test", items), data, eval_cfg, "test", eval_users),
            "best_epoch": res.best_epoch, "model": model, "fit": res, "samples": len(batches.uid),
            "eval_users": eval_users, "weights": w}
