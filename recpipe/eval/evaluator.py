"""`evaluate`: one scorer, one split part, one protocol -> per-unit metrics and a summary.

Units are users (or, with `candidates=target_domain`, (user, domain) pairs: each domain's
targets ranked among that domain's items). Scores are computed in user batches sized to
`memory_mb`, so the full users x items matrix never exists. Sample-level protocols (several
units per user, each with its own history, targets and candidates) go through
`recpipe.eval.sample_evaluator.evaluate_samples`, which reuses the pieces below; with
`eval.average=samples` (HUM's protocol) `evaluate` itself builds HUM's units, one sample per
interaction of the part (`Samples.per_interaction`), so every model is scored on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from recpipe.eval.data import SplitData
from recpipe.eval.protocol import EvalConfig
from recpipe.eval.ranking import build_index, faiss_topk, keep_only_, mask_, topk_exact
from recpipe.eval.summary import domain_summary, unit_metrics


@dataclass
class EvalResult:
    per_unit: pl.DataFrame  # uid, domain, metric columns (evaluate_samples: sample first)
    # flat: "recall@20", "recall@20/Books", "recall@20/macro", "units", and with domains
    # "domains_without_targets" (names left out of the macro average) and its count
    summary: dict

    def prefixed(self, part: str) -> dict:
        return {f"{part}/{k}": v for k, v in self.summary.items()}


def user_units(data: SplitData, targets, by_domain: bool):
    """(user ids, domain ids or -1, target matrix with one row per unit)."""
    import scipy.sparse as sp

    users = np.flatnonzero(np.diff(targets.indptr) > 0)
    if not by_domain:
        return users, np.full(len(users), -1), targets[users]
    rows, doms, mats = [], [], []
    for d in range(len(data.domains)):
        keep = sp.diags((data.item_domain == d).astype(np.float32))
        t = (targets @ keep).tocsr()
        t.eliminate_zeros()
        u = np.flatnonzero(np.diff(t.indptr) > 0)
        rows.append(u)
        doms.append(np.full(len(u), d))
        mats.append(t[u])
    return np.concatenate(rows), np.concatenate(doms), sp.vstack(mats).tocsr()


# On a CPU a score block larger than the caches is written to fresh pages every batch and read
# back from memory by the masking and top-k: 16 MiB blocks made a validation pass on the RLMRec
# release (11k x 9.3k) 1.6x faster than 1 GiB ones (0.21 vs 0.33 s). GPUs keep the budget.
CPU_BLOCK_MB = 16


def _batch_size(cfg: EvalConfig, n_items: int, cpu: bool = False) -> int:
    per_row = n_items * 4 * 3  # scores + topk/sort temporaries
    budget = min(cfg.memory_mb, CPU_BLOCK_MB) if cpu else cfg.memory_mb
    return max(1, (budget << 20) // per_row)


def user_scores(scorer):
    """score(users, rows) of a user-level scorer: its device block when it has one."""
    fn = scorer.device_scores if hasattr(scorer, "device_scores") else scorer
    return lambda users, rows: fn(users)


def rank_units(scorer, data: SplitData, masks: list, users, doms, k: int, cfg: EvalConfig,
               item_ok: np.ndarray | None = None, *, rows=None, candidates=None, score=None):
    """Top-k item ids (units, k) and validity, batch by batch.

    `doms[b] >= 0` restricts unit b to that domain's items; `item_ok` (n_items,) bool, if
    given, restricts every unit to those items. Slots beyond the catalogue are invalid.
    `rows` (units,) picks each unit's row of the sparse `masks` and `candidates` (default
    `users`: per-user matrices); `candidates`, if given, restricts unit b to the nonzeros of
    its row; `score(users, rows)` gives a batch's (B, n_items) block (default: user scores).
    """
    import torch

    rows = users if rows is None else rows
    score = user_scores(scorer) if score is None else score
    device = getattr(scorer, "device", None)
    bs = _batch_size(cfg, data.n_items, cpu=device is None or getattr(device, "type", "") == "cpu")
    out_idx = np.zeros((len(users), k), dtype=np.int64)
    out_ok = np.zeros((len(users), k), dtype=bool)
    item_dom = torch.from_numpy(data.item_domain.astype(np.int64))
    blocked = None if item_ok is None else torch.from_numpy(~item_ok)
    index = None
    if cfg.backend == "faiss":
        if not hasattr(scorer, "item_np"):
            raise ValueError("eval.backend=faiss needs an embedding scorer (user/item embeddings)")
        if candidates is not None:
            raise ValueError("eval.backend=faiss cannot rank explicit candidate lists; use torch")
        index = build_index(scorer.item_np, cfg.faiss_index)
    for start in range(0, len(users), bs):
        u = users[start:start + bs]
        r = rows[start:start + bs]
        d_np = doms[start:start + bs]
        if index is not None:
            idx, ok = faiss_topk(scorer.user_np[u], scorer.item_np, k, masks, r, index=index,
                                 item_dom=data.item_domain, unit_dom=d_np, item_ok=item_ok)
        else:
            # embedding scorers keep the block on their device (GPU: mask and rank there)
            scores = score(u, r)
            dev = scores.device
            if candidates is not None:
                keep_only_(scores, r, candidates)
            for m in masks:
                mask_(scores, r, m)
            if (d_np >= 0).any():
                d = torch.from_numpy(d_np.astype(np.int64)).to(dev)
                other = (item_dom.to(dev)[None, :] != d[:, None]) & (d[:, None] >= 0)
                scores.masked_fill_(other, float("-inf"))
            if blocked is not None:
                scores[:, blocked.to(dev)] = float("-inf")
            idx, ok = topk_exact(scores, k)
        kk = idx.shape[1]  # < k when the catalogue is smaller than K
        out_idx[start:start + len(u), :kk] = idx.cpu().numpy()
        out_ok[start:start + len(u), :kk] = ok.cpu().numpy()
    return out_idx, out_ok


def need_every_user(cfg: EvalConfig, without: int, n_users: int, part: str) -> None:
    """eval.average=all_users: raise when `without` of the n_users users have no unit."""
    if cfg.average == "all_users" and without:
        raise ValueError(
            f"eval.average=all_users needs a {part} target for every user, but {without} of "
            f"{n_users} users have none (use users_with_targets or a per-user split)"
        )


def protocol_masks(data: SplitData, cfg: EvalConfig, part: str) -> list:
    """The (n_users, n_items) matrices whose items get -inf when evaluating `part`."""
    masks = []
    if cfg.mask_train:
        masks.append(data.train)
    if part == "test" and cfg.mask_valid_at_test:
        masks.append(data.valid)
    return masks


def protocol_items(data: SplitData, cfg: EvalConfig, part: str) -> np.ndarray | None:
    """(n_items,) bool: the items every unit may rank in `part`, or None for all of them."""
    if part == "valid" and cfg.valid_candidates == "seen":  # HUM: items seen in train or valid
        return np.asarray((data.train.sum(0) + data.valid.sum(0)) > 0).ravel()
    return None


def domain_tables(data: SplitData, cfg: EvalConfig) -> bool:
    """Whether a summary has per-domain tables (and, with target_domain, only those)."""
    return cfg.candidates == "target_domain" or (cfg.per_domain and len(data.domains) > 1)


def evaluate(scorer, data: SplitData, cfg: EvalConfig, part: str = "test",
             users: np.ndarray | None = None) -> EvalResult:
    """Score and rank every unit of `part`; `users` (uids) keeps only those users' units, for a
    model too slow to score everyone (an LLM on a CPU): its summary's `units` says how many."""
    if cfg.candidates == "sampled":
        raise ValueError(
            f"eval.candidates={cfg.candidates}: sampled candidate lists need evaluation samples; "
            "call recpipe.eval.sample_evaluator.evaluate_samples(scorer, Samples..., data, cfg)")
    if cfg.average == "samples":  # HUM's units: one per interaction of the part, every model
        from recpipe.eval.sample_evaluator import evaluate_samples
        from recpipe.eval.samples import Samples

        samples = Samples.per_interaction(data, part, users, cfg.candidates == "target_domain")
        return evaluate_samples(scorer, samples, data, cfg)
    targets = data.part(part)
    need_every_user(cfg, int((np.diff(targets.indptr) == 0).sum()), data.n_users, part)
    if users is not None:
        import scipy.sparse as sp

        keep = np.zeros(data.n_users, np.float32)
        keep[np.asarray(users, np.int64)] = 1
        targets = (sp.diags(keep) @ targets).tocsr()
        targets.eliminate_zeros()
    # a target is never masked: split dedupes pairs, and "valid" is only masked at test
    masks = protocol_masks(data, cfg, part)
    item_ok = protocol_items(data, cfg, part)
    k_max = max(cfg.ks)
    frames, summary = [], {}
    domain_units = domain_tables(data, cfg)
    passes = [("all", False)] if cfg.candidates == "all" else []
    if domain_units:
        passes.append(("domain", True))
    for name, by_domain in passes:
        users, doms, t = user_units(data, targets, by_domain)
        if cfg.candidates == "all":
            doms_rank = np.full(len(users), -1)  # per-domain tables, ranked over all items
        else:
            doms_rank = doms
        idx, ok = rank_units(scorer, data, masks, users, doms_rank, k_max, cfg, item_ok)
        vals = unit_metrics(idx, ok, t, cfg)
        df = pl.DataFrame({"uid": users.astype(np.int32),
                           "domain": [data.domains[d] if d >= 0 else "all" for d in doms], **vals})
        frames.append(df)
        metric_cols = list(vals)
        if name == "all":
            summary.update({m: float(df[m].mean()) for m in metric_cols})
            summary["units"] = df.height
        else:
            summary.update(domain_summary(df, metric_cols, data.domains))
            if cfg.candidates == "target_domain":  # HUM: overall = mean over all units
                summary.update({m: float(df[m].mean()) for m in metric_cols})
                summary["units"] = df.height
    return EvalResult(pl.concat(frames), summary)
