"""Amazon Reviews 2023 reader on the real shared files and on hand-written bad-line fixtures."""

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import shared_path, stage

from recpipe.data.ingest import ingest
from recpipe.data.readers import ReadOptions, get_reader
from recpipe.data.rejects import IngestError, RejectLog
from recpipe.data.schema import conform
from recpipe.params import DatasetParams, IngestParams

MULTICAT = "amazon2023_multicat_sample"
CSV = "amazon2023_benchmark_csv"


def read(folder, tmp_path, **opts):
    rejects = RejectLog()
    work = tmp_path / "work"
    work.mkdir(parents=True, exist_ok=True)
    t = get_reader("amazon2023")(Path(folder), ReadOptions(**opts), rejects, work)
    inter = conform(t.interactions.lazy(), "interactions").collect()
    items = conform(t.items.lazy(), "items").collect()
    return inter, items, t.stats, rejects


def raw_lines(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def multicat(tmp_path_factory):
    folder = shared_path(MULTICAT)
    return folder, read(folder, tmp_path_factory.mktemp("multicat"))


def test_multicat_counts_match_the_data_readme(multicat):
    folder, (inter, items, stats, rejects) = multicat
    assert inter.height == 1625 and inter["user"].n_unique() == 177
    assert inter["domain"].n_unique() == 23 == stats["categories"]
    per_user = inter.group_by("user").agg(pl.col("domain").n_unique())
    assert per_user.filter(pl.col("domain") >= 2).height == 61  # users merged across domains
    # per domain, exactly the lines of that category's file
    for f in sorted(folder.glob("[A-Z]*.jsonl")):
        assert inter.filter(pl.col("domain") == f.stem).height == len(raw_lines(f)), f.name
    assert not rejects.rejects and rejects.summary()["lines_read"] == 1625 + 1558
    # every item has its meta line; a title wherever the meta line has one
    metas = [m for f in sorted(folder.glob("meta_*.jsonl")) for m in raw_lines(f)]
    assert items.height == inter["item"].n_unique() == len(metas) == 1558
    assert stats["items_without_meta"] == 0 and stats["meta_items_without_reviews"] == 0
    untitled = sum(1 for m in metas if not m.get("title"))
    assert items["title"].null_count() == untitled  # 36 meta lines (Prime Video) carry no title
    assert items["title"].null_count() < 0.05 * items.height
    assert inter["split"].null_count() == inter.height


def test_multicat_values_come_from_the_lines(multicat):
    folder, (inter, items, _, _) = multicat
    raw = raw_lines(folder / "Video_Games.jsonl")[7]
    row = inter.filter((pl.col("user") == raw["user_id"]) & (pl.col("item") == raw["parent_asin"])
                       & (pl.col("domain") == "Video_Games")).row(0, named=True)
    assert row["ts"] == raw["timestamp"] // 1000 and row["ts"] * 1000 <= raw["timestamp"]
    assert inter["ts"].max() < 2_000_000_000  # seconds, not the published milliseconds
    assert row["rating"] == raw["rating"] and row["review"] == raw["text"]
    assert json.loads(row["extra"])["title"] == raw["title"]
    meta = next(m for m in raw_lines(folder / "meta_Video_Games.jsonl")
                if m["parent_asin"] == raw["parent_asin"])
    item = items.filter(pl.col("item") == raw["parent_asin"]).row(0, named=True)
    assert item["title"] == meta.get("title") and item["domain"] == "Video_Games"
    assert item["price"] == meta.get("price")
    assert json.loads(item["extra"]).get("main_category") == meta.get("main_category")


def test_benchmark_csv_counts(tmp_path):
    folder = shared_path(CSV)
    inter, items, stats, rejects = read(folder, tmp_path)
    assert inter.height == 2535 and inter["user"].n_unique() == 253
    assert inter["item"].n_unique() == 356 == items.height
    assert set(inter["domain"]) == {"All_Beauty"} and inter["rating"].null_count() == 0
    first = (folder / "All_Beauty.csv").read_text().splitlines()[1].split(",")
    assert inter.row(0, named=True) | {"review": None, "extra": None} == {
        "user": first[0], "item": first[1], "rating": float(first[2]), "ts": int(first[3]) // 1000,
        "review": None, "domain": "All_Beauty", "extra": None, "split": None,
    }
    assert stats["meta_missing/All_Beauty"] == 1 and stats["items_without_meta"] == 356
    assert items["title"].null_count() == 356  # no meta beside: no titles
    assert not rejects.rejects and rejects.summary()["lines/All_Beauty.csv"] == 2535


def test_categories_select_domains(tmp_path):
    folder = shared_path(MULTICAT)
    inter, items, stats, rejects = read(folder, tmp_path, categories=["Gift_Cards", "Software"])
    counts = dict(inter.group_by("domain").len().iter_rows())
    assert counts == {c: len(raw_lines(folder / f"{c}.jsonl")) for c in ("Gift_Cards", "Software")}
    assert set(items["domain"]) == {"Gift_Cards", "Software"} and stats["categories"] == 2
    assert set(rejects.lines) == {"Gift_Cards.jsonl", "meta_Gift_Cards.jsonl",
                                  "Software.jsonl", "meta_Software.jsonl"}
    with pytest.raises(IngestError, match=r"ingest.categories=\['Books'\]: no <Category>.jsonl"):
        read(folder, tmp_path / "b", categories=["Books"])


def write(path: Path, lines: list, gz: bool = False) -> Path:
    text = "".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_gz_and_plain_files_and_small_blocks_read_the_same(tmp_path):
    src = shared_path(MULTICAT)
    gz = tmp_path / "gz"
    gz.mkdir()
    for name in ("Gift_Cards", "meta_Gift_Cards", "Software", "meta_Software"):
        write(gz / f"{name}.jsonl.gz", raw_lines(src / f"{name}.jsonl"), gz=True)
    cats = ["Gift_Cards", "Software"]
    plain, plain_items, _, _ = read(src, tmp_path / "p", categories=cats)
    got, got_items, _, rejects = read(gz, tmp_path / "g")
    assert got.equals(plain) and got_items.equals(plain_items) and not rejects.rejects
    n_gift = len(raw_lines(src / "Gift_Cards.jsonl"))
    assert rejects.summary()["lines/Gift_Cards.jsonl.gz"] == n_gift
    small, small_items, _, _ = read(gz, tmp_path / "s", chunk_mb=0.002, chunk_lines=1000)
    assert small.equals(plain) and small_items.equals(plain_items)


def test_jsonl_reviews_win_over_csv_ratings_of_the_same_category(tmp_path, capsys):
    src = shared_path(MULTICAT)
    d = tmp_path / "raw"
    d.mkdir()
    for name in ("All_Beauty.jsonl", "meta_All_Beauty.jsonl"):
        (d / name).symlink_to(src / name)
    (d / "All_Beauty.csv").symlink_to(shared_path(CSV, "All_Beauty.csv"))
    write(d / "Gift_Cards.csv.gz", ["user_id,parent_asin,rating,timestamp",
                                    "AGTW6ZGPUAORQ7X6CNBP6PJW7OTA,G1,5.0,1600000000999"], gz=True)
    inter, _, stats, _ = read(d, tmp_path)
    n_beauty = len(raw_lines(src / "All_Beauty.jsonl"))
    counts = dict(inter.group_by("domain").len().iter_rows())
    assert counts == {"All_Beauty": n_beauty, "Gift_Cards": 1}
    assert inter.filter(pl.col("domain") == "All_Beauty")["review"].null_count() == 0
    assert stats["csv_ignored/All_Beauty"] == 1 and "csv_ignored/Gift_Cards" not in stats
    err = capsys.readouterr().err
    assert "All_Beauty has reviews (All_Beauty.jsonl) and ratings (All_Beauty.csv)" in err
    g = inter.filter(pl.col("domain") == "Gift_Cards").row(0, named=True)
    assert g["ts"] == 1600000000 and g["item"] == "G1"
    # the CSV user is the same person as the review user: one user across two domains
    assert inter.filter(pl.col("user") == "AGTW6ZGPUAORQ7X6CNBP6PJW7OTA")["domain"].n_unique() == 2
    assert stats["meta_missing/Gift_Cards"] == 1 and stats["items_without_meta"] == 1


GOOD = {"rating": 4.0, "title": "ok", "text": "nice", "images": [{"large": "x.jpg"}],
        "asin": "B1V", "parent_asin": "B1", "user_id": "U1", "timestamp": 1600000000123,
        "helpful_vote": 3, "verified_purchase": True}


@pytest.fixture
def messy(tmp_path):
    d = tmp_path / "raw"
    d.mkdir()
    lines = [GOOD]  # 1
    lines.append("{not json")  # 2: malformed
    lines.append({**GOOD, "user_id": None})  # 3: no user
    lines.append({k: v for k, v in GOOD.items() if k not in ("asin", "parent_asin")})  # 4: no item
    lines.append({**GOOD, "rating": "five"})  # 5: unparsable rating
    lines.append({**GOOD, "timestamp": "yesterday"})  # 6: unparsable timestamp
    lines.append({k: v for k, v in GOOD.items() if k != "timestamp"})  # 7: no timestamp
    lines.append("")  # 8: blank, ignored
    lines.append({"user_id": "U2", "parent_asin": "B2", "timestamp": 1500000000999})  # 9: sparse
    lines.append({**{k: v for k, v in GOOD.items() if k != "parent_asin"}, "asin": "B3"})  # 10
    lines.append({**GOOD, "user_id": ""})  # 11: empty user id
    lines += [{**GOOD, "user_id": f"U{k}"} for k in range(100, 190)]
    write(d / "Toys_and_Games.jsonl", lines)
    meta = [
        {"parent_asin": "B1", "title": "T1", "price": "$1,299.00", "store": "Acme",
         "details": {"Brand": "RealBrand", "Color": "red"}, "main_category": "Toys",
         "images": [{"thumb": "t.jpg", "large": "l.jpg", "hi_res": None}], "videos": [],
         "average_rating": 4.5, "rating_number": 12, "features": ["a"], "unknown_key": 1},
        {"parent_asin": "B1", "title": "duplicate"},
        "{broken",
        {"title": "no parent asin"},
        {"parent_asin": "B2", "title": "T2", "description": ["first", "second"], "store": "Shop",
         "categories": ["Toys & Games", "Puzzles"], "price": "None", "bought_together": None},
        {"parent_asin": "B3", "price": 7, "details": {}},
    ]
    write(d / "meta_Toys_and_Games.jsonl.gz", meta, gz=True)
    write(d / "Gift_Cards.csv", [
        "user_id,parent_asin,rating,timestamp,history",
        "U1,G1,5.0,1600000000500,",  # 2
        "U1,G2,five,1600000000500,",  # 3: unparsable rating
        "U1,G3,5.0,soon,",  # 4: unparsable timestamp
        ",G4,5.0,1600000000500,",  # 5: no user
        "U1,G5,5.0,1600000000500,,extra",  # 6: one field too many
        "",  # 7: blank, ignored
        'U3,"G6",3,1600000001999.0,G1 G2',  # 8: quoted id, whole float time, history ignored
        "U4,G7,,1600000002000,",  # 9: no rating: kept, unrated
        "U5,G8,4,,",  # 10: no timestamp
    ] + [f"U{k},G1,4.0,1600000003000," for k in range(11, 101)])
    (d / "README.txt").write_text("not data")
    (d / "stats.csv").write_text("a,b\n1,2\n")  # lower case: not a category
    return d


def test_bad_lines_are_rejected_with_file_line_and_field(messy, tmp_path):
    inter, _, stats, rejects = read(messy, tmp_path)
    got = {(r.file, r.line, r.field) for r in rejects.rejects}
    assert got == {
        ("Toys_and_Games.jsonl", 2, None),
        ("Toys_and_Games.jsonl", 3, "user_id"),
        ("Toys_and_Games.jsonl", 4, "parent_asin"),
        ("Toys_and_Games.jsonl", 5, "rating"),
        ("Toys_and_Games.jsonl", 6, "timestamp"),
        ("Toys_and_Games.jsonl", 7, "timestamp"),
        ("Toys_and_Games.jsonl", 11, "user_id"),
        ("meta_Toys_and_Games.jsonl.gz", 3, None),
        ("meta_Toys_and_Games.jsonl.gz", 4, "parent_asin"),
        ("Gift_Cards.csv", 3, "rating"),
        ("Gift_Cards.csv", 4, "timestamp"),
        ("Gift_Cards.csv", 5, "user_id"),
        ("Gift_Cards.csv", 6, None),
        ("Gift_Cards.csv", 10, "timestamp"),
    }
    by_line = {(r.file, r.line): r for r in rejects.rejects}
    assert by_line[("Toys_and_Games.jsonl", 2)].reason.startswith("malformed JSON")
    assert by_line[("Gift_Cards.csv", 3)].reason == "unparsable rating: 'five'"
    assert by_line[("Gift_Cards.csv", 6)].text == "U1,G5,5.0,1600000000500,,extra"
    assert "expected 5 comma-separated fields" in by_line[("Gift_Cards.csv", 6)].reason
    toys = inter.filter(pl.col("domain") == "Toys_and_Games")
    gifts = inter.filter(pl.col("domain") == "Gift_Cards")
    assert toys.height == 101 - 1 - 7 and gifts.height == 99 - 1 - 5
    # missing keys are tolerated: a line with only user, item and time
    sparse = toys.filter(pl.col("user") == "U2").row(0, named=True)
    assert sparse["item"] == "B2" and sparse["ts"] == 1500000000 and sparse["rating"] is None
    assert sparse["review"] is None
    assert json.loads(sparse["extra"]) == {"title": None, "helpful_vote": None,
                                           "verified_purchase": None, "asin": None}
    # no parent_asin: the asin is the item, and counted
    assert toys.filter(pl.col("item") == "B3").height == 1 and stats["missing_parent_asin"] == 1
    full = toys.row(0, named=True)
    assert full["ts"] == 1600000000 and json.loads(full["extra"]) == {
        "title": "ok", "helpful_vote": 3, "verified_purchase": True, "asin": "B1V"}
    g6 = gifts.filter(pl.col("item") == "G6").row(0, named=True)
    assert g6["ts"] == 1600000001 and g6["rating"] == 3.0
    assert gifts.filter(pl.col("item") == "G7")["rating"].to_list() == [None]
    assert rejects.summary()["lines/Gift_Cards.csv"] == 99
    assert rejects.summary()["lines/Toys_and_Games.jsonl"] == 101
    assert "lines/stats.csv" not in rejects.summary()


def test_meta_lines_map_to_item_columns(messy, tmp_path):
    _, items, stats, _ = read(messy, tmp_path)
    b1 = items.filter(pl.col("item") == "B1").row(0, named=True)
    assert b1["title"] == "T1" and b1["price"] == 1299.0  # duplicate parent_asin: first kept
    assert b1["brand"] == "RealBrand" and b1["domain"] == "Toys_and_Games"
    assert json.loads(b1["extra"]) == {
        "store": "Acme", "details": {"Brand": "RealBrand", "Color": "red"},
        "main_category": "Toys", "average_rating": 4.5, "rating_number": 12,
        "features": ["a"], "unknown_key": 1, "image_urls": ["l.jpg"],
    }
    assert stats["meta_duplicate_parent_asins/Toys_and_Games"] == 1
    b2 = items.filter(pl.col("item") == "B2").row(0, named=True)
    assert b2["description"] == "first second" and b2["categories"] == ["Toys & Games", "Puzzles"]
    assert b2["brand"] == "Shop" and b2["price"] is None and json.loads(b2["extra"]) == {}
    b3 = items.filter(pl.col("item") == "B3").row(0, named=True)
    assert b3["price"] == 7.0 and b3["title"] is None and b3["brand"] is None
    # the CSV category has no meta: bare rows, one per rated item
    assert items.filter(pl.col("domain") == "Gift_Cards")["item"].to_list() == ["G1", "G6", "G7"]
    assert stats["meta_missing/Gift_Cards"] == 1 and stats["items_without_meta"] == 3


def test_too_many_rejects_stop_ingest_naming_file_and_lines(messy, tmp_path):
    out = tmp_path / "interim"
    with pytest.raises(IngestError) as e:
        ingest(DatasetParams(format="amazon2023", path=str(messy)),
               IngestParams(max_reject_fraction=0.06), out)
    msg = str(e.value)
    assert "Toys_and_Games.jsonl: 7 of 101 lines rejected" in msg
    assert "Toys_and_Games.jsonl:3: missing required field (field 'user_id')" in msg
    report = ingest(DatasetParams(format="amazon2023", path=str(messy)),
                    IngestParams(max_reject_fraction=0.5), out)
    assert report["rejects"] == 14 and report["interactions"] == 93 + 93
    assert report["domain/Toys_and_Games"] == 93 and report["rejects/Gift_Cards.csv"] == 5
    lines = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    assert len(lines) == 14
    assert {"file": "Gift_Cards.csv", "line": 4, "field": "timestamp",
            "reason": "unparsable timestamp: 'soon'", "text": "U1,G3,5.0,soon,"} in lines


def test_folder_without_2023_files_says_what_was_expected(tmp_path):
    d = tmp_path / "raw"
    d.mkdir()
    (d / "notes.txt").write_text("x")
    with pytest.raises(IngestError, match=r"<Category>\.jsonl\[\.gz\] reviews"):
        read(d, tmp_path)
    write(d / "meta_Books.jsonl", [{"parent_asin": "B1"}])  # meta alone is no data
    (d / "ratings.csv").write_text("user_id,parent_asin,rating,timestamp\n")  # lower case
    with pytest.raises(IngestError) as e:
        read(d, tmp_path)
    msg = str(e.value)
    assert "expected <Category>.jsonl or <Category>.jsonl.gz" in msg
    assert "<Category>.csv[.gz]" in msg and "found: meta_Books.jsonl, notes.txt, ratings.csv" in msg


def test_ambiguous_or_unusable_files_stop_with_a_message(tmp_path):
    d = tmp_path / "raw"
    d.mkdir()
    write(d / "Books.jsonl", [GOOD])
    write(d / "Books.jsonl.gz", [GOOD], gz=True)
    with pytest.raises(IngestError, match="Books.jsonl and Books.jsonl.gz; keep one"):
        read(d, tmp_path)
    (d / "Books.jsonl.gz").unlink()
    (d / "Music.csv").write_text("user,item,rating,time\nu,i,1,2\n")
    with pytest.raises(IngestError, match=r"Music.csv: the first line .* missing \['user_id'"):
        read(d, tmp_path)


def test_official_split_files_keep_their_split(tmp_path):
    d = tmp_path / "raw"
    d.mkdir()
    head = "user_id,parent_asin,rating,timestamp,history"
    train = [head, "U1,I1,5.0,1000000000000,", "U1,I2,4.0,1000000001000,I1"]
    write(d / "Beauty.train.csv.gz", train, gz=True)
    write(d / "Beauty.valid.csv.gz", [head, "U1,I3,3.0,1000000002000,I1 I2"], gz=True)
    write(d / "Beauty.test.csv.gz", [head, "U1,I4,2.0,1000000003000,I1 I2 I3"], gz=True)
    inter, _, _, rejects = read(d, tmp_path)
    assert inter.select("item", "ts", "split").rows() == [
        ("I1", 1000000000, "train"), ("I2", 1000000001, "train"), ("I3", 1000000002, "valid"),
        ("I4", 1000000003, "test")]
    assert not rejects.rejects
    (d / "Beauty.csv").write_text(head + "\n")
    with pytest.raises(IngestError, match="keep one kind"):
        read(d, tmp_path / "b")


def test_ingest_and_temporal_split_stages_keep_every_domain(tmp_path):
    folder = shared_path(MULTICAT)
    params = {"seed": 2023, "dataset": {"format": "amazon2023", "path": str(folder)},
              "ingest": {"workers": 1},
              "split": {"protocol": "temporal", "user_core": 0, "item_core": 0}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    p = str(tmp_path / "params.yaml")
    interim, processed = tmp_path / "interim", tmp_path / "processed"
    assert stage("ingest").main(["--params", p, "--out", str(interim),
                                 "--metrics", str(tmp_path / "ingest.json")]) == 0
    report = json.loads((tmp_path / "ingest.json").read_text())
    assert report["format"] == "amazon2023" and report["interactions"] == 1625
    assert report["users"] == 177 and report["items"] == 1558 and report["rejects"] == 0
    domains = {k.split("/", 1)[1]: v for k, v in report.items() if k.startswith("domain/")}
    assert len(domains) == 23 and sum(domains.values()) == 1625
    assert stage("split").main(["--params", p, "--interim", str(interim), "--ingest-report",
                                str(tmp_path / "ingest.json"), "--out", str(processed),
                                "--metrics", str(tmp_path / "dataset.json")]) == 0
    split = json.loads((processed / "metrics.json").read_text())
    assert split["protocol"] == "temporal" and split["interactions"] == 1625
    train = pl.read_parquet(processed / "train.parquet")
    assert set(train["domain"]) == set(domains)  # every domain keeps training interactions
    whole = pl.read_parquet(processed / "interactions.parquet")
    assert dict(whole.group_by("domain").len().iter_rows()) == domains
    assert train["ts"].max() < split["split/t_valid"] <= split["split/t_test"]
    items = pl.read_parquet(processed / "items.parquet")
    assert items.height == 1558 and items["title"].null_count() < 50


def test_truncated_gz_stops_the_stage_naming_the_file(tmp_path, capsys):
    src = shared_path(MULTICAT, "Kindle_Store.jsonl")
    raw = tmp_path / "raw"
    raw.mkdir()
    data = gzip.compress(src.read_bytes())
    (raw / "Kindle_Store.jsonl.gz").write_bytes(data[: len(data) // 2])
    params = {"dataset": {"format": "amazon2023", "path": str(raw)}, "ingest": {"chunk_mb": 0.01}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "interim"
    code = stage("ingest").main(["--params", str(tmp_path / "params.yaml"), "--out", str(out),
                                 "--metrics", str(tmp_path / "ingest.json")])
    err = capsys.readouterr().err
    assert code == 2 and f"{raw / 'Kindle_Store.jsonl.gz'}: the file is truncated" in err
    assert not (out / "interactions.parquet").exists() and not (tmp_path / "ingest.json").exists()
