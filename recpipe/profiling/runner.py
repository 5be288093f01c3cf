"""Run profiling requests through any backend with caching, validation and retries.

For each entity: if the cache has its key, nothing is generated. Otherwise the backend is
asked; the completion must contain a JSON object with string fields `summarization` and
`reasoning` (RLMRec's output format). Invalid output is retried up to `max_retries` times
(attempt number passed to the backend, which varies its sampling seed), then recorded as a
failure *with its raw text*: never silently dropped. Every finished entity is appended to the
cache at once, so an interrupted run resumes where it stopped.

On a rerun, cached `ok` profiles are reused. Cached failures are reused too (asking again
costs money and usually gives the same invalid output), except transport failures (the API
was down, rate limits outlasted the retries), which are retried; `retry_failed=True` retries
every failure.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from recpipe.profiling.base import Request, Response
from recpipe.profiling.cache import ProfileCache

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def cache_key(entity: str, system: str, prompt: str, signature: dict) -> str:
    """Entity + rendered prompt (covers template version and data) + backend signature."""
    blob = json.dumps([entity, system, prompt, signature], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def parse_profile(text: str | None) -> dict:
    """The {"summarization", "reasoning"} object in an LLM completion, or ValueError."""
    if not text:
        raise ValueError("empty completion")
    candidates = _FENCE.findall(text) + [text]
    for cand in candidates:
        start, end = cand.find("{"), cand.rfind("}")
        if start < 0 or end <= start:
            continue
        try:
            obj = json.loads(cand[start:end + 1])
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        summ, reason = obj.get("summarization"), obj.get("reasoning")
        if isinstance(summ, str) and summ.strip() and isinstance(reason, str):
            return {"summarization": summ.strip(), "reasoning": reason.strip()}
        raise ValueError("JSON lacks string fields 'summarization' and 'reasoning'")
    raise ValueError("no JSON object in the completion")


@dataclass
class RunStats:
    cached: int = 0
    generated: int = 0
    failed: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: list = field(default_factory=list)  # (entity, reason) of new failures


def _reusable(rec: dict | None, retry_failed: bool) -> bool:
    if rec is None:
        return False
    if rec.get("status") == "ok":
        return True
    return not retry_failed and rec.get("failure") != "transport"


def run(backend, jobs: list[tuple[str, str, str]], cache: ProfileCache, max_retries: int = 2,
        desc: str = "profiles", progress: bool = True,
        retry_failed: bool = False) -> tuple[dict[str, dict], RunStats]:
    """Profile every (entity, system, prompt) job; return {entity: cache record} and stats."""
    from tqdm import tqdm

    sig = backend.signature()
    keyed = [(cache_key(e, s, p, sig), e, s, p) for e, s, p in jobs]
    stats = RunStats()
    pending, seen = [], set()
    for key, e, s, p in keyed:
        if _reusable(cache.get(key), retry_failed):
            stats.cached += 1
        elif key not in seen:  # the same entity and prompt twice is one request
            seen.add(key)
            pending.append(Request(key=key, entity=e, system=s, prompt=p))
    bar = tqdm(total=len(pending), desc=desc, unit=" profiles", disable=not progress, mininterval=1.0)
    attempt = 0
    while pending:
        retry = []
        by_key = {r.key: r for r in pending}
        for resp in backend.generate(pending):
            req = by_key[resp.key]
            stats.prompt_tokens += resp.prompt_tokens or 0
            stats.completion_tokens += resp.completion_tokens or 0
            failure = "transport" if resp.error else "invalid"
            try:
                if resp.error:
                    raise ValueError(resp.error)
                profile = parse_profile(resp.text)
            except ValueError as err:
                if attempt < max_retries:
                    retry.append(Request(req.key, req.entity, req.system, req.prompt, attempt + 1))
                    stats.retries += 1
                    continue
                cache.put({**_record(req, "failed", None, resp, str(err), attempt + 1),
                           "failure": failure})
                stats.failed += 1
                stats.failures.append((req.entity, str(err)))
                bar.update(1)
                continue
            cache.put(_record(req, "ok", profile, resp, None, attempt + 1))
            stats.generated += 1
            bar.update(1)
        pending, attempt = retry, attempt + 1
    bar.close()
    return {e: cache.get(k) for k, e, _, _ in keyed}, stats


def _record(req: Request, status: str, profile, resp: Response, error, attempts: int) -> dict:
    return {
        "key": req.key, "entity": req.entity, "status": status, "profile": profile,
        "raw": resp.text, "error": error, "attempts": attempts,
        "prompt_tokens": resp.prompt_tokens, "completion_tokens": resp.completion_tokens,
    }
