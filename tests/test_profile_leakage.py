"""Leakage guard: no validation or test interaction reaches any profile prompt.

RLMRec's rule (issues #10, #20, #26): profiles are built from training interactions only;
a user profile that saw a test review would leak the target into the embedding the model is
evaluated with. On a real processed split (Amazon 2018 Gift Cards, random protocol) every
validation/test review is replaced by a unique marker, then the real `profile` function runs
with a backend that records every prompt it is sent. The guard checks that (1) no marker
reaches any item or user prompt, and (2) every (title, review) entry of a user prompt is one
of that user's own training interactions. The last test proves the guard can fail: with the
train filter removed, both checks trip.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from conftest import shared_path
from recpipe.data.ingest import ingest
from recpipe.data.processed import build
from recpipe.params import DatasetParams, IngestParams, SplitParams
from recpipe.profiling import profile as profile_mod
from recpipe.profiling import prompts
from recpipe.profiling.backends.template import TemplateBackend
from recpipe.profiling.profile import ProfileParams, profile

# large enough that every training review of a user/item is shown: the strongest check
PARAMS = ProfileParams(max_items=1000, max_reviews=1000, max_review_chars=100_000)


@pytest.fixture(scope="module")
def marked(tmp_path_factory) -> tuple[Path, pl.DataFrame]:
    """A processed Gift Cards split whose valid/test reviews are unique marker strings."""
    base = tmp_path_factory.mktemp("leak")
    raw = shared_path("amazon2018_gift_cards")
    ingest(DatasetParams(format="amazon2018", path=str(raw)), IngestParams(), base / "interim")
    build(base / "interim", base / "processed", SplitParams(protocol="random"), 11)
    inter = pl.read_parquet(base / "processed/interactions.parquet")
    held = pl.col("split") != "train"
    inter = inter.with_columns(
        pl.when(held).then(pl.format("LEAKMARKER u{} i{} {}", "uid", "iid", "split"))
        .otherwise(pl.col("review")).alias("review"))
    inter.write_parquet(base / "processed/interactions.parquet")
    return base / "processed", inter


class Recorder(TemplateBackend):
    """The template backend, keeping every prompt it is asked to complete."""

    def __init__(self):
        super().__init__()
        self.prompts: dict[str, str] = {}

    def generate(self, requests):
        requests = list(requests)
        self.prompts.update({r.entity: r.prompt for r in requests})
        yield from super().generate(requests)


def _run(processed: Path, tmp_path: Path) -> dict[str, str]:
    rec = Recorder()
    profile(processed, tmp_path / "out", tmp_path / "cache.jsonl", PARAMS, 11, "amazon2018",
            progress=False, backend=rec)
    return rec.prompts


def leaks(sent: dict[str, str], inter: pl.DataFrame, items: pl.DataFrame) -> list[str]:
    """Every violation of the leakage rule in the prompts `sent` (entity -> prompt)."""
    bad = [f"{e}: marker" for e, p in sent.items() if "LEAKMARKER" in p]
    titles = dict(items.select("iid", "title").iter_rows())
    train = inter.filter(pl.col("split") == "train")
    allowed: dict[int, set] = {}
    for uid, iid, review in train.select("uid", "iid", "review").iter_rows():
        allowed.setdefault(uid, set()).add((prompts.truncate(titles.get(iid), 200),
                                           prompts.truncate(review, 100_000)))
    for entity, prompt in sent.items():
        if not entity.startswith("user:"):
            continue
        uid = int(entity.split(":")[1])
        for entry in prompts.parse_sections(prompt)["PURCHASED ITEMS"]:
            pair = (entry.get("title", ""), entry.get("review", ""))
            if pair not in allowed.get(uid, set()):
                bad.append(f"{entity}: {pair!r} is not one of its training interactions")
    return bad


def test_no_valid_or_test_interaction_reaches_any_prompt(marked, tmp_path):
    processed, inter = marked
    items = pl.read_parquet(processed / "items.parquet")
    held = inter.filter(pl.col("split") != "train")
    assert held.height > 900 and held["review"].str.starts_with("LEAKMARKER").all()
    sent = _run(processed, tmp_path)
    n_users = pl.read_parquet(processed / "user_map.parquet").height
    assert sum(e.startswith("user:") for e in sent) == n_users > 400
    assert sum(e.startswith("item:") for e in sent) == items.height
    assert leaks(sent, inter, items) == []
    # and the training reviews are all there (the check above is not vacuous)
    train = inter.filter(pl.col("split") == "train")
    users_text = "\n".join(p for e, p in sent.items() if e.startswith("user:"))
    shown = sum(json.dumps(prompts.truncate(r, 100_000), ensure_ascii=False)[1:-1] in users_text
                for r in train["review"].drop_nulls().unique())
    assert shown == train["review"].drop_nulls().n_unique()


def test_the_guard_trips_when_held_out_rows_are_fed(marked, tmp_path, monkeypatch):
    processed, inter = marked
    items = pl.read_parquet(processed / "items.parquet")
    monkeypatch.setattr(profile_mod, "train_rows", lambda df: df)  # a leaky stage
    sent = _run(processed, tmp_path)
    bad = leaks(sent, inter, items)
    markers = [b for b in bad if b.endswith("marker")]
    assert any(b.startswith("user:") for b in markers)
    assert any(b.startswith("item:") for b in markers)
    assert any("is not one of its training interactions" in b for b in bad)
