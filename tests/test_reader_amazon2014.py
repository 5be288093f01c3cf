"""Amazon 2014 reader: the real 50-line review sample and hand-written files in the 2014 format.

`fixtures/amazon2014/two_categories/` holds two categories in one folder:
- `reviews_Toy_Tools_5.json`: line 1 good, line 2 has only `reviewTime`, line 3 is cut off
  (bad JSON), line 4 lacks `asin`, line 5 reviews an item without meta, line 6 has no usable
  time, line 7 is blank, line 8 good (non-ASCII reviewer name).
- `meta_Toy_Tools.json`: Python literals as in the 2014 meta files: line 1 T1 (nested
  categories, related, salesRank), line 2 T2 (int price, `\\xe9` escape, double-quoted title),
  line 3 a duplicate T1, line 4 malformed, line 5 T4 (no reviews), line 6 no asin.
- `Baby_5.json`: two reviews, no meta file.
"""

from __future__ import annotations

import gzip
import json
import shutil

import polars as pl
import pytest
from conftest import FIXTURES, shared_path

from recpipe.data.readers import ReadOptions
from recpipe.data.readers.amazon2014 import category_of, flatten_categories, read
from recpipe.data.rejects import IngestError, RejectLog

TWO = FIXTURES / "amazon2014" / "two_categories"


def _read(folder, tmp_path, **opts):
    rejects = RejectLog()
    tables = read(folder, ReadOptions(**opts), rejects, tmp_path / "work")
    return tables, rejects


@pytest.mark.shared
def test_real_musical_instruments_sample(tmp_path):
    folder = shared_path("amazon2014_format_sample")
    tables, rejects = _read(folder, tmp_path, workers=1)
    inter = tables.interactions.collect()
    items = tables.items.collect()
    assert inter.height == 50
    assert inter["user"].n_unique() == 49
    assert inter["item"].n_unique() == 7
    assert inter["domain"].unique().to_list() == ["Musical_Instruments"]
    assert rejects.rejects == []
    assert rejects.lines == {"Musical_Instruments_5.head50.json": 50}
    # Line 1 and 2, checked by hand: unixReviewTime 1393545600 = 2014-02-28 00:00 UTC
    # ("02 28, 2014"), 1363392000 = 2013-03-16 ("03 16, 2013").
    first, second = inter.row(0, named=True), inter.row(1, named=True)
    assert (first["user"], first["item"], first["rating"], first["ts"]) == (
        "A2IBPI20UZIR0U", "1384719342", 5.0, 1393545600
    )
    assert first["review"].startswith("Not much to write about here")
    assert json.loads(first["extra"]) == {
        "summary": "good",
        "helpful": [0, 0],
        "reviewerName": 'cassandra tu "Yeah, well, that\'s just like, u...',
    }
    assert (second["user"], second["ts"]) == ("A14VAT5EAX3D9S", 1363392000)
    assert json.loads(second["extra"])["helpful"] == [13, 14]
    # No meta file: every reviewed item still gets a (title-less) items row, and it is counted.
    assert items.height == 7 and set(items["item"]) == set(inter["item"])
    assert items["title"].null_count() == 7
    assert tables.stats["items_without_meta"] == 7
    assert tables.stats["categories_without_meta"] == 1


def test_meta_python_literals(tmp_path):
    tables, rejects = _read(TWO, tmp_path, workers=1, categories=["Toy_Tools"])
    items = {r["item"]: r for r in tables.items.collect().iter_rows(named=True)}
    assert set(items) == {"T1", "T2", "T3", "T4"}
    t1 = items["T1"]
    assert t1["title"] == "Claw Hammer"  # the first line wins over the duplicate on line 3
    assert t1["categories"] == ["Toys & Games", "Tools", "Kids"]  # flattened, deduplicated
    assert (t1["brand"], t1["price"], t1["domain"]) == ("Acme", 12.99, "Toy_Tools")
    assert t1["description"] == "A hammer sized for small hands."
    extra = json.loads(t1["extra"])
    assert extra["salesRank"] == {"Toys & Games": 1234}
    assert extra["related"]["also_bought"] == ["T2", "T4"]
    assert extra["imUrl"].endswith("41abc.jpg")
    assert set(extra) == {"imUrl", "related", "salesRank"}
    assert items["T2"]["title"] == "Kid's Saw"
    assert items["T2"]["description"] == "Caf\u00e9-safe plastic saw."
    assert items["T2"]["price"] == 5.0
    assert items["T4"]["categories"] == ["Tools", "Measuring"]  # meta-only items are kept
    assert items["T3"]["title"] is None  # reviewed, no meta line
    assert tables.stats["duplicate_meta_asins"] == 1
    assert tables.stats["items_without_meta"] == 1
    meta_rejects = {(r.line, r.field) for r in rejects.rejects if r.file == "meta_Toy_Tools.json"}
    assert meta_rejects == {(4, None), (6, "asin")}
    bad = next(r for r in rejects.rejects if r.file == "meta_Toy_Tools.json" and r.line == 4)
    assert "malformed Python literal" in bad.reason and "broken line" in bad.text
    assert rejects.lines["meta_Toy_Tools.json"] == 6


