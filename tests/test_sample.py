"""The embedded sample dataset: format, determinism, 5-core guarantee and real signal.

The generator is the pipeline's default input, so these tests pin what the rest of the
pipeline relies on: files a real Amazon 2018 reader accepts, identical bytes for a seed,
counts in the documented ranges, and text that carries taste signal a popularity ranking
lacks (otherwise every LLM method would look useless on the default run).
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from recpipe.config import ParamError, load_params, parse, section
from recpipe.data.sample import SampleConfig, generate

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = ["Books", "Video_Games", "Home_and_Kitchen"]
SMALL = dict(n_users=300, n_items=240, reviews_per_user_mean=15.0, seed=7)
REVIEW_KEYS = {"overall", "verified", "reviewTime", "reviewerID", "asin", "reviewerName",
               "reviewText", "summary", "unixReviewTime"}
REVIEW_OPTIONAL = {"vote", "style", "image"}
META_KEYS = {"asin", "title", "brand", "price", "category", "description", "feature",
             "also_buy", "also_view", "rank", "main_cat", "date", "details", "tech1", "tech2",
             "fit", "similar_item"}


def _lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def _reviews(folder: Path) -> list[dict]:
    """Every review, exact duplicate lines dropped (as the reader must do)."""
    out = []
    for d in DOMAINS:
        out += [json.loads(x) for x in dict.fromkeys(_lines(folder / f"{d}_5.json.gz"))]
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sample_small")
    return out, generate(SampleConfig(**SMALL), out)


@pytest.fixture(scope="module")
def default(tmp_path_factory) -> tuple[Path, dict, float]:
    out = tmp_path_factory.mktemp("sample_default")
    t0 = time.perf_counter()
    counts = generate(SampleConfig(seed=2024), out)
    return out, counts, time.perf_counter() - t0


def test_same_seed_same_bytes_other_seed_differs(small, tmp_path):
    folder, _ = small
    again = tmp_path / "again"  # a different folder: no path may leak into the bytes
    generate(SampleConfig(**SMALL), again)
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    assert len(names) == 2 * len(DOMAINS) + 2  # reviews + meta per domain, README, json
    for n in names:
        assert (folder / n).read_bytes() == (again / n).read_bytes(), n
    other = tmp_path / "other"
    generate(SampleConfig(**{**SMALL, "seed": 8}), other)
    assert (other / "Books_5.json.gz").read_bytes() != (folder / "Books_5.json.gz").read_bytes()


def test_review_lines_are_strict_amazon2018_json(small):
    folder, counts = small
    n_vote = n_lines = 0
    for d in DOMAINS:
        lines = _lines(folder / f"{d}_5.json.gz")
        n_lines += len(lines)
        assert len(lines) - len(set(lines)) == counts[f"{d}.duplicate_review_lines"]
        for line in lines:
            rec = json.loads(line)
            assert REVIEW_KEYS <= rec.keys() <= REVIEW_KEYS | REVIEW_OPTIONAL, rec.keys()
            assert isinstance(rec["overall"], float) and rec["overall"] in (1, 2, 3, 4, 5)
            assert isinstance(rec["unixReviewTime"], int) and rec["unixReviewTime"] % 86400 == 0
            day = datetime.fromtimestamp(rec["unixReviewTime"], timezone.utc)
            assert rec["reviewTime"] == f"{day.month:02d} {day.day}, {day.year}"
            assert isinstance(rec["verified"], bool) and rec["reviewText"] and rec["summary"]
            if "vote" in rec:
                n_vote += 1
                assert re.fullmatch(r"\d{1,3}(,\d{3})*", rec["vote"]), rec["vote"]
            if "style" in rec:
                assert isinstance(rec["style"], dict) and len(rec["style"]) == 1
    assert 0.05 < n_vote / n_lines < 0.3  # `vote` on some lines only, as in the real files
    assert sum(counts[f"{d}.duplicate_review_lines"] for d in DOMAINS) > 0


def test_meta_lines_cover_items_with_the_known_wrinkles(small):
    folder, counts = small
    asins = {r["asin"] for r in _reviews(folder)}
    seen: set[str] = set()
    image_variant = 0
    for d in DOMAINS:
        lines = _lines(folder / f"meta_{d}.json.gz")
        recs = [json.loads(x) for x in lines]
        assert len(recs) == counts[f"{d}.meta_lines"]
        dup = len(recs) - len({r["asin"] for r in recs})
        assert dup == counts[f"{d}.duplicate_meta_lines"] > 0
        for r in recs:
            assert META_KEYS <= r.keys()
            assert ("image" in r) != ("imageURL" in r and "imageURLHighRes" in r)
            image_variant += "image" in r
            assert isinstance(r["category"], list) and r["category"][0] in (
                "Books", "Video Games", "Home & Kitchen")
            assert isinstance(r["description"], list) and r["title"] and r["brand"]
            assert r["price"] == "" or re.fullmatch(r"\$\d+\.\d\d", r["price"]), r["price"]
            assert isinstance(r["rank"], str if d == "Books" else list)
            if d == "Books":
                assert re.fullmatch(r"\d{9}[\dX]", r["asin"])  # ISBN-10 like real Books
        seen |= {r["asin"] for r in recs}
    assert asins <= seen and len(seen) == SMALL["n_items"]  # every reviewed item has meta
    assert image_variant == sum(counts[f"{d}.image_variant_lines"] for d in DOMAINS)


def test_every_user_and_item_has_five_distinct_reviews(small):
    folder, counts = small
    revs = _reviews(folder)
    pairs = {(r["reviewerID"], r["asin"]) for r in revs}
    assert len(pairs) == len(revs) == counts["reviews"]  # no repeated pair after line dedup
    per_user = Counter(u for u, _ in pairs)
    per_item = Counter(i for _, i in pairs)
    assert len(per_user) == SMALL["n_users"] and len(per_item) == SMALL["n_items"]
    assert min(per_user.values()) >= 5 and min(per_item.values()) >= 5


def test_default_size_counts_and_speed(default):
    folder, counts, seconds = default
    print(f"default generation: {seconds:.1f}s")  # timing is reported, not asserted
    assert counts["users"] == 2000 and counts["items"] == 1500
    assert 30_000 <= counts["reviews"] <= 50_000
    assert counts["users_in_2plus_domains"] > 0.8 * 2000  # cross-domain signal exists
    years = (datetime.fromtimestamp(counts[k], timezone.utc).year for k in ("ts_min", "ts_max"))
    assert tuple(years) == (2012, 2018)
    stars = np.array([counts[f"stars_{s}"] for s in range(1, 6)]) / counts["reviews"]
    assert stars[4] == stars.max() and stars[4] > 0.35 and stars[0] > 0.02  # J-shaped
    gen = json.loads((folder / "generator.json").read_text())
    assert gen["params"]["seed"] == 2024 and gen["counts"] == counts
    readme = (folder / "README.md").read_text()
    assert "synthetic" in readme.lower() and "seed 2024" in readme


def _tfidf(docs: list[list[str]], vocab: dict[str, int]) -> np.ndarray:
    m = np.zeros((len(docs), len(vocab)), np.float32)
    for r, toks in enumerate(docs):
        for t in toks:
            j = vocab.get(t)
            if j is not None:
                m[r, j] += 1
    return m


def _norm(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-9)


def hit_rates(folder: Path, k: int = 10) -> dict[str, float]:
    """HR@k on each user's last review: text (TF-IDF cosine) vs popularity vs random."""
    tok = re.compile(r"[a-z]+")
    revs = _reviews(folder)
    meta: dict[str, dict] = {}
    for d in DOMAINS:
        for x in _lines(folder / f"meta_{d}.json.gz"):
            rec = json.loads(x)
            meta.setdefault(rec["asin"], rec)
    items = sorted(meta)
    iid = {a: n for n, a in enumerate(items)}
    item_toks = [tok.findall((meta[a]["title"] + " " + " ".join(meta[a]["description"])).lower())
                 for a in items]
    vocab = {w: n for n, w in enumerate(sorted({w for t in item_toks for w in t}))}
    df = (_tfidf(item_toks, vocab) > 0).sum(axis=0)
    idf = np.log(len(items) / df).astype(np.float32)
    item_vec = _norm(_tfidf(item_toks, vocab) * idf)
    by_user: dict[str, list] = {}
    for r in revs:
        by_user.setdefault(r["reviewerID"], []).append(r)
    users = sorted(by_user)
    test, hist_docs = np.empty(len(users), np.int64), []
    seen = np.zeros((len(users), len(items)), bool)
    for n, u in enumerate(users):
        seq = sorted(by_user[u], key=lambda r: (r["unixReviewTime"], r["asin"]))
        test[n] = iid[seq[-1]["asin"]]
        doc: list[str] = []
        for r in seq[:-1]:
            seen[n, iid[r["asin"]]] = True
            doc += tok.findall(r["reviewText"].lower())
            if r["overall"] >= 4:  # what they liked describes their taste
                doc += item_toks[iid[r["asin"]]]
        hist_docs.append(doc)
    text = _norm(_tfidf(hist_docs, vocab) * idf) @ item_vec.T
    pop = np.broadcast_to(seen.sum(axis=0).astype(np.float32), seen.shape).copy()
    out = {}
    for name, score in (("text", text), ("pop", pop)):
        score[seen] = -np.inf
        top = np.argsort(-score, axis=1, kind="stable")[:, :k]
        out[name] = float((top == test[:, None]).any(axis=1).mean())
    out["random"] = float(np.mean(k / (len(items) - seen.sum(axis=1))))
    return out


