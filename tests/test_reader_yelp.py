"""The `yelp` reader: real sample counts, and bad lines reported by file, line and field."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone

import polars as pl
import pytest
from conftest import FIXTURES, shared_path

from recpipe.data.readers import ReadOptions
from recpipe.data.readers import yelp
from recpipe.data.rejects import IngestError, RejectLog
from recpipe.data.schema import conform


def _read(folder, tmp_path, **opts):
    rejects = RejectLog()
    tables = yelp.read(folder, ReadOptions(**opts), rejects, tmp_path / "work")
    return tables, rejects


def _utc(*args) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp())


# --- real sample (../shared/data/yelp_raw_sample) ------------------------------------------


def test_real_sample_counts(tmp_path):
    folder = shared_path("yelp_raw_sample")
    # small blocks (0.2 MiB of the 0.76 MB file): the reviews stream as several Parquet parts
    tables, rejects = _read(folder, tmp_path, chunk_mb=0.2)
    inter = conform(tables.interactions, "interactions").collect()
    items = conform(tables.items, "items").collect()
    users = conform(tables.users, "users").collect()

    assert len(list((tmp_path / "work" / "yelp").glob("reviews-*.parquet"))) >= 3
    assert inter.height == 999
    assert inter["user"].n_unique() == 993
    assert inter["item"].n_unique() == 822
    assert rejects.rejects == []
    assert rejects.lines["yelp_academic_dataset_review.json"] == 999
    assert rejects.lines["yelp_academic_dataset_business.json"] == 5000
    assert rejects.lines["yelp_academic_dataset_user.json"] == 200

    # only 366/999 reviews have their business; no review's user is in the user file
    assert tables.stats["reviews_unknown_business"] == 999 - 366
    assert tables.stats["reviews_unknown_user"] == 999
    with_meta = inter.join(items.filter(pl.col("title").is_not_null()), on="item")
    assert with_meta.height == 366
    n_known_items = with_meta["item"].n_unique()
    assert tables.stats["items_without_meta"] == 822 - n_known_items == 517
    # every business of the file plus one stub per unknown reviewed business
    assert items.height == 5000 + 517
    assert items["item"].n_unique() == items.height
    assert items.filter(pl.col("title").is_null()).height == 517
    assert set(inter["item"]) <= set(items["item"])
    # users: the 200 of the file plus a stub ("{}") for each of the 993 reviewers
    assert users.height == 200 + 993
    assert users.filter(pl.col("extra") == "{}").height == 993
    assert tables.stats["users_without_meta"] == 993
    assert rejects.notes["reviews_unknown_business"] == 633

    # dates 2005-05-11 .. 2018-10-04 as UTC unix seconds, no nulls
    assert inter["ts"].null_count() == 0
    assert _utc(2005, 5, 11) <= inter["ts"].min() < _utc(2005, 5, 12)
    assert _utc(2018, 10, 4) <= inter["ts"].max() < _utc(2018, 10, 5)
    assert inter["domain"].unique().to_list() == ["yelp"]
    assert inter["rating"].is_between(1, 5).all()


def test_real_first_rows(tmp_path):
    folder = shared_path("yelp_raw_sample")
    tables, _ = _read(folder, tmp_path)
    inter = tables.interactions.collect()
    first = inter.row(0, named=True)
    assert first["user"] == "OyoGAe7OKpv6SyGZT5g77Q"
    assert first["item"] == "7ATYjTIgM3jUlt4UM3IypQ"
    assert first["rating"] == 5.0
    assert first["ts"] == _utc(2012, 1, 3, 15, 28, 18)
    assert first["review"].startswith("I've taken a lot of spin classes")
    assert json.loads(first["extra"]) == {
        "review_id": "BiTunyQ73aT9WBnpR9DZGw", "useful": 1, "funny": 0, "cool": 1
    }
    items = tables.items.collect()
    target = items.filter(pl.col("item") == "tUFrWirKiKi_TAnsVWINQQ").row(0, named=True)
    assert target["title"] == "Target"
    assert target["categories"][:2] == ["Department Stores", "Shopping"]
    assert len(target["categories"]) == 6
    extra = json.loads(target["extra"])
    assert extra["city"] == "Tucson" and extra["state"] == "AZ"
    assert extra["review_count"] == 22 and extra["stars"] == 3.5
    assert extra["attributes"]["RestaurantsPriceRange2"] == "2"
    assert extra["hours"]["Friday"] == "8:0-23:0"
    assert target["price"] is None and target["brand"] is None


# --- hand-written fixture with bad lines ----------------------------------------------------


def test_fixture_rejects_and_values(tmp_path):
    tables, rejects = _read(FIXTURES / "yelp", tmp_path)
    inter = tables.interactions.collect().sort("extra")
    review_ids = [json.loads(e)["review_id"] for e in inter["extra"]]
    assert review_ids == ["r1", "r2", "r8"]
    by_id = {json.loads(r["extra"])["review_id"]: r for r in inter.iter_rows(named=True)}
    assert by_id["r1"]["ts"] == _utc(2012, 1, 3, 15, 28, 18)
    assert by_id["r1"]["review"] == "Great pizza.\tCrisp crust."
    assert by_id["r2"]["ts"] == _utc(2014, 2, 5)  # date-only -> midnight UTC
    assert by_id["r2"]["rating"] == 5.0  # integer stars are fine
    assert by_id["r8"]["ts"] == _utc(2012, 1, 3, 15, 28, 18)  # epoch milliseconds

    got = {(r.file, r.line, r.field) for r in rejects.rejects}
    assert got == {
        ("yelp_academic_dataset_review.json", 3, None),  # malformed JSON
        ("yelp_academic_dataset_review.json", 4, "business_id"),
        ("yelp_academic_dataset_review.json", 5, "stars"),
        ("yelp_academic_dataset_review.json", 7, "date"),
        ("yelp_academic_dataset_business.json", 3, None),
        ("yelp_academic_dataset_business.json", 4, "business_id"),
        ("yelp_academic_dataset_user.json", 3, None),  # an array, not an object
    }
    reasons = {(r.file, r.line): r.reason for r in rejects.rejects}
    assert reasons[("yelp_academic_dataset_review.json", 3)].startswith("malformed JSON")
    assert "five" in reasons[("yelp_academic_dataset_review.json", 5)]
    texts = {(r.file, r.line): r.text for r in rejects.rejects}
    assert texts[("yelp_academic_dataset_review.json", 4)].startswith('{"review_id":"r4"')
    assert texts[("yelp_academic_dataset_review.json", 7)].startswith('{"review_id":"r7"')
    assert all(r.text for r in rejects.rejects)
    # blank line 6 is skipped; line numbers and the count still follow the file
    assert rejects.lines["yelp_academic_dataset_review.json"] == 8

    items = tables.items.collect().sort("item")
    assert items["item"].to_list() == ["b1", "b2", "b3"]
    b1, b2, b3 = items.iter_rows(named=True)
    assert b1["title"] == "Luigi's"  # the duplicate b1 line later in the file is dropped
    assert b1["categories"] == ["Pizza", "Italian", "Restaurants"]
    assert json.loads(b1["extra"])["attributes"]["RestaurantsPriceRange2"] == "2"
    assert b2["title"] is None and b2["categories"] == []  # reviewed, not in business file
    assert b3["categories"] == []  # categories: null
    assert rejects.notes["duplicate_ids/yelp_academic_dataset_business.json"] == 1
    assert tables.stats["items_without_meta"] == 1
    assert tables.stats["reviews_unknown_business"] == 1

    users = tables.users.collect().sort("user")
    assert users["user"].to_list() == ["u1", "u2", "u9"]
    u1 = json.loads(users.row(0, named=True)["extra"])
    assert u1["friends"] == ["u2", "u9"] and u1["name"] == "Ann"  # list-shaped friends kept
    assert users.row(1, named=True)["extra"] == "{}"
    assert tables.stats["reviews_unknown_user"] == 1  # r2 by u2


def test_bad_lines_across_blocks(tmp_path):
    """With tiny blocks every line is its own block: line numbers must still be exact."""
    _, small = _read(FIXTURES / "yelp", tmp_path / "a", chunk_mb=1e-5)
    _, whole = _read(FIXTURES / "yelp", tmp_path / "b")
    key = lambda r: (r.file, r.line, r.field, r.text)  # noqa: E731
    assert sorted(map(key, small.rejects)) == sorted(map(key, whole.rejects))
    assert small.lines == whole.lines


def test_side_files_in_a_process_pool(tmp_path, monkeypatch):
    """Large side files go through the spawn pool; the result must equal the in-process one."""
    serial, _ = _read(FIXTURES / "yelp", tmp_path / "a")
    monkeypatch.setattr(yelp, "_POOL_MIN_BYTES", 0)
    pooled, rejects = _read(FIXTURES / "yelp", tmp_path / "b", workers=2)
    for name in ("items", "users"):
        a = getattr(serial, name).collect().sort(pl.all())
        b = getattr(pooled, name).collect().sort(pl.all())
        assert a.equals(b), name
    assert len(rejects.rejects) == 7


def test_optional_side_files_absent(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    shutil.copy(FIXTURES / "yelp" / "yelp_academic_dataset_review.json", folder)
    tables, _ = _read(folder, tmp_path)
    assert tables.users is None
    items = tables.items.collect()
    assert sorted(items["item"]) == ["b1", "b2", "b3"]
    assert items["title"].null_count() == 3
    assert "reviews_unknown_business" not in tables.stats


def test_missing_review_file(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    shutil.copy(FIXTURES / "yelp" / "yelp_academic_dataset_business.json", folder)
    with pytest.raises(IngestError, match="yelp_academic_dataset_review.json"):
        _read(folder, tmp_path)
