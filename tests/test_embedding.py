"""The embed stage on real Gift Cards data with the real all-MiniLM-L6-v2.

One SentenceTransformer is loaded for the module (loading costs ~10 s); one text-hash cache
is shared too, so only the first test pays for encoding the 147 item texts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import shared_path, stage

from recpipe.data.ingest import ingest
from recpipe.data.processed import build
from recpipe.embedding.embed import embed_all, item_text, item_texts, strip_html
from recpipe.embedding.images import align_features, load_features
from recpipe.embedding.text import TextEncoder
from recpipe.params import DatasetParams, IngestParams, SplitParams


@pytest.fixture(scope="session")
def encoder():
    # 64 word pieces instead of MiniLM's 256 keeps the module fast on 2 cores; the direct
    # reference encodings below go through the same (truncating) model, so rows still compare
    enc = TextEncoder("minilm", batch_size=32, normalize=True, device="cpu", max_seq_length=64)
    _ = enc.model  # load once, through the same path the stage uses
    return enc


@pytest.fixture(scope="module")
def gift(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gift")
    ingest(DatasetParams(format="amazon2018", path=str(shared_path("amazon2018_gift_cards"))),
           IngestParams(), root / "interim")
    build(root / "interim", root / "processed", SplitParams(), 7)
    return root / "processed"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def first(gift, encoder, cache_dir, tmp_path_factory):
    """Item-text embeddings of a cold cache: (out folder, report)."""
    out = tmp_path_factory.mktemp("out1")
    return out, embed_all(gift, out, encoder, cache_dir)


def cos(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def direct(encoder, text: str) -> np.ndarray:
    """The reference: SentenceTransformer.encode on the text alone, no cache, no batching."""
    return encoder.model.encode([text], normalize_embeddings=True, convert_to_numpy=True)[0]


def test_item_text_recipe_strips_html_and_skips_empty_parts():
    assert strip_html("Noodles &amp; Company <b>Gift</b><br/>Card  &#39;s") == "Noodles & Company Gift Card 's"
    assert item_text("A &amp; B", "", ["Gift Cards", "Restaurants"], "<p>Eat\nwell</p>") == \
        "A & B Gift Cards Eat well"
    assert item_text("T", "Brand", [], None) == "T Brand"


def test_item_text_rows_line_up_with_iids(first, gift, encoder):
    out, rep = first
    mat = np.load(out / "item_text.npy", allow_pickle=False)
    items = pl.read_parquet(gift / "items.parquet").sort("iid")
    assert mat.shape == (147, 384) and mat.dtype == np.float32 and rep["dim"] == 384
    assert np.allclose(np.linalg.norm(mat, axis=1), 1.0, atol=1e-5)
    texts = item_texts(gift)
    amp = items.filter(pl.col("title").str.contains("&amp;"))["iid"][0]
    assert "&amp;" not in texts[amp] and " & " in texts[amp]
    for i in (0, 1, 2, 40, int(amp), 146):
        r = items.row(i, named=True)
        assert r["iid"] == i
        text = item_text(r["title"], r["brand"], r["categories"], r["description"])
        assert cos(mat[i], direct(encoder, text)) > 0.9999, i
    # items 1 and 2 share a description but not a title: close, yet distinct rows
    assert 0.5 < cos(mat[1], mat[2]) < 0.9999
    assert rep["item_text/encoded"] == len(set(texts)) and rep["item_text/cached"] == 0
    idx = json.loads((out / "index.json").read_text())["matrices"]["item_text"]
    assert idx["rows"] == 147 and idx["dim"] == 384 and idx["normalized"] and idx["missing_rows"] == []
    assert not (out / "user_profile.npy").exists()


def test_rerun_encodes_nothing_and_one_changed_text_encodes_one(first, gift, encoder, cache_dir, tmp_path):
    out1, rep1 = first
    cache_file = next(cache_dir.glob("*.parquet"))
    cache_bytes = cache_file.read_bytes()
    rep2 = embed_all(gift, tmp_path / "out2", encoder, cache_dir)
    assert rep2["item_text/encoded"] == 0 and rep2["item_text/cached"] == rep1["item_text/encoded"]
    assert (tmp_path / "out2" / "item_text.npy").read_bytes() == (out1 / "item_text.npy").read_bytes()
    assert cache_file.read_bytes() == cache_bytes  # a cache-hit run does not rewrite the cache

    changed = tmp_path / "processed"
    shutil.copytree(gift, changed)
    items = pl.read_parquet(gift / "items.parquet")
    items = items.with_columns(pl.when(pl.col("iid") == 7).then(pl.lit("A brand new title"))
                               .otherwise(pl.col("title")).alias("title"))
    items.write_parquet(changed / "items.parquet")
    rep3 = embed_all(changed, tmp_path / "out3", encoder, cache_dir)
    assert rep3["item_text/encoded"] == 1
    old = np.load(out1 / "item_text.npy")
    new = np.load(tmp_path / "out3" / "item_text.npy")
    same = np.all(old == new, axis=1)
    assert not same[7] and same.sum() == 146
    assert cos(new[7], direct(encoder, item_texts(changed)[7])) > 0.9999


def write_profiles(folder: Path, n_users: int, n_items: int) -> None:
    """Hand-written profile tables in the profile stage's format (uid/iid, status, summarization, reasoning)."""
    folder.mkdir(parents=True, exist_ok=True)
    moods = ["Enjoys restaurant gift cards", "Buys Amazon gift cards for family",
             "Likes coffee shop cards", "Gives movie theatre cards"]
    users = [(u, "ok", moods[u % 4], "r") for u in range(n_users) if u != 5]  # uid 5 absent
    users[3] = (3, "failed", None, "invalid JSON")
    users[4] = (4, "ok", "None", "could not summarise")
    items = [(i, "ok", f"Suits shoppers who like store number {i % 6}", "r") for i in range(n_items)]
    items[10] = (10, "failed", "", "")
    for name, col, rows in (("user", "uid", users), ("item", "iid", items)):
        pl.DataFrame(rows, schema={col: pl.Int32, "status": pl.Utf8, "summarization": pl.Utf8,
                                   "reasoning": pl.Utf8}, orient="row").write_parquet(folder / f"{name}_profiles.parquet")


