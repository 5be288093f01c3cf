"""OpenAI-compatible backend against a real local HTTP server with injected faults.

Everything goes through `recpipe.profiling.runner.run` with a `ProfileCache` in tmp, as the
profile stage uses it; the server's request log is the ground truth for what was sent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from email.utils import formatdate
from pathlib import Path

import pytest
from llm_server import FakeLLMServer, expected_profile

from recpipe.profiling.backends.openai import EndpointUnreachable, OpenAIBackend, retry_after_seconds
from recpipe.profiling.cache import ProfileCache
from recpipe.profiling.runner import run

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = "You profile items for a recommender. Answer in JSON."
KEY_ENV = "RECPIPE_TEST_OPENAI_KEY"


def marker(i: int) -> str:
    return f"<<ent-{i:03d}>>"  # delimited so that no marker is a substring of another


def jobs(n: int) -> list[tuple[str, str, str]]:
    return [(f"item:{i}", SYSTEM, f"Title: widget {i} {marker(i)}\nDescribe the item.") for i in range(n)]


class Recording:
    """Backend wrapper that keeps every Response the runner received."""

    def __init__(self, inner: OpenAIBackend):
        self.inner, self.name, self.model, self.responses = inner, inner.name, inner.model, []

    def signature(self) -> dict:
        return self.inner.signature()

    def generate(self, requests):
        for resp in self.inner.generate(requests):
            self.responses.append(resp)
            yield resp


def backend(server: FakeLLMServer, **kw) -> OpenAIBackend:
    opts = dict(model="tiny-model", api_key_env=KEY_ENV, concurrency=2, timeout_s=5,
                max_retries_http=3, backoff_s=0.01, backoff_max_s=0.05, seed=7)
    opts.update(kw)
    return OpenAIBackend(server.base_url, **opts)


def profile_all(b, tmp_path: Path, n: int, max_retries: int = 0):
    with ProfileCache(tmp_path / "cache.jsonl") as cache:
        return run(b, jobs(n), cache, max_retries=max_retries, progress=False)


def cached(path: Path) -> dict[str, dict]:
    """What a fresh process would load from the cache file."""
    with ProfileCache(path) as cache:
        return dict(cache.entries)


@pytest.fixture
def key(monkeypatch) -> str:
    value = f"sk-recpipe-{uuid.uuid4().hex}"
    monkeypatch.setenv(KEY_ENV, value)
    return value


def test_request_payload_and_profiles(tmp_path, key):
    with FakeLLMServer() as server:
        out, stats = profile_all(backend(server, temperature=0.3, max_tokens=99), tmp_path, 3)
    assert (stats.generated, stats.failed, stats.retries) == (3, 0, 0)
    assert len(server.log) == 3
    for ent, _, prompt in jobs(3):
        rec = out[ent]
        assert rec["status"] == "ok" and rec["profile"] == expected_profile(prompt)
        assert rec["prompt_tokens"] == len(prompt.split()) and rec["completion_tokens"] > 0
        (req,) = server.requests_for(prompt)
        assert req["headers"]["Authorization"] == f"Bearer {key}"
        assert req["headers"]["Content-Type"] == "application/json"
        assert req["body"] == {
            "model": "tiny-model", "temperature": 0.3, "max_tokens": 99, "seed": 7,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]}
    assert stats.prompt_tokens == sum(len(p.split()) for _, _, p in jobs(3))


@pytest.mark.parametrize("fault", ["429:0.05", "500", "503", "timeout", "malformed", "drop"])
def test_each_fault_is_retried_until_valid(tmp_path, key, fault):
    with FakeLLMServer(faults_by_marker={marker(1): [fault, fault]}, hang_s=5) as server:
        rec = Recording(backend(server, timeout_s=0.4 if fault == "timeout" else 5))
        out, stats = profile_all(rec, tmp_path, 3)
        seen = {i: len(server.requests_for(marker(i))) for i in range(3)}
    assert seen == {0: 1, 1: 3, 2: 1}  # two faults, then the answer
    assert [r["fault"] for r in server.requests_for(marker(1))] == [fault, fault, "ok"]
    attempts = {r.key: r.extra["http_attempts"] for r in rec.responses}
    assert sorted(attempts.values()) == [1, 1, 3]  # the backend counted what the server saw
    assert attempts[out["item:1"]["key"]] == 3
    assert stats.failed == 0 and stats.retries == 0  # transport retries never reach the runner
    assert out["item:1"]["status"] == "ok"
    assert out["item:1"]["profile"] == expected_profile(jobs(3)[1][2])
    # the cache on disk has the same valid record
    assert cached(tmp_path / "cache.jsonl")[out["item:1"]["key"]]["profile"] == out["item:1"]["profile"]


def test_retry_after_is_honoured_and_pauses_all_workers(tmp_path, key):
    with FakeLLMServer(faults_by_marker={marker(0): ["429:0.5"]}, delay_s=0.03) as server:
        out, _ = profile_all(backend(server, concurrency=2, backoff_s=0.001), tmp_path, 8)
    assert all(r["status"] == "ok" for r in out.values())
    first, second = server.requests_for(marker(0))
    assert second["t_start"] - first["t_end"] >= 0.45  # waited Retry-After, not the 1 ms backoff
    # the other worker stood still too: nothing started well inside the pause window
    window = (first["t_end"] + 0.1, first["t_end"] + 0.4)
    assert not [r["n"] for r in server.log if window[0] < r["t_start"] < window[1]]


@pytest.mark.parametrize("runner_retries, requests_seen", [(0, 3), (1, 6)])
def test_exhausted_retries_recorded_as_failed(tmp_path, key, runner_retries, requests_seen):
    with FakeLLMServer(faults_by_marker={marker(2): ["500"] * 50}) as server:
        out, stats = profile_all(backend(server, max_retries_http=2), tmp_path, 4, max_retries=runner_retries)
    assert len(server.requests_for(marker(2))) == requests_seen  # (1 + 2 HTTP retries) per runner try
    rec = out["item:2"]
    assert rec["status"] == "failed" and rec["profile"] is None
    assert "HTTP 500" in rec["error"] and "injected 500" in rec["error"]
    assert "gave up after 3 attempts" in rec["error"]
    assert rec["attempts"] == runner_retries + 1
    assert stats.failed == 1 and stats.failures == [("item:2", rec["error"])]
    assert all(out[f"item:{i}"]["status"] == "ok" for i in (0, 1, 3))
    on_disk = cached(tmp_path / "cache.jsonl")[rec["key"]]
    assert on_disk["status"] == "failed" and on_disk["error"] == rec["error"]


def test_client_errors_are_not_retried(tmp_path, key):
    with FakeLLMServer(faults_by_marker={marker(0): ["401"] * 5}) as server:
        out, stats = profile_all(backend(server), tmp_path, 2)
    assert len(server.requests_for(marker(0))) == 1
    assert out["item:0"]["status"] == "failed" and "HTTP 401: injected 401" in out["item:0"]["error"]
    assert out["item:1"]["status"] == "ok"


@pytest.mark.parametrize("fault", ["badprofile", "nocontent"])
def test_unusable_text_goes_back_to_runner_with_next_seed(tmp_path, key, fault):
    with FakeLLMServer(faults_by_marker={marker(0): [fault]}) as server:
        out, stats = profile_all(backend(server, seed=7), tmp_path, 2, max_retries=2)
    reqs = server.requests_for(marker(0))
    assert [r["body"]["seed"] for r in reqs] == [7, 8]  # runner attempt 1 -> seed + 1
    assert out["item:0"]["status"] == "ok" and out["item:0"]["attempts"] == 2
    assert stats.retries == 1


def test_rpm_limiter_spaces_request_starts(tmp_path, key):
    with FakeLLMServer() as server:
        t0 = time.monotonic()
        out, _ = profile_all(backend(server, rpm=120, concurrency=4), tmp_path, 4)
        elapsed = time.monotonic() - t0
    starts = sorted(r["t_start"] for r in server.log)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(gaps) == 3 and min(gaps) >= 0.45, gaps  # 60 / 120 = 0.5 s, 50 ms slack
    assert 1.4 <= elapsed < 3.0  # throttled, but not far beyond the limit
    assert all(r["status"] == "ok" for r in out.values())


@pytest.mark.parametrize("concurrency", [1, 3])
def test_concurrency_is_bounded(tmp_path, key, concurrency):
    with FakeLLMServer(delay_s=0.15) as server:
        out, _ = profile_all(backend(server, concurrency=concurrency), tmp_path, 9)
    assert server.max_in_flight == concurrency  # reached, never exceeded
    assert len(server.log) == 9 and all(r["status"] == "ok" for r in out.values())


def test_missing_key_is_an_error_naming_the_variable(tmp_path, key, monkeypatch):
    with FakeLLMServer() as server:
        profile_all(backend(server), tmp_path, 2)
        monkeypatch.delenv(KEY_ENV)
        # a fully cached rerun needs no key at all
        _, stats = profile_all(backend(server), tmp_path, 2)
        assert stats.cached == 2
        with pytest.raises(RuntimeError, match=KEY_ENV):
            profile_all(backend(server), tmp_path, 3)
        assert len(server.log) == 2  # nothing was sent without a key


def test_empty_key_env_sends_no_authorization(tmp_path):
    with FakeLLMServer() as server:
        out, _ = profile_all(backend(server, api_key_env=""), tmp_path, 2)
    assert all(r["status"] == "ok" for r in out.values())
    assert all("Authorization" not in r["headers"] for r in server.log)


def test_config_validation_never_echoes_a_pasted_key():
    pasted = "sk-pasted-" + uuid.uuid4().hex
    with pytest.raises(ValueError) as err:
        OpenAIBackend("http://127.0.0.1:1/v1", "m", api_key_env=pasted)
    assert pasted not in str(err.value) and "*name* of an environment variable" in str(err.value)
    with pytest.raises(ValueError, match="base_url"):
        OpenAIBackend("127.0.0.1:8000/v1", "m")


def test_signature_identifies_output_not_server():
    a = OpenAIBackend("http://a.example/v1", "m1", seed=1, temperature=0.2, max_tokens=64)
    b = OpenAIBackend("http://user:pw@b.example:81/v1/", "m1", seed=1, temperature=0.2, max_tokens=64)
    assert a.signature() == b.signature() == {
        "backend": "openai", "model": "m1", "temperature": 0.2, "max_tokens": 64, "seed": 1}
    assert OpenAIBackend("http://a.example/v1", "m2", seed=1).signature() != a.signature()
    assert OpenAIBackend("http://a.example/v1", "m1", seed=2, temperature=0.2,
                         max_tokens=64).signature() != a.signature()


def test_retry_after_parsing():
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("0.25") == 0.25
    now = time.time()
    assert retry_after_seconds(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert retry_after_seconds(formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    assert retry_after_seconds("99999") == 600.0


def test_backoff_is_exponential_capped_and_seeded():
    b = OpenAIBackend("http://x/v1", "m", backoff_s=1.0, backoff_max_s=8.0, seed=5)
    delays = [b.backoff_delay(r) for r in range(6)]
    for r, d in enumerate(delays):
        cap = min(8.0, 2 ** r)
        assert cap / 2 <= d <= cap
    again = OpenAIBackend("http://x/v1", "m", backoff_s=1.0, backoff_max_s=8.0, seed=5)
    assert [again.backoff_delay(r) for r in range(6)] == delays
    other = OpenAIBackend("http://x/v1", "m", backoff_s=1.0, backoff_max_s=8.0, seed=6)
    assert [other.backoff_delay(r) for r in range(6)] != delays


def _texts_under(folder: Path) -> dict[str, str]:
    return {str(p): p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file()}


def test_api_key_never_leaks(tmp_path, key, caplog, capsys):
    faults = {marker(0): ["echo-auth"], marker(1): ["500"] * 10, marker(2): ["429:0.05", "drop"],
              marker(3): ["timeout"]}
    caplog.set_level("DEBUG")
    with FakeLLMServer(faults_by_marker=faults, hang_s=3) as server:
        b = Recording(backend(server, timeout_s=0.4, max_retries_http=2))
        out, stats = profile_all(b, tmp_path, 5, max_retries=0)
        with pytest.raises(RuntimeError) as missing:  # error path of a key-less run
            OpenAIBackend(server.base_url, "m", api_key_env="RECPIPE_TEST_UNSET_VAR").generate([]).__next__()
    assert server.log and all(r["headers"]["Authorization"] == f"Bearer {key}" for r in server.log)
    # the leaky server did echo it back, and the backend masked it
    assert out["item:0"]["status"] == "failed" and "Bearer ***" in out["item:0"]["error"]
    assert out["item:1"]["status"] == "failed" and out["item:2"]["status"] == "ok"
    assert "retrying" in caplog.text  # the retry path was logged, so the grep below means something
    captured = capsys.readouterr()
    haystacks = {
        **_texts_under(tmp_path),
        "log": caplog.text, "stdout": captured.out, "stderr": captured.err,
        "errors": json.dumps([r.error for r in b.responses]), "failures": repr(stats.failures),
        "signature": json.dumps(b.signature()), "repr": repr(b.inner), "vars": repr(vars(b.inner)),
        "missing": str(missing.value),
    }
    assert any("cache.jsonl" in k for k in haystacks)
    assert [name for name, text in haystacks.items() if key in text] == []


RESUME_SCRIPT = textwrap.dedent('''
    import json, logging, sys
    from recpipe.profiling.backends.openai import OpenAIBackend
    from recpipe.profiling.cache import ProfileCache
    from recpipe.profiling.runner import run

    logging.basicConfig(level=logging.DEBUG)
    base_url, cache_path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    jobs = [(f"item:{i}", __SYSTEM__, f"Title: widget {i} <<ent-{i:03d}>>\\nDescribe the item.")
            for i in range(n)]
    backend = OpenAIBackend(base_url, "tiny-model", api_key_env=__KEY_ENV__, concurrency=2,
                            timeout_s=5, backoff_s=0.01, seed=7)
    print("signature", json.dumps(backend.signature()), flush=True)
    with ProfileCache(cache_path) as cache:
        out, stats = run(backend, jobs, cache, max_retries=1)
    print("stats", json.dumps({"cached": stats.cached, "generated": stats.generated,
                                "failed": stats.failed}), flush=True)
''')


def _ok_lines(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if '"status": "ok"' in line)


def test_kill_and_restart_resumes_without_repeating(tmp_path, key):
    n = 16
    script = tmp_path / "profile_run.py"
    script.write_text(RESUME_SCRIPT.replace("__SYSTEM__", repr(SYSTEM)).replace("__KEY_ENV__", repr(KEY_ENV)), encoding="utf-8")
    assert jobs(n) == [(f"item:{i}", SYSTEM, f"Title: widget {i} {marker(i)}\nDescribe the item.")
                       for i in range(n)]  # the script builds the same jobs as this file
    cache_path = tmp_path / "cache.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), KEY_ENV: key, "HF_HUB_OFFLINE": "1"}

    def start(server, tag):
        out = open(tmp_path / f"{tag}.out", "w")
        err = open(tmp_path / f"{tag}.err", "w")
        proc = subprocess.Popen([sys.executable, str(script), server.base_url, str(cache_path), str(n)],
                                cwd=ROOT, env=env, stdout=out, stderr=err)
        return proc, out, err

    with FakeLLMServer(delay_s=0.2) as server:
        proc, *files = start(server, "run1")
        deadline = time.monotonic() + 30
        while _ok_lines(cache_path) < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL  # killed mid-run, not finished
        for f in files:
            f.close()
        time.sleep(0.3)  # any request already on the wire is logged before the snapshot
        before = len(server.log)
        done = {rec["entity"] for rec in cached(cache_path).values() if rec["status"] == "ok"}
        assert 4 <= len(done) < n

        server.delay_s = 0.01
        proc, *files = start(server, "run2")
        assert proc.wait(60) == 0, (tmp_path / "run2.err").read_text()
        for f in files:
            f.close()
        rerun = server.log[before:]

    prompts = {e: p for e, _, p in jobs(n)}
    rerun_prompts = sorted(r["prompt"] for r in rerun)
    assert rerun_prompts == sorted(prompts[e] for e in prompts if e not in done)  # each missing one once
    assert not [r for r in rerun if any(prompts[e] == r["prompt"] for e in done)]
    by_entity = {rec["entity"]: rec for rec in cached(cache_path).values()}
    assert set(by_entity) == set(prompts)
    assert all(by_entity[e]["status"] == "ok" and by_entity[e]["profile"] == expected_profile(p)
               for e, p in prompts.items())
    stats = json.loads((tmp_path / "run2.out").read_text().split("stats ", 1)[1])
    assert stats == {"cached": len(done), "generated": n - len(done), "failed": 0}
    # the key went over the wire on every request, and nowhere else
    assert all(r["headers"]["Authorization"] == f"Bearer {key}" for r in server.log)
    leaks = [name for name, text in _texts_under(tmp_path).items() if key in text]
    assert leaks == []


# --------------------------------------------------------------------------- circuit breaker


class CloseServerAfter(Recording):
    """Recording that shuts the server down (its port then refuses) after `k` responses."""

    def __init__(self, inner: OpenAIBackend, server: FakeLLMServer, k: int):
        super().__init__(inner)
        self.server, self.k, self.closed_at = server, k, None

    def generate(self, requests):
        for resp in super().generate(requests):
            yield resp
            if len(self.responses) == self.k and self.closed_at is None:
                self.server.__exit__(None, None, None)
                self.closed_at = time.monotonic()


def test_dead_endpoint_stops_the_run_and_keeps_finished_profiles(tmp_path, key):
    n = 60
    server = FakeLLMServer(delay_s=0.02).__enter__()
    try:
        # max_consecutive_failures is left at its default (5): the default must stop the run
        b = CloseServerAfter(backend(server, concurrency=2, max_retries_http=2), server, k=6)
        with pytest.raises(EndpointUnreachable) as err:
            profile_all(b, tmp_path, n, max_retries=1)
        stopped = time.monotonic()
    finally:
        server.__exit__(None, None, None)
    assert b.closed_at is not None and stopped - b.closed_at < 5.0  # not 60 prompts x 3 tries
    msg = str(err.value)
    assert server.base_url in msg and "unreachable" in msg and key not in msg
    assert "5 requests in a row" in msg and "max_consecutive_failures=5" in msg
    assert "Connection refused" in msg or "connection error" in msg
    # every profile that finished before the server died is in the cache on disk
    answered = {r.key: r for r in b.responses if r.error is None}
    assert len(answered) >= 6
    on_disk = cached(tmp_path / "cache.jsonl")
    assert {k for k, rec in on_disk.items() if rec["status"] == "ok"} == set(answered)
    prompts = {e: p for e, _, p in jobs(n)}
    assert all(rec["profile"] == expected_profile(prompts[rec["entity"]])
               for rec in on_disk.values() if rec["status"] == "ok")
    assert len(on_disk) < n  # it stopped: most prompts were never tried


def test_breaker_counts_only_requests_without_any_answer(tmp_path, key):
    # 5xx answers are the server talking: they are retried and recorded, never trip the breaker
    with FakeLLMServer(faults_by_marker={marker(i): ["500"] * 9 for i in range(6)}) as server:
        out, stats = profile_all(backend(server, max_retries_http=1, max_consecutive_failures=2),
                                 tmp_path, 8)
    assert stats.failed == 6 and sum(r["status"] == "ok" for r in out.values()) == 2


def test_breaker_off_and_invalid_values():
    with pytest.raises(ValueError, match="max_consecutive_failures"):
        OpenAIBackend("http://127.0.0.1:1/v1", "m", max_consecutive_failures=-1)
    from recpipe.config import ParamError, parse
    from recpipe.profiling.profile import OpenAIParams

    assert parse(OpenAIParams, {}).max_consecutive_failures == 5
    assert parse(OpenAIParams, {"max_consecutive_failures": 0}).max_consecutive_failures == 0
    with pytest.raises(ParamError, match="max_consecutive_failures"):
        parse(OpenAIParams, {"max_consecutive_failures": -2}, prefix="profile.openai")


def test_breaker_message_hides_url_credentials(tmp_path):
    # a refused port from the start; the URL carries a user:password and a ?key= query
    with FakeLLMServer() as server:
        dead = server.base_url
    host = dead.split("//", 1)[1]
    b = OpenAIBackend(f"http://user:s3cret@{host}?key=s3cret", "m", api_key_env="",
                      max_retries_http=0, max_consecutive_failures=2, backoff_s=0.01)
    with pytest.raises(EndpointUnreachable) as err:
        profile_all(b, tmp_path, 10)
    assert f"http://{host}" in str(err.value) and "s3cret" not in str(err.value)


@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> Path:
    """A small real processed split (as the profile stage reads it)."""
    from recpipe.data.ingest import ingest
    from recpipe.data.processed import build
    from recpipe.data.sample import SampleConfig, generate
    from recpipe.params import DatasetParams, IngestParams, SplitParams

    base = tmp_path_factory.mktemp("openai_stage")
    generate(SampleConfig(n_users=40, n_items=48, n_clusters=4, reviews_per_user_mean=8.0, seed=3),
             base / "raw")
    ingest(DatasetParams(format="amazon2018", path=str(base / "raw")), IngestParams(),
           base / "interim")
    build(base / "interim", base / "processed", SplitParams(), 5)
    return base / "processed"


def test_stage_stops_on_a_dead_endpoint_with_exit_2_and_keeps_the_cache(processed, tmp_path, key):
    cache = tmp_path / "cache" / "cache.jsonl"
    with FakeLLMServer(delay_s=0.1) as server:
        params = tmp_path / "params.yaml"
        params.write_text(
            "seed: 5\ndataset:\n  format: amazon2018\nprofile:\n  backend: openai\n"
            "  max_retries: 0\n  openai:\n"
            f"    base_url: {server.base_url}\n    model: tiny-model\n    api_key_env: {KEY_ENV}\n"
            "    concurrency: 2\n    max_retries_http: 1\n    max_consecutive_failures: 3\n")
        cmd = [sys.executable, str(ROOT / "stages/profiles.py"), "--params", str(params),
               "--processed", str(processed), "--out", str(tmp_path / "profiles"),
               "--cache", str(cache), "--metrics", str(tmp_path / "profile.json")]
        env = {**os.environ, KEY_ENV: key, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while _ok_lines(cache) < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    closed = time.monotonic()  # the server is gone: its port refuses from here on
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert time.monotonic() - closed < 20  # backoff 1 s, 2 tries, 3 requests: seconds, not hours
    assert f"profile failed: profile.openai.base_url {server.base_url} is unreachable" in err
    assert str(cache) in err and "Traceback" not in err
    assert key not in out + err
    done = [rec for rec in cached(cache).values() if rec["status"] == "ok"]
    assert len(done) >= 4  # what finished before the server died is still there
    answered = {json.dumps(expected_profile(r["prompt"]), sort_keys=True) for r in server.log}
    assert all(json.dumps(rec["profile"], sort_keys=True) in answered for rec in done)
    assert not (tmp_path / "profile.json").exists()  # no metrics for a failed run


def test_stage_with_an_unset_key_variable_exits_2_naming_it(processed, tmp_path):
    """Before: a RuntimeError traceback from inside the backend's worker."""
    params = tmp_path / "params.yaml"
    params.write_text("seed: 5\ndataset:\n  format: amazon2018\nprofile:\n  backend: openai\n"
                      "  openai:\n    base_url: http://127.0.0.1:9/v1\n"
                      "    api_key_env: RECPIPE_TEST_SURELY_UNSET\n")
    cmd = [sys.executable, str(ROOT / "stages/profiles.py"), "--params", str(params),
           "--processed", str(processed), "--out", str(tmp_path / "profiles"),
           "--cache", str(tmp_path / "cache" / "cache.jsonl"), "--metrics", str(tmp_path / "p.json")]
    env = {k: v for k, v in os.environ.items() if k != "RECPIPE_TEST_SURELY_UNSET"}
    res = subprocess.run(cmd, cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "environment variable RECPIPE_TEST_SURELY_UNSET is not set" in res.stderr
    assert "Traceback" not in res.stderr