def test_review_rejects_name_file_line_field(tmp_path):
    tables, rejects = _read(TWO, tmp_path, workers=1, categories=["Toy_Tools"])
    got = {(r.file, r.line, r.field) for r in rejects.rejects if r.file.startswith("reviews_")}
    assert got == {
        ("reviews_Toy_Tools_5.json", 3, None),  # cut-off JSON
        ("reviews_Toy_Tools_5.json", 4, "asin"),
        ("reviews_Toy_Tools_5.json", 6, "unixReviewTime"),  # "sometime" is no date
    }
    assert rejects.lines["reviews_Toy_Tools_5.json"] == 7  # the blank line 7 is not counted
    inter = tables.interactions.collect()
    assert inter.select("user", "item").rows() == [
        ("U1", "T1"), ("U2", "T1"), ("U1", "T3"), ("U3", "T2")
    ]
    # Line 2 has only reviewTime "03 16, 2013" -> 2013-03-16 00:00 UTC, the value the
    # published unixReviewTime has for that date.
    assert inter.filter(user="U2")["ts"].item() == 1363392000
    assert tables.stats["ts_from_reviewTime"] == 1
    assert json.loads(inter.filter(user="U3")["extra"].item())["reviewerName"] == "Caf\u00e9 Cy"


def test_categories_option_and_domains(tmp_path):
    both, _ = _read(TWO, tmp_path / "a", workers=1)
    assert sorted(both.interactions.collect()["domain"].unique()) == ["Baby", "Toy_Tools"]
    assert both.stats["categories_without_meta"] == 1  # Baby

    baby, rejects = _read(TWO, tmp_path / "b", workers=1, categories=["Baby"])
    inter = baby.interactions.collect()
    assert inter["domain"].unique().to_list() == ["Baby"] and inter.height == 2
    assert set(baby.items.collect()["item"]) == {"B1", "B2"}
    assert list(rejects.lines) == ["Baby_5.json"]  # Toy_Tools was not even opened

    with pytest.raises(IngestError, match="reviews_Nope_5.json.gz"):
        _read(TWO, tmp_path / "c", categories=["Nope"])


def test_parallel_parser_matches_serial(tmp_path):
    # chunk_lines=2 splits the 6-line meta file into 3 pool tasks, so order matters.
    one, rej1 = _read(TWO, tmp_path / "w1", workers=1, chunk_lines=2)
    two, rej2 = _read(TWO, tmp_path / "w2", workers=2, chunk_lines=2)
    assert one.items.collect().equals(two.items.collect())
    assert one.interactions.collect().equals(two.interactions.collect())
    assert [r.as_dict() for r in rej1.rejects] == [r.as_dict() for r in rej2.rejects]
    assert one.stats == two.stats


def test_file_name_variants_and_gzip(tmp_path):
    assert category_of("reviews_Musical_Instruments_5.json.gz") == "Musical_Instruments"
    assert category_of("Musical_Instruments_5.head50.json") == "Musical_Instruments"
    assert category_of("Cell_Phones_and_Accessories_5.json") == "Cell_Phones_and_Accessories"
    assert category_of("reviews_Books.json.gz") == "Books"
    assert category_of("meta_Books.json.gz") is None
    folder = tmp_path / "gz"
    folder.mkdir()
    with gzip.open(folder / "reviews_Baby_5.json.gz", "wb") as dst:
        dst.write((TWO / "Baby_5.json").read_bytes())
    gz, _ = _read(folder, tmp_path / "w", workers=1)
    plain, _ = _read(TWO, tmp_path / "w2", workers=1, categories=["Baby"])
    assert gz.interactions.collect().equals(plain.interactions.collect())


def test_missing_or_ambiguous_review_files(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "meta_Baby.json").write_text("{'asin': 'B1'}\n")
    with pytest.raises(IngestError, match="reviews_"):
        _read(empty, tmp_path / "w")
    twice = tmp_path / "twice"
    twice.mkdir()
    shutil.copy(TWO / "Baby_5.json", twice / "Baby_5.json")
    shutil.copy(TWO / "Baby_5.json", twice / "reviews_Baby_5.json")
    with pytest.raises(IngestError, match="two review files"):
        _read(twice, tmp_path / "w")


def test_flatten_categories():
    assert flatten_categories([["A", "B"], ["A", "C"], ["D"]]) == ["A", "B", "C", "D"]
    assert flatten_categories(["A", "B", "A"]) == ["A", "B"]
    assert flatten_categories(None) is None
    assert pl.Series([flatten_categories([[]])]).to_list() == [[]]