def test_profile_embeddings_fill_failed_rows_with_the_mean(gift, encoder, cache_dir, tmp_path):
    write_profiles(tmp_path / "profiles", 453, 147)
    rep = embed_all(gift, tmp_path / "out", encoder, cache_dir, profiles=tmp_path / "profiles")
    users = np.load(tmp_path / "out" / "user_profile.npy")
    items = np.load(tmp_path / "out" / "item_profile.npy")
    assert users.shape == (453, 384) and items.shape == (147, 384) and users.dtype == np.float32
    assert rep["user_profile/failed"] == 2 and rep["user_profile/absent"] == 1
    assert rep["item_profile/failed"] == 1 and rep["item_profile/absent"] == 0
    assert rep["user_profile/encoded"] == 4 and rep["item_profile/encoded"] == 6  # distinct texts only
    assert cos(users[0], direct(encoder, "Enjoys restaurant gift cards")) > 0.9999
    assert cos(users[6], direct(encoder, "Likes coffee shop cards")) > 0.9999
    assert cos(items[11], direct(encoder, "Suits shoppers who like store number 5")) > 0.9999
    ok = np.ones(453, bool)
    ok[[3, 4, 5]] = False
    mean = users[ok].mean(0)
    for u in (3, 4, 5):
        assert cos(users[u], mean) > 0.9999 and abs(np.linalg.norm(users[u]) - 1) < 1e-5
    index = json.loads((tmp_path / "out" / "index.json").read_text())["matrices"]
    assert index["user_profile"]["missing_rows"] == [3, 4, 5]
    assert index["item_profile"]["missing_rows"] == [10]


def test_missing_profiles_stop_and_textless_ones_write_no_matrix(gift, encoder, cache_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="profile"):
        embed_all(gift, tmp_path / "o", encoder, cache_dir, profiles=tmp_path / "nowhere")
    write_profiles(tmp_path / "p", 453, 147)
    bad = pl.read_parquet(tmp_path / "p" / "item_profiles.parquet").with_columns(status=pl.lit("failed"))
    bad.write_parquet(tmp_path / "p" / "item_profiles.parquet")
    report = embed_all(gift, tmp_path / "o", encoder, cache_dir, profiles=tmp_path / "p")
    # every item profile failed (a release without text): no made-up matrix, said so
    assert report["item_profile/skipped"] == 1 and not (tmp_path / "o" / "item_profile.npy").exists()
    assert (tmp_path / "o" / "user_profile.npy").exists()
    index = json.loads((tmp_path / "o" / "index.json").read_text())
    assert index["matrices"]["item_profile"]["skipped"] == "no text to embed"


