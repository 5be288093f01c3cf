"""RLMRec-recipe prompts for item and user profiles, one template set per dataset kind.

RLMRec (Ren et al., WWW 2024; generation/instruction/*.txt in the reference code) asks a chat
model, with [system = instruction, user = input], for a strict JSON object
{"summarization": ..., "reasoning": ...}: for an item, *which users would enjoy it*, from its
basic information and some training reviews; for a user, *which items they would enjoy*, from
their training interactions, each given as {title, description = the item profile's
summarization, review}. The wording below is ours; the structure follows the reference.

Layout contract: every input section is a header line `NAME:` followed by exactly one line of
JSON (`json.dumps` escapes newlines, so a value never spans lines). `parse_sections` reads it
back; the offline `template` backend relies on that, and so does the leakage test. A change to
any template text must bump that template's `version` (it is stored with the profiles).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

INFO = "BASIC INFORMATION"
FEEDBACK = "USER FEEDBACK"
KINDS = ("amazon", "yelp", "steam", "generic")

_ITEM_SYSTEM = """You help a recommender system describe {items}. You receive one {item}: \
{INFO}, a JSON object with its {fields}, and {FEEDBACK}, a JSON list of reviews that some \
users wrote about it. Summarize which types of users would enjoy this {item}, and explain why.

Answer with one JSON object and no other text, exactly in this form:
{{"summarization": "<the types of users who would enjoy this {item}, at most 200 words; the \
string None if the information does not allow it>", "reasoning": "<why, at most 200 words>"}}"""

_USER_SYSTEM = """You help a recommender system describe its users. You receive {HISTORY}, a \
JSON list of {items} that one user {verb}. Each entry has the {item}'s title, a description \
of the users who enjoy that {item}, and the review this user wrote about it. Determine which \
types of {items} this user is likely to enjoy, and explain why.

