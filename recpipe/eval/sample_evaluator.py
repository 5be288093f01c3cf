"""`evaluate_samples`: one scorer, evaluation samples, one protocol -> per-sample metrics and a
summary (evaluation.md sections 1-3, 5.7).

The per-user `evaluate` ranks users; this ranks `Samples` (recpipe/eval/samples.py) with the
same batched ranking (`rank_units`), masks and metrics, so `Samples.from_users` gives exactly
`evaluate`'s numbers. Per sample:
- scores: a user-level scorer is asked for the sample's user (`scorer(uids)` or
  `device_scores(uids)`); a scorer with `sample_scores(rows, samples)` (a sequence model that
  encodes each sample's own history) is asked for the sample rows and returns a fresh
  (B, n_items) float block (it is masked in place);
- masks: `mask_train` masks the user's train row, `mask_valid_at_test` (test samples) its
  validation row, and the sample's own `exclude`; a masked target is an error;
- candidates: the sample's `domain` (eval.candidates=target_domain), the validation items
  rule (valid_candidates), or its explicit list (eval.candidates=sampled: keys get the
  `sampled_` prefix, section 7).
Summary: the mean over samples (`units` = their count), and with per-domain tables the mean
over the samples whose targets lie in each domain ("samples_by_domain": a sample's targets
are split by domain, its ranking kept), their macro average and `domains_without_targets`.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recpipe.eval.data import SplitData
from recpipe.eval.evaluator import (EvalResult, domain_tables, need_every_user, protocol_items,
                                    protocol_masks, rank_units, user_units)
from recpipe.eval.protocol import EvalConfig
from recpipe.eval.samples import Samples
from recpipe.eval.summary import domain_summary, unit_metrics

SAMPLED = "sampled_"  # key prefix of metrics over explicit (sampled) candidate lists


def evaluate_samples(scorer, samples: Samples, data: SplitData, cfg: EvalConfig) -> EvalResult:
    if not samples.n:
        raise ValueError("evaluate_samples got no samples")
    samples.check(data)
    _check_protocol(samples, data, cfg)
    masks = _sample_masks(samples, data, cfg)
    score = None
    if hasattr(scorer, "sample_scores"):
        if cfg.backend == "faiss":
            raise ValueError("eval.backend=faiss ranks user embeddings; a scorer with "
                             "sample_scores needs eval.backend=torch")
        score = _sample_block(scorer, samples, data.n_items)
    rows = np.arange(samples.n)
    idx, ok = rank_units(scorer, data, masks, samples.uid, samples.domain, max(cfg.ks), cfg,
                         protocol_items(data, cfg, samples.part), rows=rows,
                         candidates=samples.candidates, score=score)
    prefix = SAMPLED if samples.candidates is not None else ""
    vals = {prefix + k: v for k, v in unit_metrics(idx, ok, samples.targets, cfg).items()}
    names = [*data.domains, "all"]  # domain -1 -> "all"
    # a sample's id: its row, or for per-interaction samples the target's row in the split's
    # sequences, the same whichever users are scored (so a subsample pairs with the full run)
    ids = rows if samples.pos is None else samples.pos
    df = pl.DataFrame({"sample": ids.astype(np.int64), "uid": samples.uid.astype(np.int32),
                       "domain": [names[d] for d in samples.domain], **vals})
    summary = {m: float(df[m].mean()) for m in vals}
    summary["units"] = df.height
    if domain_tables(data, cfg):
        # samples_by_domain: each sample's targets split by domain, its ranked list kept
        pieces, doms, t = user_units(data, samples.targets, True)
        dvals = {prefix + k: v for k, v in unit_metrics(idx[pieces], ok[pieces], t, cfg).items()}
        per = pl.DataFrame({"domain": [data.domains[d] for d in doms], **dvals})
        summary.update(domain_summary(per, list(dvals), data.domains))
    if cfg.subsets and samples.pos is not None:
        # HUM's Long-tail and Hetero blocks (recpipe/eval/subsets.py): per-interaction samples
        # only, since a user-level unit has no single target and history
        from recpipe.eval.subsets import summaries

        summary.update(summaries(df, list(vals), samples, data, cfg))
    return EvalResult(df, summary)


def _check_protocol(samples: Samples, data: SplitData, cfg: EvalConfig) -> None:
    """The samples must be what the protocol says: its averaging, candidates and domains."""
    in_domain = samples.domain >= 0
    if cfg.candidates == "target_domain" and not in_domain.all():
        raise ValueError(f"eval.candidates=target_domain ranks each sample within its domain, but "
                         f"{int((~in_domain).sum())} samples have domain -1")
    if cfg.candidates != "target_domain" and in_domain.any():
        raise ValueError(f"{int(in_domain.sum())} samples rank within a domain but "
                         f"eval.candidates={cfg.candidates}; use target_domain or domain -1")
    if (cfg.candidates == "sampled") != (samples.candidates is not None):
        raise ValueError("explicit Samples.candidates go with eval.candidates=sampled, and only "
                         f"with it (have eval.candidates={cfg.candidates}, candidates "
                         f"{'given' if samples.candidates is not None else 'not given'})")
    if cfg.average != "samples":  # users_with_targets / all_users: one unit per user (, domain)
        key = samples.uid * (len(data.domains) + 1) + samples.domain + 1
        if len(np.unique(key)) < samples.n:
            raise ValueError(f"eval.average={cfg.average} counts each user once, but some users "
                             "have several samples; use eval.average=samples")
    need_every_user(cfg, data.n_users - len(np.unique(samples.uid)), data.n_users, samples.part)


def _sample_masks(samples: Samples, data: SplitData, cfg: EvalConfig) -> list:
    """One (n, n_items) matrix per sample row: the protocol's user rows plus its `exclude`."""
    parts = [m[samples.uid] for m in protocol_masks(data, cfg, samples.part)]
    if samples.exclude is not None:
        parts.append(samples.exclude)
    if not parts:
        return []
    mask = sum(parts[1:], parts[0]).tocsr()
    hit = samples.targets.multiply(mask).tocoo()
    if hit.nnz:
        raise ValueError(
            f"{len(np.unique(hit.row))} samples have a target among their masked items (first: "
            f"sample {hit.row[0]}, item {hit.col[0]}): a masked target can never be ranked; "
            "mask_train masks the user's whole train row, so sample-level protocols whose "
            "targets lie in it set eval.mask_train=false and give each sample its history")
    return [mask]


def _sample_block(scorer, samples: Samples, n_items: int):
    """score(users, rows) asking the scorer for sample rows; checks the block's shape."""
    import torch

    def score(users, rows):
        out = torch.as_tensor(scorer.sample_scores(rows, samples)).float()
        if out.shape != (len(rows), n_items):
            raise ValueError(f"sample_scores returned shape {tuple(out.shape)}, "
                             f"expected {(len(rows), n_items)}")
        return out

    return score
