"""Ranking metrics from top-K hit matrices (evaluation.md section 2).

Everything works on `hits`, a (units, K_max) boolean array whose column r says whether the
item ranked r+1 is a target, and `n_targets`, the size of each unit's target set. Positions
that held no candidate (fewer than K_max unmasked items) are simply False.
"""

from __future__ import annotations

import numpy as np

METRICS = ("recall", "recall_trunc", "ndcg", "hr", "mrr", "precision")


def discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def per_unit(hits: np.ndarray, n_targets: np.ndarray, ks: list[int],
             ndcg_idcg: str = "standard") -> dict[str, np.ndarray]:
    """Per-unit metric values {"recall@20": (units,), ...} for every K in `ks`.

    recall        hits@K / |T|                       (RLMRec, MMHCL, LightGCN: "full")
    recall_trunc  hits@K / min(K, |T|)               (CLLM4Rec, Mult-VAE: "truncated")
    ndcg          DCG@K / IDCG, IDCG over min(K, |T|) ("standard") or over
                  min(K, hits@K_max) ("retrieved_hits", MMHCL's inherited code)
    hr            1[hits@K >= 1]
    mrr           1 / rank of the first hit if within K, else 0
    precision     hits@K / K
    """
    hits = np.asarray(hits, dtype=bool)
    n_t = np.asarray(n_targets, dtype=np.float64)
    k_max = hits.shape[1]
    if max(ks) > k_max:
        raise ValueError(f"K={max(ks)} exceeds the ranked depth {k_max}")
    disc = discounts(k_max)
    cum_hits = np.cumsum(hits, axis=1)
    cum_dcg = np.cumsum(hits * disc, axis=1)
    ideal = np.concatenate([[0.0], np.cumsum(disc)])  # ideal[m] = IDCG with m relevant items
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)  # 1-based, 0 = none
    safe_t = np.maximum(n_t, 1)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        h = cum_hits[:, k - 1].astype(np.float64)
        out[f"recall@{k}"] = h / safe_t
        out[f"recall_trunc@{k}"] = h / np.minimum(k, safe_t)
        m = np.minimum(k, n_t) if ndcg_idcg == "standard" else np.minimum(k, cum_hits[:, -1])
        idcg = ideal[m.astype(np.int64)]
        out[f"ndcg@{k}"] = np.divide(cum_dcg[:, k - 1], idcg, out=np.zeros(len(h)), where=idcg > 0)
        out[f"hr@{k}"] = (h > 0).astype(np.float64)
        out[f"mrr@{k}"] = np.where((first > 0) & (first <= k), 1.0 / np.maximum(first, 1), 0.0)
        out[f"precision@{k}"] = h / k
    return out
