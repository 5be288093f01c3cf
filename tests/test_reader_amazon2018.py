"""Amazon 2018 reader on the real shared files and on hand-written bad-line fixtures."""

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from conftest import shared_path
from recpipe.data.ingest import ingest
from recpipe.data.readers import ReadOptions, get_reader
from recpipe.data.readers.amazon2018 import category_of, parse_price
from recpipe.data.rejects import IngestError, RejectLog
from recpipe.data.schema import conform
from recpipe.params import DatasetParams, IngestParams


def read(folder, tmp_path, **opts):
    rejects = RejectLog()
    work = tmp_path / "work"
    work.mkdir(parents=True, exist_ok=True)
    t = get_reader("amazon2018")(Path(folder), ReadOptions(**opts), rejects, work)
    items = conform(t.items.lazy(), "items").collect()
    return t.interactions.lazy().collect(), items, t.stats, rejects


def test_gift_cards_counts_match_the_data_readme(tmp_path):
    inter, items, stats, rejects = read(shared_path("amazon2018_gift_cards"), tmp_path)
    assert inter.height == 2972
    assert inter["user"].n_unique() == 458 and inter["item"].n_unique() == 148
    assert inter.select(pl.struct("user", "item").n_unique()).item() == 2965
    assert inter["ts"].min() == 1327968000 and inter["ts"].max() == 1534896000
    assert inter["rating"].value_counts().sort("rating")["count"].to_list() == [22, 11, 33, 154, 2752]
    assert set(inter["domain"]) == {"Gift_Cards"}
    assert items.height == 148 and items["title"].null_count() == 0
    assert stats["items_without_meta"] == 0 and stats["meta_items_without_reviews"] == 1547 - 148
    assert rejects.summary()["lines/meta_Gift_Cards.json.gz"] == 1547
    assert not rejects.rejects
    # the 2021 meta release names images imageURL/imageURLHighRes: exposed as image_urls
    assert items["extra"].str.contains('"image_urls"').any()


def test_review_only_categories_become_domains(tmp_path):
    inter, items, stats, _ = read(shared_path("amazon2018_reviews_only"), tmp_path)
    assert inter.group_by("domain").len().sort("domain").rows() == [
        ("AMAZON_FASHION", 3176), ("Appliances", 2277)
    ]
    assert stats["items_without_meta"] == 31 + 48 and items["title"].null_count() == 79
    only, *_ = read(shared_path("amazon2018_reviews_only"), tmp_path, categories=["Appliances"])
    assert only.height == 2277