Answer with one JSON object and no other text, exactly in this form:
{{"summarization": "<the types of {items} this user is likely to enjoy, at most 100 words>", \
"reasoning": "<your reasoning>"}}"""


@dataclass(frozen=True)
class Template:
    """One dataset kind's prompts. `item_fields` maps the key shown to the model to the item
    columns it is taken from (first non-empty wins; `extra.x` reads the item's extra JSON)."""

    kind: str
    version: str
    item: str  # singular noun used in the instructions
    items: str
    verb: str  # what a user did with an item, past tense
    history: str  # header of the user prompt's interaction list
    item_fields: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def item_system(self) -> str:
        names = [k for k, _ in self.item_fields]
        fields = ", ".join(names[:-1]) + " and " + names[-1]
        return _ITEM_SYSTEM.format(items=self.items, item=self.item, fields=fields,
                                   INFO=INFO, FEEDBACK=FEEDBACK)

    @property
    def user_system(self) -> str:
        return _USER_SYSTEM.format(items=self.items, item=self.item, verb=self.verb,
                                   HISTORY=self.history)


_TEXT = (("title", ("title",)), ("brand", ("brand",)), ("categories", ("categories",)),
         ("description", ("description",)))

TEMPLATES: dict[str, Template] = {
    # Amazon books and products: RLMRec's Amazon-book input was {title, description}; brand and
    # categories are as informative for non-book categories and cost a few tokens.
    "amazon": Template("amazon", "amazon-1", "product", "products", "purchased",
                       "PURCHASED ITEMS", _TEXT),
    # Yelp businesses: RLMRec shows {name, city, categories}; the city sits in `extra`.
    "yelp": Template("yelp", "yelp-1", "business", "businesses", "visited",
                     "PURCHASED BUSINESSES",
                     (("name", ("title",)), ("city", ("extra.city",)),
                      ("categories", ("categories",)))),
    # Steam games: RLMRec shows {name, publisher, genres, tags}; publisher and tags sit in
    # `extra` (the reader keeps the developer as brand, a fallback for the publisher).
    "steam": Template("steam", "steam-1", "game", "games", "played", "PLAYED GAMES",
                      (("name", ("title",)), ("publisher", ("extra.publisher", "brand")),
                       ("genres", ("categories",)), ("tags", ("extra.tags",)))),
    # Anything else (RecBole, sequence files, unknown releases): whatever text there is.
    "generic": Template("generic", "generic-1", "item", "items", "interacted with",
                        "INTERACTED ITEMS", _TEXT),
}

# `profile.kind: auto` picks from the raw format first, then from domain names.
_FORMAT_KIND = {"amazon2018": "amazon", "amazon2014": "amazon", "yelp": "yelp", "steam": "steam"}


def resolve_kind(kind: str, dataset_format: str | None, domains: list[str]) -> str:
    """The template kind for `profile.kind` (auto: by format, then by domain names)."""
    if kind != "auto":
        if kind not in TEMPLATES:
            raise ValueError(f"profile.kind={kind!r}; choose auto or one of {', '.join(KINDS)}")
        return kind
    if dataset_format in _FORMAT_KIND:
        return _FORMAT_KIND[dataset_format]
    names = " ".join(d.lower() for d in domains)
    for word, found in (("yelp", "yelp"), ("steam", "steam"), ("amazon", "amazon"),
                        ("book", "amazon")):
        if word in names:
            return found
    return "generic"


def truncate(text: str | None, max_chars: int) -> str:
    """At most `max_chars` characters, cut at a word boundary and marked with ' ...'."""
    text = " ".join((text or "").split())
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    return (cut[:space] if space > max_chars // 2 else cut).rstrip() + " ..."


def item_info(tmpl: Template, row: dict, max_chars: int, max_list: int = 20) -> dict:
    """The BASIC INFORMATION object of one item row of items.parquet (empty values left out)."""
    extra = _extra(row.get("extra"))
    info = {}
    for shown, sources in tmpl.item_fields:
        for src in sources:
            value = extra.get(src[6:]) if src.startswith("extra.") else row.get(src)
            value = _clean(value, max_chars, max_list)
            if value:
                info[shown] = value
                break
    return info


def item_prompt(tmpl: Template, info: dict, reviews: list[str]) -> tuple[str, str]:
    """(system, prompt) for one item; `reviews` are already training-only and truncated."""
    feedback = [{"review": r} for r in reviews if r]
    return tmpl.item_system, f"{INFO}:\n{_dump(info)}\n{FEEDBACK}:\n{_dump(feedback)}"


def user_prompt(tmpl: Template, history: list[dict]) -> tuple[str, str]:
    """(system, prompt) for one user; `history` entries are {title, description, review}
    built from the user's *training* interactions only (no user id: RLMRec issue #21)."""
    entries = [{k: v for k, v in h.items() if v} for h in history]
    return tmpl.user_system, f"{tmpl.history}:\n{_dump(entries)}"


_SECTION = re.compile(r"^([A-Z][A-Z ]*[A-Z]):\n(.*)$", re.M)


def parse_sections(prompt: str) -> dict:
    """{header: JSON value} of a prompt rendered above (inverse of item_prompt/user_prompt)."""
    return {m.group(1): json.loads(m.group(2)) for m in _SECTION.finditer(prompt)}


def _dump(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _extra(raw) -> dict:
    if isinstance(raw, dict):
        return raw
    try:
        obj = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _clean(value, max_chars: int, max_list: int):
    """Strings truncated, lists of strings deduplicated and capped; anything else dropped."""
    if isinstance(value, str):
        return truncate(value, max_chars)
    if isinstance(value, (list, tuple)) or hasattr(value, "to_list"):
        items = value.to_list() if hasattr(value, "to_list") else value
        out = [truncate(str(v), 100) for v in items if isinstance(v, str) and v.strip()]
        return list(dict.fromkeys(out))[:max_list]
    return None
