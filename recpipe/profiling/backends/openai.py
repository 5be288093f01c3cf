"""OpenAI-compatible chat-completions backend (OpenAI, vLLM, Ollama, llama.cpp server, ...).

Standard library only (urllib + a thread pool): the project need not depend on an SDK to
talk to one JSON endpoint, and the same code reaches every server that speaks the protocol.

Transport problems are this module's business, output problems the runner's:
- 429, 408/409/425, 5xx, timeouts, refused or dropped connections and a 200 whose body is
  not the expected JSON are retried here with exponential backoff and seeded jitter, up to
  `max_retries_http` times; after that the request comes back as a `Response` with `error`
  set, which the runner records as a failure.
- Other 4xx (bad key, unknown model, bad request) are not retried: repeating them cannot help.
- A well-formed reply whose text is not a valid profile goes back to the runner, which retries
  it with `attempt + 1` (sent here as `seed + attempt` when a seed is set).

A dead endpoint is a circuit breaker's business: when `max_consecutive_failures` requests in a
row got no HTTP answer at all (refused, reset or dropped connections, timeouts), each after all
its transport retries, `generate` stops with `EndpointUnreachable` naming `base_url`, instead of
retrying every remaining prompt (6 attempts each: most of an hour on the default sample). It
first yields every response already finished, so the runner caches them; requests still in
backoff give up at once. Any HTTP answer, even a 5xx, resets the count: the server is alive.

A 429's `Retry-After` pauses *every* worker (rate limits are per account, not per request).
HTTP says Retry-After is whole seconds or an HTTP date; fractional seconds are accepted too
(local test servers use them to stay fast).

The API key is read from the environment variable *named* by `api_key_env`, when `generate`
first needs it (a fully cached rerun needs no key). It is never stored on the object, never
part of `signature()`, and scrubbed from every error and log message, so it cannot reach the
cache, logs or artifacts. `api_key_env=""` sends no Authorization header (local servers).

`signature()` holds the model name and the generation parameters but not `base_url`: the
same model with the same parameters is the same output wherever it is served, moving a
server to another host or port must not invalidate a paid-for cache, and URLs can carry
credentials (user:password@host, ?key=...).
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import os
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Iterable, Iterator

from recpipe.config import ParamError
from recpipe.profiling.base import Request, Response

log = logging.getLogger(__name__)

_RETRY_STATUS = {408, 409, 425, 429}  # plus every 5xx
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_RETRY_AFTER_S = 600.0  # never let a server park the run for longer than this per reply


class MissingAPIKey(ParamError, RuntimeError):
    """profile.openai.api_key_env names a variable that is not set (the stage exits 2)."""


class EndpointUnreachable(RuntimeError):
    """The endpoint answered none of `max_consecutive_failures` requests in a row."""


class _Transient(Exception):
    """A failure worth retrying; `retry_after` is the server's requested wait, if any;
    `connection` is True when no HTTP answer came back at all (what the breaker counts)."""

    def __init__(self, message: str, retry_after: float | None = None, connection: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.connection = connection


class _Fatal(Exception):
    """A failure that repeating the same request cannot fix (e.g. 401, 404)."""


class _RateGate:
    """Thread-safe request pacing: a minimum interval between request starts (rpm > 0) and
    a shared pause that a 429's Retry-After imposes on every worker."""

    def __init__(self, rpm: float):
        self.interval = 60.0 / rpm if rpm > 0 else 0.0
        self._lock = threading.Lock()
        self._next = 0.0  # earliest start of the next request (monotonic clock)
        self._hold = 0.0  # nobody starts before this (set by Retry-After)

    def acquire(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next, self._hold)
            if self.interval:
                self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)

    def hold_until(self, t: float) -> None:
        with self._lock:
            self._hold = max(self._hold, t)


class _Breaker:
    """Counts requests in a row that got no HTTP answer after all their retries; opens at
    `limit` (0 = never). Shared by the workers, so it counts across them."""

    def __init__(self, limit: int):
        self.limit = limit
        self.opened = threading.Event()
        self.last_error = ""
        self._count = 0
        self._lock = threading.Lock()

    def answered(self) -> None:
        with self._lock:
            self._count = 0

    def unreachable(self, error: str) -> None:
        with self._lock:
            self._count += 1
            self.last_error = error
            if self.limit and self._count >= self.limit:
                self.opened.set()


