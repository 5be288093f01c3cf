"""A real local OpenAI-compatible chat-completions server with scripted faults, for tests.

It listens on 127.0.0.1 (a free port), answers `POST /v1/chat/completions` with a valid
RLMRec profile derived from the prompt (`expected_profile(prompt)`), and logs every request
(arrival/finish time, headers, body) so tests can check what a client really sent.

Faults are scripted per prompt marker (the k-th request whose user prompt contains the
marker gets the k-th fault; later ones succeed) or per global request number (1-based):
  "429" / "429:0.3"  rate limited, Retry-After 1 s / 0.3 s (fractional seconds are a test
                     convenience; HTTP itself only has whole seconds or a date)
  "500", "503", "401"  that status with an OpenAI-style error body
  "echo-auth"        400 whose error message repeats the Authorization header (a leaky server)
  "timeout"          sleep `hang_s` before answering, to outlast the client's timeout
  "malformed"        200 with a truncated JSON body
  "drop"             close the connection without sending anything
  "badprofile"       200, valid JSON, but the text is not a profile (runner-level retry)
  "nocontent"        200 with message.content = null

`delay_s` slows every answer (to watch concurrency or kill a client mid-run). Everything
stops when the `with` block ends: hung handlers are woken and all threads joined.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def expected_profile(prompt: str) -> dict:
    """The profile this server returns for `prompt`: tests compare cached profiles to it."""
    h = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]
    return {"summarization": f"profile {h}", "reasoning": f"derived from prompt hash {h}"}


class FakeLLMServer:
    def __init__(self, faults_by_marker: dict[str, list[str]] | None = None,
                 faults_by_number: dict[int, str] | None = None, delay_s: float = 0.0,
                 hang_s: float = 5.0):
        self.faults_by_marker = faults_by_marker or {}
        self.faults_by_number = faults_by_number or {}
        self.delay_s = delay_s
        self.hang_s = hang_s
        self.log: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._marker_counts: dict[str, int] = {}
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> "FakeLLMServer":
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-llm", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()  # wake handlers sleeping in "timeout" / delay
        self._httpd.shutdown()
        self._httpd.server_close()  # joins the handler threads
        self._thread.join(5)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    # -- queries for tests -----------------------------------------------------------------

    def requests_for(self, text: str) -> list[dict]:
        """Logged requests whose user prompt contains `text`, in arrival order."""
        with self._lock:
            return [r for r in self.log if text in r["prompt"]]

    # -- request handling ------------------------------------------------------------------

    def _fault_for(self, number: int, prompt: str) -> str:
        if number in self.faults_by_number:
            return self.faults_by_number[number]
        for marker, script in self.faults_by_marker.items():
            if marker in prompt:
                k = self._marker_counts.get(marker, 0)
                self._marker_counts[marker] = k + 1
                return script[k] if k < len(script) else "ok"
        return "ok"

    def _register(self, headers: dict, body: dict | None) -> dict:
        msgs = (body or {}).get("messages") or []
        prompt = next((m.get("content", "") for m in msgs if m.get("role") == "user"), "")
        with self._lock:
            number = len(self.log) + 1
            entry = {"n": number, "t_start": time.monotonic(), "t_end": None, "headers": headers,
                     "body": body, "prompt": prompt, "fault": self._fault_for(number, prompt)}
            self.log.append(entry)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return entry

    def _done(self, entry: dict) -> None:
        """The request stops counting as in flight; once, whichever of the answer and the
        handler's end calls it first."""
        with self._lock:
            if entry["t_end"] is not None:
                return
            self.in_flight -= 1
            entry["t_end"] = time.monotonic()


class _Handler(BaseHTTPRequestHandler):
    owner: FakeLLMServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            body = None
        entry = self._entry = self.owner._register(dict(self.headers.items()), body)
        try:
            self._answer(entry, body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass
        finally:
            self.owner._done(entry)

    def _answer(self, entry: dict, body: dict | None) -> None:
        owner, fault = self.owner, entry["fault"]
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._json(404, {"error": {"message": f"no route {self.path}"}})
        if owner.delay_s and owner._stop.wait(owner.delay_s):
            return
        if fault == "timeout":
            owner._stop.wait(owner.hang_s)
            fault = "ok"  # answer late; the client should have given up by then
        if fault == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault.startswith("429"):
            wait = fault.split(":", 1)[1] if ":" in fault else "1"
            return self._json(429, {"error": {"message": "rate limited"}}, {"Retry-After": wait})
        if fault in ("500", "503", "401"):
            return self._json(int(fault), {"error": {"message": f"injected {fault}"}})
        if fault == "echo-auth":
            return self._json(400, {"error": {"message": f"bad header {self.headers.get('Authorization')}"}})
        if fault == "malformed":
            return self._raw(200, b'{"id": "x", "choices": [{"message": {"content": "{\\"summ')
        if body is None:
            return self._json(400, {"error": {"message": "body is not JSON"}})
        prompt = entry["prompt"]
        if fault == "badprofile":
            content = "I cannot produce JSON today."
        elif fault == "nocontent":
            content = None
        else:
            content = json.dumps(expected_profile(prompt))
        self._json(200, {
            "id": f"chatcmpl-{entry['n']}", "object": "chat.completion", "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": len(prompt.split()),
                      "completion_tokens": len((content or "").split()),
                      "total_tokens": len(prompt.split()) + len((content or "").split())},
        })

    def _json(self, status: int, obj: dict, headers: dict | None = None) -> None:
        self._raw(status, json.dumps(obj).encode("utf-8"), headers)

    def _raw(self, status: int, data: bytes, headers: dict | None = None) -> None:
        # done before the bytes leave: a client that has its answer may send its next request
        # at once, and that one must not find this one still counted (max_in_flight off by one)
        if getattr(self, "_entry", None) is not None:
            self.owner._done(self._entry)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