@pytest.mark.parametrize("layout", ["npy", "parquet"])
def test_image_features_align_to_iids_and_fill_missing_with_mean(gift, encoder, cache_dir, tmp_path, layout):
    raw = pl.read_parquet(gift / "item_map.parquet").sort("iid")["item"].to_list()
    rng = np.random.default_rng(0)
    feats = {it: rng.normal(size=8).astype(np.float32) for it in raw}
    keys = [it for it in raw if it not in (raw[3], raw[50])] + ["NOT_AN_ITEM"]
    feats["NOT_AN_ITEM"] = np.full(8, 99.0, np.float32)
    rng.shuffle(keys)
    mat = np.stack([feats[k] for k in keys])
    if layout == "npy":
        path = tmp_path / "img.npy"
        np.save(path, mat)
        (tmp_path / "img.keys.txt").write_text("\n".join(keys) + "\n")
    else:
        path = tmp_path / "img.parquet"
        pl.DataFrame({"item": keys, "vector": [v.tolist() for v in mat]}).write_parquet(path)
    rep = embed_all(gift, tmp_path / "out", encoder, cache_dir, image_features=str(path))
    img = np.load(tmp_path / "out" / "item_image.npy")
    assert img.shape == (147, 8) and img.dtype == np.float32
    assert rep["item_image/missing"] == 2 and rep["item_image/unused_keys"] == 1
    for i in (0, 1, 100, 146):
        assert np.array_equal(img[i], feats[raw[i]])
    present = np.stack([feats[it] for it in raw if it not in (raw[3], raw[50])])
    assert np.allclose(img[3], present.mean(0), atol=1e-6) and np.array_equal(img[3], img[50])
    assert json.loads((tmp_path / "out" / "index.json").read_text())["matrices"]["item_image"]["missing_rows"] == [3, 50]
    # switching image features off removes the stale matrix
    embed_all(gift, tmp_path / "out", encoder, cache_dir)
    assert not (tmp_path / "out" / "item_image.npy").exists()


def test_image_features_reject_duplicates_and_missing_keys_file(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 3), np.float32))
    with pytest.raises(FileNotFoundError, match="keys"):
        load_features(tmp_path / "a.npy")
    (tmp_path / "a.keys.txt").write_text("x\nx\n")
    with pytest.raises(ValueError, match="duplicate"):
        load_features(tmp_path / "a.npy")
    with pytest.raises(ValueError, match="none of the dataset"):
        align_features(["p", "q"], ["x", "y"], np.zeros((2, 3), np.float32))


def test_stage_writes_metrics_and_rejects_bad_params(gift, encoder, cache_dir, tmp_path, capsys):
    main = stage("embed").main
    write_profiles(tmp_path / "profiles", 453, 147)
    args = ["--processed", str(gift), "--profiles", str(tmp_path / "profiles"), "--out",
            str(tmp_path / "emb"), "--cache", str(cache_dir), "--metrics", str(tmp_path / "m.json")]
    (tmp_path / "params.yaml").write_text("embed:\n  device: cpu\n  batch_size: 32\n  max_seq_length: 64\n")
    # warm the shared cache (a no-op after the tests above): the stage, whose params give the
    # same encoder signature, then serves every text from it without even loading the model
    embed_all(gift, tmp_path / "warm", encoder, cache_dir, profiles=tmp_path / "profiles")
    assert main(["--params", str(tmp_path / "params.yaml"), *args]) == 0
    m = json.loads((tmp_path / "emb" / "metrics.json").read_text())  # the full file
    assert json.loads((tmp_path / "m.json").read_text()) == {"dim": 384, "status": "ok"}
    assert m["users"] == 453 and m["items"] == 147 and m["dim"] == 384
    assert m["item_text/encoded"] == m["user_profile/encoded"] == m["item_profile/encoded"] == 0
    assert not any("second" in k for k in m)
    for name in ("user_profile", "item_profile", "item_text"):
        assert np.load(tmp_path / "emb" / f"{name}.npy").dtype == np.float32
    (tmp_path / "params.yaml").write_text("embed:\n  device: gpu\n")
    assert main(["--params", str(tmp_path / "params.yaml"), *args]) == 2
    assert "embed.device: 'gpu'" in capsys.readouterr().err
