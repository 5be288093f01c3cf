"""Profiling: prompts, the template and hf backends, and the profile stage end to end.

The data is a small synthetic sample, ingested and split by the real pipeline code, so the
prompts see the same tables the `profile` stage reads. The hf tests use tiny randomly
initialised models: their output is nonsense, which is exactly what the failure path needs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from recpipe.llm import smollm2
from recpipe.config import ParamError, parse
from recpipe.data.ingest import ingest
from recpipe.data.processed import build
from recpipe.data.sample import SampleConfig, generate
from recpipe.params import DatasetParams, IngestParams, SplitParams
from recpipe.profiling import prompts
from recpipe.profiling.backends.template import TemplateBackend
from recpipe.profiling.base import Response
from recpipe.profiling.cache import ProfileCache
from recpipe.profiling.profile import (ProfileParams, item_jobs, make_backend, profile,
                                       train_rows, user_jobs)
from recpipe.profiling.runner import run

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(n_users=60, n_items=72, n_clusters=4, reviews_per_user_mean=9.0, seed=3)


@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("profiling")
    generate(SampleConfig(**SMALL), base / "raw")
    dataset = DatasetParams(format="amazon2018", path=str(base / "raw"))
    ingest(dataset, IngestParams(), base / "interim")
    build(base / "interim", base / "processed", SplitParams(), 5)
    return base / "processed"


@pytest.fixture(scope="module")
def tables(processed):
    items = pl.read_parquet(processed / "items.parquet")
    inter = pl.read_parquet(processed / "interactions.parquet")
    return items, inter


class Counting:
    """Wraps a backend and counts the requests it is asked to generate."""

    def __init__(self, inner):
        self.inner, self.name, self.model, self.requests = inner, inner.name, inner.model, 0

    def signature(self):
        return self.inner.signature()

    def generate(self, requests):
        requests = list(requests)
        self.requests += len(requests)
        yield from self.inner.generate(requests)


def _profile(processed, tmp_path, name, backend=None, cache=None, **params):
    p = parse(ProfileParams, params, prefix="profile")
    out = tmp_path / name
    metrics = profile(processed, out, cache or out / "cache.jsonl", p, 5, "amazon2018",
                      progress=False, backend=backend)
    read = pl.read_parquet
    return metrics, read(out / "item_profiles.parquet"), read(out / "user_profiles.parquet")


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]{4,}", (text or "").lower()))


def test_template_profiles_every_item_and_user_deterministically(processed, tables, tmp_path):
    items, inter = tables
    m, it, us = _profile(processed, tmp_path, "a")
    n_items = pl.read_parquet(processed / "item_map.parquet").height
    n_users = pl.read_parquet(processed / "user_map.parquet").height
    assert it["iid"].to_list() == list(range(n_items))
    assert us["uid"].to_list() == list(range(n_users))
    assert (it["status"] == "ok").all() and (us["status"] == "ok").all()
    assert m["items_ok"] == n_items and m["users_ok"] == n_users and m["items_generated"] == n_items
    for raw in it["raw"].to_list() + us["raw"].to_list():
        obj = json.loads(raw)
        assert set(obj) == {"summarization", "reasoning"} and obj["summarization"] != "None"
    # extractive: an item profile names words of its own title; a user profile words of the
    # titles/reviews of the user's training items (the text signal embeddings rely on)
    titles = dict(items.select("iid", "title").iter_rows())
    summaries = it.select("iid", "summarization").iter_rows()
    hits = sum(bool(_words(s) & _words(titles[i])) for i, s in summaries)
    assert hits == n_items
    train = train_rows(inter).join(items.select("iid", "title"), on="iid")
    seen = {u: _words(" ".join(g["title"].to_list() + g["review"].to_list()))
            for (u,), g in train.group_by("uid")}
    assert all(_words(s) & seen[u] for u, s in us.select("uid", "summarization").iter_rows())
    # different items get different profiles (the text carries signal, not one boilerplate)
    assert it["summarization"].n_unique() > 0.9 * n_items
    _, it2, us2 = _profile(processed, tmp_path, "b")
    assert it2.equals(it) and us2.equals(us)


def test_prompts_hold_the_title_and_only_training_reviews(processed, tables):
    items, inter = tables
    p = ProfileParams(max_reviews=3, max_items=4, max_review_chars=60)
    tmpl = prompts.TEMPLATES[prompts.resolve_kind("auto", "amazon2018", [])]
    assert tmpl.kind == "amazon" and "products" in tmpl.item_system
    train = train_rows(inter)
    jobs = dict((e, (s, pr)) for e, s, pr in item_jobs(items, train, tmpl, p, 5))
    row = items.filter(pl.col("iid") == 7).row(0, named=True)
    system, prompt = jobs["item:7"]
    sec = prompts.parse_sections(prompt)
    assert sec[prompts.INFO]["title"] == row["title"] and row["title"] in prompt
    assert sec[prompts.INFO]["categories"] == row["categories"]
    latest = train.filter(pl.col("iid") == 7).sort(["ts", "uid"], descending=[True, False]).head(3)
    want = [prompts.truncate(r, 60) for r in latest["review"]]
    assert [f["review"] for f in sec[prompts.FEEDBACK]] == want
    assert all(len(r) <= 64 for r in want) and '"summarization"' in system
    # pick=random: a seeded draw among the item's training reviews; max_reviews=0: none
    def feedback(seed, **kw):
        q = ProfileParams(max_review_chars=60, **kw)
        got = {e: pr for e, _, pr in item_jobs(items, train, tmpl, q, seed)}
        return [prompts.parse_sections(got[f"item:{i}"])[prompts.FEEDBACK] for i in range(20)]
    drawn = feedback(5, pick="random", max_reviews=2)
    again = feedback(5, pick="random", max_reviews=2)
    other = feedback(6, pick="random", max_reviews=2)
    assert drawn == again != other
    assert drawn != feedback(5, max_reviews=2) and all(len(f) == 2 for f in drawn)
    assert feedback(5, max_reviews=0) == [[]] * 20

    summary = {i: f"SUMMARY{i}" for i in range(0, items.height, 2)}  # odd items: no profile
    users = pl.read_parquet(processed / "user_map.parquet")
    ujobs = {e: pr for e, _, pr in user_jobs([0, 1, 2], items, train, summary, tmpl, p, 5)}
    titles = dict(items.select("iid", "title").iter_rows())
    for u in (0, 1, 2):
        prompt = ujobs[f"user:{u}"]
        entries = prompts.parse_sections(prompt)[tmpl.history]
        mine = train.filter(pl.col("uid") == u).sort(["ts", "iid"], descending=[True, False])
        mine = mine.head(4)
        assert [e["title"] for e in entries] == [titles[i] for i in mine["iid"]]
        assert [e["review"] for e in entries] == [prompts.truncate(r, 60) for r in mine["review"]]
        assert [e.get("description") for e in entries] == [summary.get(i) for i in mine["iid"]]
        assert users["user"][u] not in prompt  # no user id (RLMRec issue #21)


def test_kind_resolution_and_params():
    assert prompts.resolve_kind("auto", "yelp", []) == "yelp"
    assert prompts.resolve_kind("auto", "rlmrec", ["steam"]) == "steam"
    assert prompts.resolve_kind("auto", "seqtxt", ["Beauty"]) == "generic"
    assert prompts.resolve_kind("generic", "amazon2018", []) == "generic"
    steam = prompts.item_info(prompts.TEMPLATES["steam"], {
        "title": "Space Miner", "brand": "Dev Co", "categories": ["Action"],
        "extra": json.dumps({"tags": ["Sci-fi", "Sci-fi", "Indie"]})}, 100)
    assert steam == {"name": "Space Miner", "publisher": "Dev Co", "genres": ["Action"],
                     "tags": ["Sci-fi", "Indie"]}
    assert "PLAYED GAMES" in prompts.TEMPLATES["steam"].user_system
    p = parse(ProfileParams, {"backend": "openai", "openai": {"model": "m", "rpm": 60}},
              prefix="profile")
    assert p.openai.model == "m" and p.openai.rpm == 60 and p.openai.api_key_env == "OPENAI_API_KEY"
    sig = make_backend(p, 3).signature()  # the sub-mapping reaches the openai backend
    assert sig["model"] == "m" and sig["backend"] == "openai"
    with pytest.raises(ParamError, match="profile.openai: unknown key"):
        parse(ProfileParams, {"openai": {"api_key": "sk-x"}}, prefix="profile")
    with pytest.raises(ParamError, match="profile.backend"):
        parse(ProfileParams, {"backend": "gpt"}, prefix="profile")
    with pytest.raises(ParamError, match="profile.device"):
        parse(ProfileParams, {"device": "tpu"}, prefix="profile")
    assert prompts.truncate("aaa bbb ccc ddd", 9) == "aaa bbb ..."


def test_cache_hit_generates_nothing_and_a_crash_keeps_finished_work(processed, tmp_path):
    cache = tmp_path / "cache.jsonl"
    first = Counting(TemplateBackend())
    m1, it, us = _profile(processed, tmp_path, "one", backend=first, cache=cache)
    assert first.requests == it.height + us.height
    again = Counting(TemplateBackend())
    m2, it2, us2 = _profile(processed, tmp_path, "two", backend=again, cache=cache)
    assert again.requests == 0 and m2["items_cached"] == it.height and m2["users_generated"] == 0
    assert it2.equals(it) and us2.equals(us)

    class Dies(Counting):  # killed after 10 profiles
        def generate(self, requests):
            for r in self.inner.generate(requests):
                if self.requests == 10:
                    raise KeyboardInterrupt
                self.requests += 1
                yield r

    crash = tmp_path / "crash.jsonl"
    with pytest.raises(KeyboardInterrupt):
        _profile(processed, tmp_path, "crash", backend=Dies(TemplateBackend()), cache=crash)
    resumed = Counting(TemplateBackend())
    m3, it3, _ = _profile(processed, tmp_path, "resume", backend=resumed, cache=crash)
    assert m3["items_cached"] == 10 and resumed.requests == it.height + us.height - 10
    assert it3.equals(it)


class Scripted:
    """A stub backend answering each item from a script, per attempt."""

    name = model = "scripted"

    def __init__(self, script):
        self.script = script

    def signature(self):
        return {"backend": "scripted"}

    def generate(self, requests):
        for r in requests:
            answers = self.script.get(r.entity, ['{"summarization": "x", "reasoning": ""}'])
            yield Response(r.key, answers[min(r.attempt, len(answers) - 1)])


def test_completions_are_validated_retried_and_failures_kept(processed, tmp_path):
    good = '{"summarization": "Fans of knights", "reasoning": "reviews"}'
    script = {
        "item:0": ["Sure! ```json\n" + good + "\n```"],  # fenced: parsed
        "item:1": ["I cannot", "still no", good],  # valid on the last retry
        "item:2": ["garbage", "more garbage", "{not json"],  # failed, raw kept
        "item:3": ['{"summarization": "None", "reasoning": "no information"}'],  # empty
    }
    m, it, _ = _profile(processed, tmp_path, "s", backend=Scripted(script), max_retries=2)
    rows = {r["iid"]: r for r in it.head(4).iter_rows(named=True)}
    assert rows[0]["status"] == "ok" and rows[0]["summarization"] == "Fans of knights"
    assert rows[1]["status"] == "ok" and rows[1]["raw"] == good
    assert rows[2]["status"] == "failed" and rows[2]["raw"] == "{not json"
    assert rows[2]["summarization"] is None and "JSON" in rows[2]["error"]
    assert rows[3]["status"] == "empty" and rows[3]["error"] == "the model answered None"
    assert m["items_failed"] == 1 and m["items_empty"] == 1 and m["retries"] == 4



def _hf_jobs(tables, n=3):
    items, inter = tables
    p = ProfileParams(max_reviews=1, max_review_chars=40, max_description_chars=40)
    return item_jobs(items.head(n), train_rows(inter), prompts.TEMPLATES["amazon"], p, 5)


def test_hf_tiny_gpt2_runs_and_records_nonsense_as_failed(tables, tmp_path, one_torch_thread):
    from recpipe.profiling.backends.hf import HFBackend

    jobs = _hf_jobs(tables, n=2)
    backend = HFBackend("tiny-gpt2", device="cpu", batch_size=2, max_new_tokens=8, seed=1)
    with ProfileCache(tmp_path / "c.jsonl") as cache:
        recs, st = run(backend, jobs, cache, max_retries=1, progress=False)
    assert st.failed == 2 and st.retries == 2 and st.generated == 0
    for rec in recs.values():
        assert rec["status"] == "failed" and rec["attempts"] == 2
        assert isinstance(rec["raw"], str) and rec["error"]
        assert rec["completion_tokens"] >= 1 and rec["prompt_tokens"] > 50
    assert st.completion_tokens > 0 and backend.calls == 2  # 1 batch x 2 attempts
    assert "JSON answer:" in backend.render(_req(jobs[0]))  # plain format: no chat template
    with ProfileCache(tmp_path / "c.jsonl") as cache:  # reread: every entity is a cache hit
        again, st2 = run(backend, jobs, cache, max_retries=1, progress=False)
    assert st2.cached == 2 and backend.calls == 2 and again == recs
    # sampling is seeded: a fresh backend with the same seed writes the same answers
    texts = [[r.text for r in HFBackend("tiny-gpt2", device="cpu", max_new_tokens=8,
                                        temperature=1.0, seed=s).generate([_req(jobs[0])])]
             for s in (1, 1, 2)]
    assert texts[0] == texts[1] and texts[0] != texts[2]


def _req(job):
    from recpipe.profiling.base import Request

    e, s, p = job
    return Request(key=e, entity=e, system=s, prompt=p)


def test_hf_tiny_qwen2_chat_template_and_valid_json_is_parsed(tables, tmp_path, one_torch_thread):
    import torch

    from recpipe.profiling.backends.hf import HFBackend

    jobs = _hf_jobs(tables, n=2)
    backend = HFBackend("tiny-qwen2", device="cpu", max_new_tokens=64, seed=1)
    backend._load()
    assert backend.render(_req(jobs[0])).startswith("<|system|>\nYou help a recommender")
    answer = '{"summarization": "Readers of history", "reasoning": "title"}'
    tok = backend._tok
    ids = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id, tok.pad_token_id]

    def fake_generate(input_ids, attention_mask, **kw):  # a model that answers well
        assert attention_mask[:, -1].all() and kw["do_sample"] is False  # left padding, greedy
        tail = torch.tensor([ids] * input_ids.shape[0])
        return torch.cat([input_ids, tail], dim=1)

    backend._lm.generate = fake_generate
    with ProfileCache(tmp_path / "q.jsonl") as cache:
        recs, st = run(backend, jobs, cache, max_retries=0, progress=False)
    assert st.generated == 2 and st.failed == 0
    for rec in recs.values():
        assert rec["profile"] == {"summarization": "Readers of history", "reasoning": "title"}
        assert rec["completion_tokens"] == len(ids) - 1  # up to and including the eos
    assert backend.signature()["model"] == "tiny-qwen2" and "dtype" not in backend.signature()


def test_stage_script_writes_outputs_and_metrics(processed, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("seed: 5\ndataset:\n  format: amazon2018\n"
                      "profile:\n  backend: template\n  max_items: 3\n")
    out, metrics = tmp_path / "profiles", tmp_path / "profile.json"
    cmd = [sys.executable, str(ROOT / "stages/profiles.py"), "--params", str(params),
           "--processed", str(processed), "--out", str(out),
           "--cache", str(tmp_path / "c/cache.jsonl"), "--metrics", str(metrics)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    m = json.loads((out / "metrics.json").read_text())  # the full file; metrics: the headline
    assert set(json.loads(metrics.read_text())) == {"ok", "failed", "status"}
    assert m["kind"] == "amazon" and m["items_failed"] == 0 and m["users_ok"] > 0
    assert set(pl.read_parquet(out / "user_profiles.parquet").columns) == {
        "uid", "status", "summarization", "reasoning", "raw", "error"}
    params.write_text("profile:\n  backend: template\n  max_itemz: 3\n")
    bad = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "max_itemz" in bad.stderr


def test_hf_local_path_loads_like_a_hub_model(tables, tmp_path, one_torch_thread):
    """A model folder on disk takes the AutoTokenizer/AutoModelForCausalLM path (the one real
    models use): tiny-llama saved with its chat template, loaded in bfloat16, generates."""
    import torch

    from recpipe.llm.tiny import build_tiny
    from recpipe.profiling.backends.hf import HFBackend

    model, tok = build_tiny("tiny-llama", 4)
    model.save_pretrained(tmp_path / "llama")
    tok.save_pretrained(tmp_path / "llama")
    backend = HFBackend(str(tmp_path / "llama"), device="cpu", dtype="bfloat16", max_new_tokens=4)
    jobs = _hf_jobs(tables, n=1)
    (resp,) = backend.generate([_req(jobs[0])])
    assert backend._lm.dtype == torch.bfloat16 and resp.error is None
    assert 1 <= resp.completion_tokens <= 4 and isinstance(resp.text, str)
    assert backend.render(_req(jobs[0])).startswith("<|system|>")
    sig = backend.signature()
    assert sig["model"] == str(tmp_path / "llama") and "seed" in sig  # retries sample
    assert "seed" not in HFBackend("x", retry_temperature=0.0).signature()  # pure greedy


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-qwen2"])
def test_guided_generation_makes_even_a_random_model_answer_in_json(name, tables, one_torch_thread):
    """A random model never writes RLMRec's JSON by itself; guided, every answer parses, with
    both strings non-empty, within max_new_tokens."""
    from recpipe.profiling.backends.hf import HFBackend
    from recpipe.profiling.runner import parse_profile

    reqs = [_req(j) for j in _hf_jobs(tables, n=3)]
    free = list(HFBackend(name, device="cpu", max_new_tokens=24, seed=2).generate(reqs))
    guided = list(HFBackend(name, device="cpu", max_new_tokens=24, seed=2,
                            guided=True).generate(reqs))
    assert [r.key for r in guided] == [r.key for r in free]
    for r in free:
        with pytest.raises(ValueError):
            parse_profile(r.text)
    for r in guided:
        prof = parse_profile(r.text)
        assert prof["summarization"] and prof["reasoning"] and '"' not in prof["summarization"]
        assert 3 <= r.completion_tokens <= 24
    sig = HFBackend(name, guided=True).signature()
    assert sig["guided"] is True and "guided" not in HFBackend(name).signature()


def test_guided_processor_forces_the_separator_after_a_quote_and_eos_after_the_second():
    """The state machine on a scripted model: it always prefers token 7 (a quote) once a string
    has a word; the processor turns that into `sep`, then eos."""
    import torch

    from recpipe.profiling.backends.guided import GuidedJSON, answer

    quote, sep, close, eos = 7, [20, 21], [7, 20, 21], 2
    steer = GuidedJSON({quote}, sep, close, [eos], prompt_len=3, budget=40)
    ids = torch.tensor([[1, 1, 1]])
    for _ in range(8):
        scores = torch.zeros(1, 30)
        scores[0, quote] = 5.0
        scores[0, eos] = 9.0  # the model would stop at once: not allowed mid-string
        ids = torch.cat([ids, steer(ids, scores).argmax(-1, keepdim=True)], dim=1)
    # a word (quote and eos blocked), the quote, sep forced, a word, the quote, eos forced
    assert ids[0, 3:].tolist()[:7] == [0, quote, 20, 21, 0, quote, eos]
    assert answer('Readers of history", "reasoning": "the reviews"}') == \
        '{"summarization": "Readers of history", "reasoning": "the reviews"}'
    assert answer("no quote at all") == "no quote at all"  # recorded as a failure, raw kept


@pytest.mark.skipif(not smollm2.installed(),
                    reason=f"the wheel {smollm2.WHEEL} is not installed: {smollm2.INSTALL}")
def test_smollm2_writes_real_profiles_guided(tables):
    """The real offline LLM through the stage's backend: every answer parses into English
    sentences (a random model writes byte soup). Whether it is *about* the item is another
    matter at 135M parameters: one run called a science-fiction trilogy a cookbook."""
    import re

    from recpipe.profiling.backends.hf import HFBackend

    from recpipe.profiling.runner import parse_profile

    jobs = _hf_jobs(tables, n=2)
    backend = HFBackend("smollm2-135m", device="cpu", batch_size=2, max_new_tokens=48,
                        guided=True, repetition_penalty=1.2)
    out = list(backend.generate([_req(j) for j in jobs]))
    words = lambda t: set(re.findall(r"[a-z]{4,}", t.lower()))  # noqa: E731
    for resp in out:
        prof = parse_profile(resp.text)
        text = prof["summarization"] + " " + prof["reasoning"]
        letters = sum(c.isalpha() or c in " .,'-" for c in text) / len(text)
        assert len(words(text)) >= 5 and letters > 0.9, text