def write_gz(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    return path


GOOD = {"reviewerID": "U1", "asin": "I1", "overall": 4.0, "unixReviewTime": 1500000000,
        "reviewText": "nice", "summary": "ok", "vote": "1,234", "style": {"Format:": " Kindle"}}


@pytest.fixture
def messy(tmp_path):
    d = tmp_path / "raw"
    d.mkdir()
    lines = [json.dumps(GOOD)] * 1  # line 1
    lines.append("{not json")  # line 2: malformed
    lines.append(json.dumps({**GOOD, "asin": None}))  # line 3: missing required asin
    lines.append(json.dumps({**GOOD, "overall": "five"}))  # line 4: unparsable rating
    lines.append("")  # line 5: blank, ignored
    no_ts = {k: v for k, v in GOOD.items() if k != "unixReviewTime"}
    lines.append(json.dumps({**no_ts, "asin": "I2", "reviewTime": "06 2, 2018"}))  # line 6
    lines += [json.dumps({**GOOD, "reviewerID": f"U{k}"}) for k in range(2, 96)]
    write_gz(d / "Books_5.json.gz", lines)
    meta = [
        json.dumps({"asin": "I1", "title": "T1", "price": "$1,299.00", "image": ["a.jpg"], "zz": 1}),
        json.dumps({"asin": "I1", "title": "dup"}),
        "{broken",
        json.dumps({"asin": "I2", "title": "T2", "description": ["a", "b"], "category": ["Books", "SF"]}),
    ]
    write_gz(d / "meta_Books.json.gz", meta)
    return d


def test_bad_lines_go_to_rejects_with_file_line_field(messy, tmp_path):
    inter, items, stats, rejects = read(messy, tmp_path, chunk_lines=1000)
    got = {(r.file, r.line, r.field) for r in rejects.rejects}
    assert ("Books_5.json.gz", 2, None) in got
    assert ("Books_5.json.gz", 3, "asin") in got
    assert ("Books_5.json.gz", 4, "overall") in got
    assert ("meta_Books.json.gz", 3, None) in got
    assert len(rejects.rejects) == 4
    assert inter.height == 96  # 100 lines - 1 blank - 3 rejected
    row = inter.filter(pl.col("item") == "I2").row(0, named=True)
    assert row["ts"] == 1527897600  # "06 2, 2018" UTC midnight
    extra = json.loads(inter["extra"][0])
    assert extra["vote"] == 1234 and json.loads(extra["style"]) == {"Format:": " Kindle"}
    i1 = items.filter(pl.col("item") == "I1").row(0, named=True)
    assert i1["title"] == "T1" and i1["price"] == 1299.0  # duplicate asin: first line kept
    assert json.loads(i1["extra"]) == {"image": ["a.jpg"], "zz": 1, "image_urls": ["a.jpg"]}
    assert stats["meta_duplicate_asins/Books"] == 1
    i2 = items.filter(pl.col("item") == "I2").row(0, named=True)
    assert i2["description"] == "a b" and i2["categories"] == ["Books", "SF"]


def test_small_chunks_give_identical_tables(tmp_path):
    folder = shared_path("amazon2018_gift_cards")
    big, *_ = read(folder, tmp_path / "a", chunk_lines=1_000_000)
    small, *_ = read(folder, tmp_path / "b", chunk_mb=0.05)
    assert big.equals(small)


def test_too_many_rejects_fail_naming_file_and_first_lines(messy, tmp_path):
    out = tmp_path / "interim"
    with pytest.raises(IngestError) as e:
        ingest(DatasetParams(path=str(messy)), IngestParams(max_reject_fraction=0.01), out)
    msg = str(e.value)
    assert "Books_5.json.gz: 3 of 100 lines rejected" in msg and "Books_5.json.gz:2:" in msg
    assert len((out / "rejects.jsonl").read_text().splitlines()) == 4
    report = ingest(DatasetParams(path=str(messy)), IngestParams(max_reject_fraction=0.5), out)
    assert report["interactions"] == 96 and report["rejects"] == 4


def test_failed_run_keeps_earlier_outputs(messy, tmp_path):
    out = tmp_path / "interim"
    ingest(DatasetParams(path=str(messy)), IngestParams(max_reject_fraction=0.5), out)
    before = pl.read_parquet(out / "interactions.parquet")
    with pytest.raises(IngestError):
        ingest(DatasetParams(path=str(messy)), IngestParams(max_reject_fraction=0.0), out)
    assert pl.read_parquet(out / "interactions.parquet").equals(before)


def test_missing_folder_and_files_say_what_was_expected(tmp_path):
    with pytest.raises(IngestError, match="does not exist"):
        ingest(DatasetParams(path=str(tmp_path / "nope")), IngestParams(), tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match=r"expected a file named like \*\.json\.gz"):
        ingest(DatasetParams(path=str(tmp_path / "empty")), IngestParams(), tmp_path / "o")
    with pytest.raises(IngestError, match="dataset.format='csv' is not available; choose one of amazon2018"):
        get_reader("csv")


def test_names_and_prices():
    assert category_of(Path("Gift_Cards_5.json.gz")) == "Gift_Cards"
    assert category_of(Path("meta_Gift_Cards.json.gz")) == "Gift_Cards"
    assert category_of(Path("Books.json.gz")) == "Books"
    assert parse_price("$12.99") == 12.99 and parse_price("$5.00 - $10.00") == 5.0
    assert parse_price(".a-section{display:none}") is None and parse_price(3) == 3.0


def test_multi_member_gzip_reads_as_one_stream(tmp_path):
    """Concatenated gzip archives (as `cat a.gz b.gz` makes) are one file to the reader."""
    d = tmp_path / "raw"
    d.mkdir()
    first = "\n".join(json.dumps({**GOOD, "reviewerID": f"U{k}"}) for k in range(3)) + "\n"
    second = json.dumps({**GOOD, "reviewerID": "U9"}) + "\n"
    (d / "Books_5.json.gz").write_bytes(gzip.compress(first.encode()) + gzip.compress(second.encode()))
    inter, _, _, rejects = read(d, tmp_path, chunk_mb=0.0001)
    assert inter["user"].to_list() == ["U0", "U1", "U2", "U9"] and not rejects.rejects
    assert rejects.summary()["lines/Books_5.json.gz"] == 4
