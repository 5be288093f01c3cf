"""`evaluate`: one scorer, one split part, one protocol -> per-unit metrics and a summary.

Units are users (or, with `candidates=target_domain`, (user, domain) pairs: each domain's
targets ranked among that domain's items). Scores are computed in user batches sized to
`memory_mb`, so the full users x items matrix never exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from recpipe.eval.data import SplitData
from recpipe.eval.metrics import per_unit
from recpipe.eval.protocol import EvalConfig
from recpipe.eval.ranking import build_index, faiss_topk, mask_, topk_exact


@dataclass
class EvalResult:
    per_unit: pl.DataFrame  # uid, domain, metric columns
    # flat: "recall@20", "recall@20/Books", "recall@20/macro", "units", and with domains
    # "domains_without_targets" (names left out of the macro average) and its count
    summary: dict

    def prefixed(self, part: str) -> dict:
        return {f"{part}/{k}": v for k, v in self.summary.items()}


def _units(data: SplitData, targets, by_domain: bool):
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


def _batch_size(cfg: EvalConfig, n_items: int) -> int:
    per_row = n_items * 4 * 3  # scores + topk/sort temporaries
    return max(1, (cfg.memory_mb << 20) // per_row)


def rank_units(scorer, data: SplitData, masks: list, users, doms, k: int, cfg: EvalConfig,
               item_ok: np.ndarray | None = None):
    """Top-k item ids (units, k) and validity, batch by batch.

    `doms[b] >= 0` restricts unit b to that domain's items; `item_ok` (n_items,) bool, if
    given, restricts every unit to those items. Slots beyond the catalogue are invalid.
    """
    import torch

    bs = _batch_size(cfg, data.n_items)
    out_idx = np.zeros((len(users), k), dtype=np.int64)
    out_ok = np.zeros((len(users), k), dtype=bool)
    item_dom = torch.from_numpy(data.item_domain.astype(np.int64))
    blocked = None if item_ok is None else torch.from_numpy(~item_ok)
    index = None
    if cfg.backend == "faiss":
        if not hasattr(scorer, "item_np"):
            raise ValueError("eval.backend=faiss needs an embedding scorer (user/item embeddings)")
        index = build_index(scorer.item_np, cfg.faiss_index)
    for start in range(0, len(users), bs):
        u = users[start:start + bs]
        d_np = doms[start:start + bs]
        if index is not None:
            idx, ok = faiss_topk(scorer.user_np[u], scorer.item_np, k, masks, u, index=index,
                                 item_dom=data.item_domain, unit_dom=d_np, item_ok=item_ok)
        else:
            # embedding scorers keep the block on their device (GPU: mask and rank there)
            scores = scorer.device_scores(u) if hasattr(scorer, "device_scores") else scorer(u)
            dev = scores.device
            for m in masks:
                mask_(scores, u, m)
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


def evaluate(scorer, data: SplitData, cfg: EvalConfig, part: str = "test") -> EvalResult:
    targets = data.part(part)
    if cfg.average == "all_users":
        empty = int((np.diff(targets.indptr) == 0).sum())
        if empty:
            raise ValueError(
                f"eval.average=all_users needs a {part} target for every user, but {empty} of "
                f"{data.n_users} users have none (use users_with_targets or a per-user split)"
            )
    masks = []
    if cfg.mask_train:
        masks.append(data.train)
    if part == "test" and cfg.mask_valid_at_test:
        masks.append(data.valid)
    # a target is never masked: split dedupes pairs, and "valid" is only masked at test
    item_ok = None
    if part == "valid" and cfg.valid_candidates == "seen":  # HUM: items seen in train or valid
        item_ok = np.asarray((data.train.sum(0) + data.valid.sum(0)) > 0).ravel()
    k_max = max(cfg.ks)
    frames, summary = [], {}
    domain_units = cfg.candidates == "target_domain" or (cfg.per_domain and len(data.domains) > 1)
    passes = [("all", False)] if cfg.candidates == "all" else []
    if domain_units:
        passes.append(("domain", True))
    for name, by_domain in passes:
        users, doms, t = _units(data, targets, by_domain)
        if cfg.candidates == "all":
            doms_rank = np.full(len(users), -1)  # per-domain tables, ranked over all items
        else:
            doms_rank = doms
        idx, ok = rank_units(scorer, data, masks, users, doms_rank, k_max, cfg, item_ok)
        hits = _hits(idx, ok, t)
        vals = per_unit(hits, np.diff(t.indptr), cfg.ks, cfg.ndcg_idcg)
        vals = _rename(vals, cfg)
        df = pl.DataFrame({"uid": users.astype(np.int32),
                           "domain": [data.domains[d] if d >= 0 else "all" for d in doms], **vals})
        frames.append(df)
        metric_cols = list(vals)
        if name == "all":
            summary.update({m: float(df[m].mean()) for m in metric_cols})
            summary["units"] = df.height
        else:
            per = df.group_by("domain").agg([pl.col(m).mean() for m in metric_cols]).sort("domain")
            for row in per.iter_rows(named=True):
                summary.update({f"{m}/{row['domain']}": float(row[m]) for m in metric_cols})
            summary.update({f"{m}/macro": float(per[m].mean()) for m in metric_cols})
            # a domain without targets in this part cannot enter the macro average: say which
            seen = set(per["domain"].to_list())
            missing = [d for d in data.domains if d not in seen]
            summary["domains_without_targets"] = missing
            summary["domains_without_targets_count"] = len(missing)
            if cfg.candidates == "target_domain":  # HUM: overall = mean over all units
                summary.update({m: float(df[m].mean()) for m in metric_cols})
                summary["units"] = df.height
    return EvalResult(pl.concat(frames), summary)


def _hits(idx: np.ndarray, ok: np.ndarray, targets) -> np.ndarray:
    """hits[u, r] = item ranked r+1 for unit u is one of its targets (vectorised isin)."""
    n_items = targets.shape[1]
    unit = np.repeat(np.arange(targets.shape[0], dtype=np.int64), np.diff(targets.indptr))
    target_keys = unit * n_items + targets.indices.astype(np.int64)
    ranked_keys = np.arange(idx.shape[0], dtype=np.int64)[:, None] * n_items + idx
    return np.isin(ranked_keys, target_keys) & ok


def _rename(vals: dict, cfg: EvalConfig) -> dict:
    """Name the configured recall `recall@K`; keep the other denominator only if asked."""
    out = {}
    for key, v in vals.items():
        name, k = key.split("@")
        if name == "recall":
            if cfg.recall_denominator == "full":
                out[key] = v
        elif name == "recall_trunc":
            if cfg.recall_denominator == "truncated":
                out[f"recall@{k}"] = v
            elif cfg.also_truncated:
                out[key] = v
        else:
            out[key] = v
    return out