def test_text_carries_taste_signal_that_popularity_lacks(default):
    folder, _, _ = default
    hr = hit_rates(folder)
    print(f"HR@10 text={hr['text']:.4f} pop={hr['pop']:.4f} random={hr['random']:.4f}")
    assert hr["pop"] > 2 * hr["random"]  # popularity is real, as in real data ...
    assert hr["text"] > 2 * hr["pop"] and hr["text"] - hr["pop"] > 0.05  # ... but not the story


def test_config_rejects_bad_values():
    with pytest.raises(ParamError, match="domains"):
        parse(SampleConfig, {"domains": ["Books", "Beauty"]}, prefix="sample")
    with pytest.raises(ParamError, match="n_clusters"):
        parse(SampleConfig, {"n_clusters": 99}, prefix="sample")
    with pytest.raises(ParamError, match="unknown key"):
        parse(SampleConfig, {"n_user": 10}, prefix="sample")
    with pytest.raises(ParamError, match="end_year"):
        parse(SampleConfig, {"start_year": 2018, "end_year": 2012}, prefix="sample")
    cfg = section({"sample": {"n_users": 50, "out": "x/y"}}, "sample", SampleConfig)
    assert cfg.n_users == 50 and cfg.out == Path("x/y")


def test_stage_script_reads_params_and_top_level_seed(tmp_path):
    (tmp_path / "params.yaml").write_text(
        "seed: 11\nsample:\n  n_users: 60\n  n_items: 90\n  reviews_per_user_mean: 8\n"
        "  out: data/raw/sample\n")
    proc = subprocess.run([sys.executable, str(ROOT / "stages" / "sample.py")], cwd=tmp_path,
                          capture_output=True, text=True, check=True)
    out = tmp_path / "data" / "raw" / "sample"
    gen = json.loads((out / "generator.json").read_text())
    assert gen["params"]["seed"] == 11 and gen["counts"]["users"] == 60
    assert f"{gen['counts']['reviews']:,} reviews" in proc.stdout
    assert load_params(tmp_path / "params.yaml")["seed"] == 11
    (tmp_path / "params.yaml").write_text("seed: 11\nsample:\n  noise: 2\n")
    bad = subprocess.run([sys.executable, str(ROOT / "stages" / "sample.py")], cwd=tmp_path,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "sample.noise: 2" in bad.stderr


def _half_overlap(folder: Path) -> float:
    """Mean share of a user's late-half themes already seen in their early half."""
    from recpipe.data.sample_text import WORD_LIST  # word id // 12 = theme

    theme_of_word = {w: n // 12 for n, w in enumerate(WORD_LIST)}
    theme = {}
    for d in DOMAINS:
        for x in _lines(folder / f"meta_{d}.json.gz"):
            rec = json.loads(x)
            found = [theme_of_word[w] for w in re.findall(r"[a-z]+", rec["title"].lower())
                     if w in theme_of_word]
            theme[rec["asin"]] = Counter(found).most_common(1)[0][0]
    by_user: dict[str, list] = {}
    for r in _reviews(folder):
        by_user.setdefault(r["reviewerID"], []).append((r["unixReviewTime"], theme[r["asin"]]))
    shares = []
    for seq in by_user.values():
        seq = [t for _, t in sorted(seq)]
        early, late = set(seq[: len(seq) // 2]), seq[len(seq) // 2:]
        shares.append(np.mean([t in early for t in late]))
    return float(np.mean(shares))


def test_drift_moves_tastes_over_time(tmp_path):
    cfg = {**SMALL, "n_users": 200, "reviews_per_user_mean": 20.0}
    generate(SampleConfig(**cfg, drift=0.0), tmp_path / "still")
    generate(SampleConfig(**cfg, drift=1.0), tmp_path / "moving")
    still, moving = _half_overlap(tmp_path / "still"), _half_overlap(tmp_path / "moving")
    print(f"late-half themes seen early: drift=0 {still:.3f}, drift=1 {moving:.3f}")
    assert moving < still - 0.04  # measured gap 0.07-0.11 over seeds


def test_refuses_a_folder_holding_other_raw_files(tmp_path):
    (tmp_path / "Beauty_5.json.gz").write_bytes(b"")  # e.g. real data: never overwritten
    with pytest.raises(FileExistsError, match="Beauty_5.json.gz"):
        generate(SampleConfig(**SMALL), tmp_path)
    assert (tmp_path / "Beauty_5.json.gz").exists()
    assert not (tmp_path / "Books_5.json.gz").exists()
