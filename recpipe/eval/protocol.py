"""Evaluation options and the per-paper presets (evaluation.md sections 5 and 8).

`EvalConfig` is also the `eval` section of params.yaml. A preset fills every option with one
paper's convention; keys set explicitly next to `preset` override it, so a user can start from
a paper's protocol and change one thing (e.g. `-S eval.preset=rlmrec -S eval.ks=[20]`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from recpipe.config import ParamError, choice, parse, rng

PRESETS: dict[str, dict] = {
    # project default for the cross-method leaderboard: everything seen before is masked
    "unified": dict(ks=[5, 10, 20, 40, 100], mask_train=True, mask_valid_at_test=True,
                    candidates="all", recall_denominator="full", ndcg_idcg="standard",
                    average="users_with_targets", also_truncated=True, per_domain=True),
    # HKUDS/RLMRec: train masked; validation items stay candidates at test
    "rlmrec": dict(ks=[5, 10, 20], mask_train=True, mask_valid_at_test=False, candidates="all",
                   recall_denominator="full", ndcg_idcg="standard",
                   average="users_with_targets", also_truncated=False, per_domain=False),
    # yaochenzhu/LLM4Rec: truncated recall, all users averaged (each must have a target)
    "cllm4rec": dict(ks=[20, 40, 100], mask_train=True, mask_valid_at_test=False,
                     candidates="all", recall_denominator="truncated", ndcg_idcg="standard",
                     average="all_users", also_truncated=False, per_domain=False),
    # Xu107/HeLLM: leave-one-out, history not excluded, single target
    "hellm": dict(ks=[5, 10, 20], mask_train=False, mask_valid_at_test=False, candidates="all",
                  recall_denominator="full", ndcg_idcg="standard",
                  average="users_with_targets", also_truncated=False, per_domain=False),
    # Xu107/MMHCL: retrieved-hits IDCG with K_max = max(ks)
    "mmhcl": dict(ks=[10, 20], mask_train=True, mask_valid_at_test=False, candidates="all",
                  recall_denominator="full", ndcg_idcg="retrieved_hits",
                  average="users_with_targets", also_truncated=False, per_domain=False),
    # Honghui-BAO/HUM: ranked inside the target's domain, history not excluded
    "hum": dict(ks=[1, 5, 10, 20], mask_train=False, mask_valid_at_test=False,
                candidates="target_domain", recall_denominator="full", ndcg_idcg="standard",
                average="users_with_targets", also_truncated=False, per_domain=True,
                valid_candidates="seen", subsets=True),
}


@dataclass
class EvalConfig:
    # unified | rlmrec | cllm4rec | hellm | mmhcl | hum: fills every option below
    preset: str = field(default="unified", metadata=choice(*PRESETS))
    # cut-offs K
    ks: list[int] = field(default_factory=lambda: [5, 10, 20, 40, 100], metadata=rng(1))
    # give training items -inf (history exclusion for user-level evaluation)
    mask_train: bool = True
    # also mask validation items when testing (the references leave them in)
    mask_valid_at_test: bool = True
    # all | target_domain (rank only items of the target's domain, per user and domain) |
    # sampled (each sample's explicit list, e.g. target + 99 negatives: evaluate_samples only,
    # keys prefixed sampled_)
    candidates: str = field(default="all", metadata=choice("all", "target_domain", "sampled"))
    # validation candidates: all | seen (items seen in train or valid, as HUM's validation)
    valid_candidates: str = field(default="all", metadata=choice("all", "seen"))
    # recall@K denominator: full = |T_u| (RLMRec), truncated = min(K, |T_u|) (CLLM4Rec)
    recall_denominator: str = field(default="full", metadata=choice("full", "truncated"))
    # NDCG ideal DCG: standard (over min(K, |T_u|)) | retrieved_hits (MMHCL's code)
    ndcg_idcg: str = field(default="standard", metadata=choice("standard", "retrieved_hits"))
    # users_with_targets | all_users (raises when a user has no target, as in CLLM4Rec) |
    # samples (mean over evaluation samples, several per user: HUM; evaluate_samples only)
    average: str = field(default="users_with_targets",
                         metadata=choice("users_with_targets", "all_users", "samples"))
    # also log recall_trunc@K next to recall@K
    also_truncated: bool = True
    # per-domain tables and their macro average on multi-domain data
    per_domain: bool = True
    # sample-level units only: also the Long-tail and Hetero blocks of HUM's tables, with the
    # project's definitions (recpipe/eval/subsets.py): `longtail/<metric>` over samples whose
    # target is in the least popular `longtail_share` of its domain's items (training counts),
    # `hetero/<metric>` over samples whose history spans >= 2 domains; each per domain too
    subsets: bool = False
    longtail_share: float = field(default=0.8, metadata=rng(0.0, 1.0, lo_open=True))
    # torch (batched topk) | faiss (embedding methods only)
    backend: str = field(default="torch", metadata=choice("torch", "faiss"))
    # faiss index_factory string: Flat is exact; HNSW32, IVF1024,Flat are approximate
    faiss_index: str = "Flat"
    # memory budget (MiB) for one user batch of scores and masks
    memory_mb: int = field(default=1024, metadata=rng(16))


def resolve(data: dict | None, prefix: str = "eval") -> EvalConfig:
    """Parse an `eval` section: the preset's values first, explicit keys on top (a key set to
    null keeps the preset's value: params.yaml lists `average: null` so that `-S` can set it)."""
    data = {k: v for k, v in (data or {}).items() if v is not None}
    name = data.get("preset", "unified")
    if name not in PRESETS:
        raise ParamError(f"{prefix}.preset: {name!r} is not allowed; choose one of {', '.join(PRESETS)}")
    merged = {**PRESETS[name], **data}
    cfg = parse(EvalConfig, merged, prefix=prefix)
    known = {f.name for f in fields(EvalConfig)}
    assert set(PRESETS[name]) <= known
    return cfg
