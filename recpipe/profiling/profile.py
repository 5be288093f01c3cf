"""The `profile` stage's work: processed split -> RLMRec item and user profiles.

RLMRec order: items first (basic information + up to `max_reviews` training reviews), then
users from their up-to-`max_items` *training* interactions, each shown with the item's title,
the item profile's summarization and the user's own review. Leakage rule (RLMRec issues #10,
#20, #26): only rows of interactions.parquet with `split == "train"` reach any prompt; this
module filters them in one place (`train_rows`) and tests/test_profile_leakage.py proves it.

Every profile goes through `runner.run` with the append-only cache, so an interrupted run
resumes where it stopped. Outputs keep every id of the processed maps, failures included
(status `failed` with the raw completion, `empty` when there was nothing to profile or the
model answered "None").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from recpipe.config import choice, rng
from recpipe.profiling import prompts
from recpipe.profiling.base import get_backend
from recpipe.profiling.cache import ProfileCache
from recpipe.profiling.runner import run


@dataclass
class OpenAIParams:
    # OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp server, ...)
    base_url: str = "https://api.openai.com/v1"
    # model name the endpoint serves (RLMRec: gpt-3.5-turbo)
    model: str = "gpt-3.5-turbo"
    # environment variable that holds the API key (the key itself never goes in params)
    api_key_env: str = "OPENAI_API_KEY"
    # requests in flight at once
    concurrency: int = field(default=4, metadata=rng(1, 256))
    # seconds before one HTTP request is abandoned
    timeout_s: float = field(default=60.0, metadata=rng(0.0, None, lo_open=True))
    # HTTP-level retries (429, 5xx, timeouts) with backoff, before the runner's retries
    max_retries_http: int = field(default=5, metadata=rng(0))
    # requests per minute cap; 0 = none
    rpm: float = field(default=0.0, metadata=rng(0.0))
    # stop the run (naming base_url) after this many requests in a row got no answer at all,
    # each after its HTTP retries; 0 = never stop
    max_consecutive_failures: int = field(default=5, metadata=rng(0))


@dataclass
class ProfileParams:
    # template (extractive, NOT an LLM) | hf (local transformers model) | openai (endpoint)
    backend: str = field(default="template", metadata=choice("template", "hf", "openai"))
    # prompt set: auto (from dataset.format / domain names) | amazon | yelp | steam | generic
    kind: str = field(default="auto", metadata=choice("auto", *prompts.KINDS))
    # hf: smollm2-135m (real, offline) | a Hugging Face id or local folder | tiny-gpt2 |
    # tiny-llama | tiny-qwen2 (random weights, tests only); see recpipe.llm.backbone
    model: str = "smollm2-135m"
    # training reviews shown per item prompt / training interactions per user prompt
    max_reviews: int = field(default=5, metadata=rng(0))
    max_items: int = field(default=10, metadata=rng(1))
    # which ones when there are more: recent (latest first) | random (seeded by `seed`)
    pick: str = field(default="recent", metadata=choice("recent", "random"))
    # characters kept of each review / of an item description (cut at a word boundary)
    max_review_chars: int = field(default=1000, metadata=rng(20))
    max_description_chars: int = field(default=1000, metadata=rng(20))
    # retries of an invalid completion before it is recorded as failed
    max_retries: int = field(default=2, metadata=rng(0))
    # hf: prompts per generate() call
    batch_size: int = field(default=8, metadata=rng(1))
    # hf/openai: completion length cap
    max_new_tokens: int = field(default=384, metadata=rng(1))
    # 0 = greedy; > 0 = sampling seeded by `seed` + attempt
    temperature: float = field(default=0.0, metadata=rng(0.0, 2.0))
    # hf: temperature for retries when `temperature` is 0 (greedy would repeat the same answer)
    retry_temperature: float = field(default=0.7, metadata=rng(0.0, 2.0))
    # hf: auto (cuda if available) | cpu | cuda | cuda:N | mps (checked: recpipe.train.device)
    device: str = "auto"
    # hf: auto (bfloat16 on a GPU that supports it, else float32) | float32 | bfloat16 | float16
    dtype: str = field(default="auto", metadata=choice("auto", "float32", "bfloat16", "float16"))
    # hf: write the answer's JSON skeleton and let the model fill its two strings (small
    # models such as smollm2-135m rarely produce the JSON unaided); false = free generation
    guided: bool = True
    # hf: generate()'s repetition penalty (1.0 = off; ~1.2 stops a small model's loops)
    repetition_penalty: float = field(default=1.0, metadata=rng(1.0, 2.0))
    # openai backend settings
    openai: OpenAIParams = field(default_factory=OpenAIParams)

    def validate(self) -> None:
        from recpipe.train.device import check_device

        check_device(self.device, "profile.device")
        if self.backend == "hf":
            from recpipe.llm.backbone import check_name

            check_name(self.model, "profile.model")


def make_backend(p: ProfileParams, seed: int):
    cls = get_backend(p.backend)
    if p.backend == "template":
        return cls()
    if p.backend == "hf":
        return cls(model=p.model, device=p.device, dtype=p.dtype, batch_size=p.batch_size,
                   max_new_tokens=p.max_new_tokens, temperature=p.temperature,
                   retry_temperature=p.retry_temperature, seed=seed, guided=p.guided,
                   repetition_penalty=p.repetition_penalty)
    return cls(**dataclasses.asdict(p.openai), temperature=p.temperature,
               max_tokens=p.max_new_tokens, seed=seed)


def train_rows(interactions: pl.DataFrame) -> pl.DataFrame:
    """The only interactions any prompt may use (the leakage rule)."""
    return interactions.filter(pl.col("split") == "train")


def _pick(df: pl.DataFrame, by: str, k: int, pick: str, seed: int) -> pl.DataFrame:
    """Up to k rows per `by`, latest first (ties by the other id) or seeded-random."""
    if k == 0:  # polars' group_by().head(0) yields one null row per group, not none
        return df.clear()
    other = "uid" if by == "iid" else "iid"
    df = df.sort([by, "ts", other], descending=[False, True, False], nulls_last=True)
    if pick == "random":  # one draw per row in canonical order: reproducible for a seed
        r = np.random.default_rng([seed, 0 if by == "iid" else 1]).random(df.height)
        df = df.with_columns(pl.Series("_r", r)).sort([by, "_r"]).drop("_r")
    return df.group_by(by, maintain_order=True).head(k)


def item_jobs(items: pl.DataFrame, train: pl.DataFrame, tmpl, p: ProfileParams, seed: int):
    """[(entity, system, prompt)] for items with anything to say, in iid order."""
    review = pl.col("review")
    has_text = train.filter(review.is_not_null() & (review.str.strip_chars() != ""))
    picked = _pick(has_text, "iid", p.max_reviews, p.pick, seed)
    reviews: dict[int, list[str]] = {}
    for iid, text in picked.select("iid", "review").iter_rows():
        reviews.setdefault(iid, []).append(prompts.truncate(text, p.max_review_chars))
    jobs = []
    for row in items.sort("iid").iter_rows(named=True):
        info = prompts.item_info(tmpl, row, p.max_description_chars)
        revs = reviews.get(row["iid"], [])
        if info or revs:
            jobs.append((f"item:{row['iid']}", *prompts.item_prompt(tmpl, info, revs)))
    return jobs


def user_jobs(users: list[int], items: pl.DataFrame, train: pl.DataFrame,
              item_summary: dict[int, str], tmpl, p: ProfileParams, seed: int):
    """[(entity, system, prompt)] for users with training interactions, in uid order."""
    titles = dict(items.select("iid", "title").iter_rows())
    picked = _pick(train, "uid", p.max_items, p.pick, seed)
    history: dict[int, list[dict]] = {}
    for uid, iid, review in picked.select("uid", "iid", "review").iter_rows():
        entry = {"title": prompts.truncate(titles.get(iid), 200),
                 "description": item_summary.get(iid, ""),
                 "review": prompts.truncate(review, p.max_review_chars)}
        entry = {k: v for k, v in entry.items() if v}
        if entry:  # releases without text (RLMRec's matrices) give nothing to say: no job
            history.setdefault(uid, []).append(entry)
    return [(f"user:{u}", *prompts.user_prompt(tmpl, history[u])) for u in users if u in history]


_COLS = ("status", "summarization", "reasoning", "raw", "error")


def _table(ids: list[int], id_col: str, kind: str, records: dict) -> pl.DataFrame:
    """One row per id; status ok | empty (nothing to profile, or the answer was "None") | failed."""
    rows = {c: [] for c in _COLS}
    for i in ids:
        rec = records.get(f"{kind}:{i}")
        if rec is None:
            vals = ("empty", None, None, None, "no training text to profile")
        elif rec["status"] != "ok":
            vals = ("failed", None, None, rec.get("raw"), rec.get("error"))
        else:
            prof = rec["profile"]
            none = prof["summarization"].strip().strip(".").lower() in ("none", "")
            vals = ("empty" if none else "ok", prof["summarization"], prof["reasoning"],
                    rec.get("raw"), "the model answered None" if none else None)
        for c, v in zip(_COLS, vals):
            rows[c].append(v)
    return pl.DataFrame({id_col: pl.Series(ids, dtype=pl.Int32), **rows},
                        schema_overrides={c: pl.String for c in _COLS})


def profile(processed: Path, out: Path, cache_path: Path, p: ProfileParams, seed: int,
            dataset_format: str | None = None, progress: bool = True, backend=None) -> dict:
    """Write item_profiles.parquet and user_profiles.parquet into `out`; return metrics."""
    from recpipe.io import write_parquet

    processed, out = Path(processed), Path(out)
    items = pl.read_parquet(processed / "items.parquet")
    train = train_rows(pl.read_parquet(processed / "interactions.parquet"))
    iids = pl.read_parquet(processed / "item_map.parquet")["iid"].sort().to_list()
    uids = pl.read_parquet(processed / "user_map.parquet")["uid"].sort().to_list()
    domains = sorted(set(items["domain"].drop_nulls().to_list()))
    tmpl = prompts.TEMPLATES[prompts.resolve_kind(p.kind, dataset_format, domains)]
    backend = backend or make_backend(p, seed)
    metrics: dict = {}
    with ProfileCache(cache_path) as cache:
        jobs = item_jobs(items, train, tmpl, p, seed)
        recs, st = run(backend, jobs, cache, p.max_retries, desc="item profiles", progress=progress)
        item_tab = _table(iids, "iid", "item", recs)
        _count(metrics, "items", item_tab, st)
        ok = item_tab.filter(pl.col("status") == "ok")
        summary = dict(ok.select("iid", "summarization").iter_rows())
        jobs = user_jobs(uids, items, train, summary, tmpl, p, seed)
        recs, su = run(backend, jobs, cache, p.max_retries, desc="user profiles", progress=progress)
        user_tab = _table(uids, "uid", "user", recs)
        _count(metrics, "users", user_tab, su)
    write_parquet(out / "item_profiles.parquet", item_tab)
    write_parquet(out / "user_profiles.parquet", user_tab)
    metrics.update(retries=st.retries + su.retries,
                   prompt_tokens=st.prompt_tokens + su.prompt_tokens,
                   completion_tokens=st.completion_tokens + su.completion_tokens)
    return {"kind": tmpl.kind, "template_version": tmpl.version, **metrics}


def _count(metrics: dict, name: str, tab: pl.DataFrame, stats) -> None:
    status = tab["status"]
    metrics[name] = tab.height
    for s in ("ok", "empty", "failed"):
        metrics[f"{name}_{s}"] = int((status == s).sum())
    metrics[f"{name}_cached"] = stats.cached
    metrics[f"{name}_generated"] = stats.generated + stats.failed
