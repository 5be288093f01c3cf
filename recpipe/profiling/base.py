"""What every profiling backend implements, and the backend registry.

A backend turns prompts into raw completions; it knows nothing about caching, parsing or
retries (`recpipe.profiling.runner` does those for every backend alike). Backends yield
responses as they complete, in any order, so a slow request never holds back the cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Protocol

from recpipe.registry import resolve


@dataclass(frozen=True)
class Request:
    key: str  # cache key (see runner.cache_key): identifies entity + prompt + generation setup
    entity: str  # "item:123" / "user:45": what the profile is about
    system: str  # system prompt
    prompt: str  # user prompt
    attempt: int = 0  # retry number; sampling backends vary their seed with it


@dataclass
class Response:
    key: str
    text: str | None  # raw completion; None when the request itself failed
    error: str | None = None  # transport/backend error message (never contains secrets)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    extra: dict = field(default_factory=dict)


class Backend(Protocol):
    name: str
    model: str

    def signature(self) -> dict:
        """Everything that changes the output (model, generation params): part of the cache key."""

    def generate(self, requests: Iterable[Request]) -> Iterator[Response]:
        """Yield one Response per request, in any order."""


BACKENDS: dict[str, str] = {
    "template": "recpipe.profiling.backends.template:TemplateBackend",
    "hf": "recpipe.profiling.backends.hf:HFBackend",
    "openai": "recpipe.profiling.backends.openai:OpenAIBackend",
}


def get_backend(name: str):
    """The backend class registered as `name` (imported lazily: hf pulls in torch)."""
    return resolve(BACKENDS, name, "profile.backend")