def safe_url(url: str) -> str:
    """`url` without user:password@ and ?query, which can carry credentials (for messages)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path,
                                    "", ""))


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: (fractional) seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        secs = when.timestamp() - (time.time() if now is None else now)
    if secs != secs:  # NaN
        return None
    return min(max(secs, 0.0), _MAX_RETRY_AFTER_S)


def scrub(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` masked."""
    return text.replace(secret, "***") if secret else text


class OpenAIBackend:
    name = "openai"

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 4, timeout_s: float = 60, max_retries_http: int = 5,
                 rpm: float = 0, temperature: float = 0.0, max_tokens: int = 512,
                 seed: int | None = None, backoff_s: float = 1.0, backoff_max_s: float = 60.0,
                 max_consecutive_failures: int = 5):
        parsed = urllib.parse.urlsplit(base_url or "")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("profile.openai.base_url must be an http(s) URL such as "
                             "https://api.openai.com/v1 or http://127.0.0.1:8000/v1")
        if api_key_env and not _ENV_NAME.fullmatch(api_key_env):
            # Never echo the value: someone may have pasted the key itself here.
            raise ValueError("profile.openai.api_key_env must be the *name* of an environment "
                             "variable holding the key (e.g. OPENAI_API_KEY), not the key")
        if not model:
            raise ValueError("profile.openai.model is empty")
        if concurrency < 1 or timeout_s <= 0 or max_retries_http < 0 or rpm < 0:
            raise ValueError("need concurrency >= 1, timeout_s > 0, max_retries_http >= 0, rpm >= 0")
        if max_consecutive_failures < 0:
            raise ValueError("profile.openai.max_consecutive_failures must be >= 0 "
                             "(0 = never stop)")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = int(concurrency)
        self.timeout_s = float(timeout_s)
        self.max_retries_http = int(max_retries_http)
        self.rpm = float(rpm)
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.seed = seed
        self.backoff_s = float(backoff_s)
        self.backoff_max_s = float(backoff_max_s)
        self.max_consecutive_failures = int(max_consecutive_failures)
        self._gate = _RateGate(self.rpm)
        self._breaker = _Breaker(self.max_consecutive_failures)
        self._jitter = random.Random(0 if seed is None else seed)  # reproducible retry timing
        self._jitter_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, concurrency={self.concurrency}, rpm={self.rpm})"

    def signature(self) -> dict:
        return {"backend": "openai", "model": self.model, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "seed": self.seed}

    # -- public API ------------------------------------------------------------------------

    def generate(self, requests: Iterable[Request]) -> Iterator[Response]:
        """Yield one Response per request as each completes, with at most `concurrency` in
        flight; requests are pulled lazily so a huge job list is never all queued at once."""
        key = self._api_key()
        breaker = self._breaker
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="openai")
        running: set[Future] = set()
        try:
            for req in requests:
                if breaker.opened.is_set():
                    break  # submit no more; the requests in flight give up at once
                running.add(pool.submit(self._complete, req, key))
                if len(running) >= 2 * self.concurrency:
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    yield from _finished(done)
            while running:  # every response that finished is yielded, so it reaches the cache
                done, running = wait(running, return_when=FIRST_COMPLETED)
                yield from _finished(done)
        finally:  # consumer stopped early or crashed: drop queued work, let in-flight finish
            pool.shutdown(wait=True, cancel_futures=True)
        if breaker.opened.is_set():
            raise EndpointUnreachable(scrub(
                f"profile.openai.base_url {safe_url(self.base_url)} is unreachable: "
                f"{breaker.limit} requests in a row got no answer, each after "
                f"{self.max_retries_http + 1} attempts (last: {breaker.last_error}); stopped "
                f"(profile.openai.max_consecutive_failures={breaker.limit}). Check that the "
                f"server is up and the URL is right, then rerun", key))

    def backoff_delay(self, retry: int) -> float:
        """Wait before retry number `retry` (0-based): capped exponential, 50-100% jitter
        (the floor keeps retries from hammering, the spread keeps workers from syncing)."""
        base = min(self.backoff_max_s, self.backoff_s * 2 ** retry)
        with self._jitter_lock:
            return base * (0.5 + 0.5 * self._jitter.random())

    # -- internals -------------------------------------------------------------------------

    def _api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise MissingAPIKey(f"environment variable {self.api_key_env} is not set: export the "
                               f"API key there (profile.openai.api_key_env names it; use an empty "
                               f"name for servers that need no key)")
        return key

    def _payload(self, req: Request) -> bytes:
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": req.system},
                         {"role": "user", "content": req.prompt}],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if self.seed is not None:  # the runner's retries of bad output ask for a new sample
            body["seed"] = self.seed + req.attempt
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def _complete(self, req: Request, key: str | None) -> Response:
        """One request with transport retries; never raises (errors become Response.error)."""
        tries = self.max_retries_http + 1
        error = "no attempt made"
        breaker = self._breaker
        for n in range(tries):
            if breaker.opened.is_set():  # the endpoint is down: no point in trying
                return Response(req.key, None, error=_ABORTED, extra={"http_attempts": n})
            self._gate.acquire()
            try:
                resp = self._post(req, key, n + 1)
                breaker.answered()
                return resp
            except _Fatal as err:
                breaker.answered()
                return Response(req.key, None, error=scrub(str(err), key), extra={"http_attempts": n + 1})
            except _Transient as err:
                error = scrub(str(err), key)
                if not err.connection:
                    breaker.answered()  # an HTTP answer, even a 5xx: the server is there
                if n + 1 == tries:
                    if err.connection:
                        breaker.unreachable(error)
                    break
                if err.retry_after is not None:
                    delay = err.retry_after
                    self._gate.hold_until(time.monotonic() + delay)  # pauses the other workers too
                else:
                    delay = self.backoff_delay(n)
                log.warning("openai: %s attempt %d/%d failed (%s); retrying in %.2f s",
                            req.entity, n + 1, tries, error, delay)
                if err.retry_after is None:
                    breaker.opened.wait(delay)  # Retry-After waits inside the gate instead
            except Exception as err:  # a bug or an odd library error: report, never crash a worker
                return Response(req.key, None, error=scrub(f"{type(err).__name__}: {err}", key),
                                extra={"http_attempts": n + 1})
        return Response(req.key, None, error=f"{error} (gave up after {tries} attempts)",
                        extra={"http_attempts": tries})

    def _post(self, req: Request, key: str | None, attempt: int) -> Response:
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": "recpipe-profiling"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        http_req = urllib.request.Request(f"{self.base_url}/chat/completions",
                                          data=self._payload(req), headers=headers, method="POST")
        start = time.monotonic()
        try:
            with urllib.request.urlopen(http_req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            detail = _error_detail(err)
            msg = f"HTTP {err.code}: {detail}"
            if err.code in _RETRY_STATUS or 500 <= err.code < 600:
                raise _Transient(msg, retry_after_seconds(err.headers.get("Retry-After"))
                                 if err.code == 429 else None) from None
            raise _Fatal(msg) from None
        except urllib.error.URLError as err:
            raise _Transient(f"connection error: {_reason(err.reason)}", connection=True) from None
        except (TimeoutError, OSError, http.client.HTTPException) as err:
            raise _Transient(f"connection error: {_reason(err)}", connection=True) from None
        try:
            data = json.loads(raw.decode("utf-8"))
            choice = data["choices"][0]
            content = choice["message"].get("content")
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, IndexError, TypeError,
                AttributeError):
            raise _Transient(f"malformed response body ({len(raw)} bytes, not chat-completions JSON)") from None
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        extra = {"http_attempts": attempt, "latency_s": round(time.monotonic() - start, 3),
                 "finish_reason": choice.get("finish_reason")}
        if not isinstance(content, str):  # refusal / tool call: let the runner retry it
            return Response(req.key, None, error="reply has no text content", extra=extra)
        return Response(req.key, content, prompt_tokens=_int(usage.get("prompt_tokens")),
                        completion_tokens=_int(usage.get("completion_tokens")), extra=extra)


_ABORTED = "not sent: the circuit breaker stopped the run (endpoint unreachable)"


def _finished(done: Iterable[Future]) -> Iterator[Response]:
    """The results of `done`, less requests the circuit breaker stopped before they ran."""
    for f in done:
        resp = f.result()
        if resp.error != _ABORTED:
            yield resp


def _error_detail(err: urllib.error.HTTPError) -> str:
    """The server's error message (OpenAI puts it in {"error": {"message"}}), shortened."""
    try:
        body = err.read(2000).decode("utf-8", "replace")
    except Exception:  # the body itself may be cut off
        body = ""
    try:
        msg = json.loads(body)["error"]["message"]
    except Exception:
        msg = body or err.reason or ""
    return " ".join(str(msg).split())[:200]


def _reason(err) -> str:
    if isinstance(err, TimeoutError) or "timed out" in str(err):
        return "timed out"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _int(v) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None
