"""The `template` backend: deterministic, offline, extractive profiles. **Not an LLM.**

It exists so `dvc repro` and the tests run end to end without a model: it reads the sections
of the prompt it is given (`prompts.parse_sections`, the layout prompts.py defines), counts
the informative words of titles, categories, descriptions and reviews, and writes the most
frequent ones into a valid RLMRec-format JSON answer. The profiles therefore carry the
dataset's own words (so embeddings of them are meaningful) but no reasoning or world
knowledge: numbers obtained with it measure the pipeline, not an LLM's contribution.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Iterable, Iterator

from recpipe.profiling.base import Request, Response
from recpipe.profiling.prompts import FEEDBACK, INFO, parse_sections

VERSION = "1"
TOP_WORDS = 8

# How much one occurrence counts, by the JSON key it appears under: names and categories say
# more about an item than a passing word in a review.
_WEIGHT = {"title": 3, "name": 3, "categories": 2, "genres": 2, "tags": 2, "description": 1,
           "brand": 1, "publisher": 1, "city": 1, "review": 1}
_WORD = re.compile(r"[a-z][a-z'-]*[a-z]")
# Function words, plus the stock phrases of reviews and of this backend's own summaries (item
# summaries feed user prompts, so their boilerplate must not become a user's "interest").
_STOP = frozenset("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each even ever every
few for from further get got had has have having he her here hers him his how i if in into is
it its itself just least less let like made make many may me more most much must my myself no
nor not now of off on once one only or other others our out over own quite rather really same
she should so some such than that the their them then there these they thing things this
those though through to too under until up us very was way we well were what when where which
while who whom why will with within without would yet you your
okay ok great good nice fine best better bad love loved loves enjoy enjoyed enjoys liked
likes recommend recommended highly truly amazing wonderful fantastic excellent perfect
favorite favourite stars star five four three two question exactly wanted want keep keeping
coming back parts part felt feel feels seemed seems theme shines taste halfway gave give
forced dull worked others moments big fan lot lots bit little time times still definitely
item items product products users user people someone anyone readers fans types type kinds
likely none based words word frequent informative inputs input reviews review template
""".split())


class TemplateBackend:
    """Extractive keyword profiles; same prompt -> same JSON, on any machine."""

    name = "template"
    model = "template"

    def __init__(self, top_words: int = TOP_WORDS, **_ignored):
        self.top_words = top_words

    def signature(self) -> dict:
        return {"backend": "template", "version": VERSION, "top_words": self.top_words}

    def generate(self, requests: Iterable[Request]) -> Iterator[Response]:
        for req in requests:
            try:
                text = json.dumps(self.profile(req.prompt), ensure_ascii=False)
            except ValueError as err:  # a prompt not in prompts.py's layout
                yield Response(req.key, None, error=f"template backend: {err}")
                continue
            yield Response(req.key, text)

    def profile(self, prompt: str) -> dict:
        sections = parse_sections(prompt)
        if not sections:
            raise ValueError("prompt has no sections to read")
        counts: Counter = Counter()
        used: Counter = Counter()
        for value in sections.values():
            _count(value, None, counts, used)
        words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        top = words[: self.top_words]
        sources = ", ".join(f"{n} {k} value(s)" for k, n in sorted(used.items())) or "nothing"
        reasoning = (f"Extractive template (not a language model): the most frequent "
                     f"informative words of {sources}, weighted by field: "
                     + ", ".join(f"{w} ({counts[w]})" for w in top) + ".")
        if not top:
            return {"summarization": "None", "reasoning": "No informative words in the input."}
        if INFO in sections or FEEDBACK in sections:
            summ = f"Users who like {_join(top)} would enjoy this."
        else:
            summ = f"Likely to enjoy {_join(top)}."
        return {"summarization": summ, "reasoning": reasoning}


def _count(value, key: str | None, counts: Counter, used: Counter) -> None:
    """Add the weighted words of every string under `value` (walking dicts and lists)."""
    if isinstance(value, dict):
        for k, v in value.items():
            _count(v, k, counts, used)
    elif isinstance(value, list):
        for v in value:
            _count(v, key, counts, used)
    elif isinstance(value, str) and key is not None:
        used[key] += 1
        weight = _WEIGHT.get(key, 1)
        for w in _WORD.findall(value.lower()):
            if len(w) > 2 and w not in _STOP:
                counts[w] += weight


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
