"""The shared parameter sections every stage may read: `dataset`, `split` and `seed`.

Stage-specific sections live next to the code they configure. Each dataclass field is a
params.yaml key; its comment is the documentation (params.yaml repeats it for users).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from recpipe.config import ParamError, choice, rng
from recpipe.data.readers import READERS

PROTOCOLS = ("random", "user_ratio", "loo", "temporal", "rlmrec")


@dataclass
class DatasetParams:
    # raw format of the files in `path`: one reader per published format
    format: str = field(default="amazon2018", metadata=choice(*READERS))
    # folder holding the raw files under their published names
    path: str = "data/raw/sample"
    # label used in reports; empty = the folder's name
    name: str = ""


@dataclass
class IngestParams:
    # fail when more than this fraction of any file's lines is rejected
    max_reject_fraction: float = field(default=0.01, metadata=rng(0.0, 1.0))
    # categories (domains) to read from a multi-category folder; empty = all found
    categories: list[str] = field(default_factory=list)
    # processes for Python-literal parsing (Steam, Amazon 2014 meta); 0 = all cores
    workers: int = field(default=0, metadata=rng(0))
    # lines per chunk for line-by-line parsers (Python literals, meta files): bounds memory
    chunk_lines: int = field(default=200_000, metadata=rng(1000))
    # MiB of decompressed text per block for JSON-lines reviews (polars fast path): bounds memory
    chunk_mb: float = field(default=32.0, metadata=rng(0.0, 4096.0, lo_open=True))
    # Steam interactions: auto picks the first present of reviews, australian_reviews, australian_items
    steam_source: str = field(
        default="auto", metadata=choice("auto", "reviews", "australian_reviews", "australian_items")
    )
    # seqtxt: reject a last line without a line break (it may be cut mid-number, "703" -> "70");
    # false = keep it, with a warning and a `truncated_last_line` count in the metrics
    strict_last_line: bool = False


@dataclass
class SplitParams:
    # random | user_ratio | loo | temporal | rlmrec (keep a pre-split release's split)
    protocol: str = field(default="random", metadata=choice(*PROTOCOLS))
    # keep only these domains; empty = all
    domains: list[str] = field(default_factory=list)
    # drop interactions rated below this (RLMRec: 3); null = keep all (unrated rows are kept)
    min_rating: float | None = None
    # uniform, seeded fraction of users kept before the k-core (RLMRec: 0.2 Amazon, 0.25 Yelp)
    sample_users: float = field(default=1.0, metadata=rng(0.0, 1.0, lo_open=True))
    # iterative k-core: every kept user / item has at least this many interactions
    user_core: int = field(default=5, metadata=rng(0))
    item_core: int = field(default=5, metadata=rng(0))
    # train/valid/test ratios for `random` (per interaction) and `user_ratio` (per user)
    ratios: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2], metadata=rng(0.0, 1.0))
    # `random`: how to guarantee every user and item a training interaction:
    # `repair` moves one interaction per violating user/item into train (always succeeds);
    # `redraw` redraws with seed+1, seed+2, ... up to `max_redraws` (the RLMRec description)
    guarantee: str = field(default="repair", metadata=choice("repair", "redraw"))
    max_redraws: int = field(default=1000, metadata=rng(1))
    # `loo`: keep only each user's last N interactions first (HeLLM: 50); 0 = all
    loo_max_len: int = field(default=0, metadata=rng(0))
    # `temporal`: valid starts / test starts at these global thresholds: a quantile in (0, 1)
    # of all timestamps, or a date "YYYY-MM-DD[ HH:MM:SS]" (UTC)
    temporal_valid: float | str = 0.8
    temporal_test: float | str = 0.9

    def validate(self) -> None:
        if len(self.ratios) != 3 or abs(sum(self.ratios) - 1.0) > 1e-6:
            raise ParamError(f"split.ratios: {self.ratios} must be 3 numbers summing to 1")
        for key in ("temporal_valid", "temporal_test"):
            v = getattr(self, key)
            if isinstance(v, float) and not 0.0 < v < 1.0:
                raise ParamError(f"split.{key}: quantile {v} must be in (0, 1), or give a date")
