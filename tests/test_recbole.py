"""The `recbole` reader (atomic files) and `export_recbole`, with an export/import round trip."""

from __future__ import annotations

import json

import polars as pl
import pytest
from conftest import FIXTURES

from recpipe.data.readers import ReadOptions
from recpipe.data.readers.recbole import read
from recpipe.data.recbole_export import export_recbole
from recpipe.data.rejects import IngestError, RejectLog
from recpipe.data.schema import conform

PLAIN = FIXTURES / "recbole" / "plain"
SPLIT = FIXTURES / "recbole" / "split"


def _read(folder, tmp_path, **opts):
    rejects = RejectLog()
    t = read(folder, ReadOptions(**opts), rejects, tmp_path / "work")
    users = None if t.users is None else conform(t.users, "users").collect()
    return (
        conform(t.interactions, "interactions").collect(),
        conform(t.items, "items").collect(),
        users,
        t.stats,
        rejects,
    )


@pytest.mark.parametrize("chunk_lines", [200_000, 2])
def test_plain_fixture(tmp_path, chunk_lines):
    inter, items, users, stats, rejects = _read(PLAIN, tmp_path, chunk_lines=chunk_lines)

    got = {(r.file, r.line, r.field) for r in rejects.rejects}
    assert got == {
        ("tiny.inter", 5, "rating"),  # "five"
        ("tiny.inter", 6, None),  # 5 fields, header has 7
        ("tiny.inter", 7, "weights"),  # "1 z" in a float_seq
        ("tiny.inter", 8, "user_id"),  # empty user id
        ("tiny.item", 4, "price"),  # "nine"
        ("tiny.user", 3, "age"),  # "x"
    }
    reasons = {(r.file, r.line): r.reason for r in rejects.rejects}
    assert reasons[("tiny.inter", 6)] == "wrong number of fields (header has 7), got 5"
    assert rejects.lines["tiny.inter"] == 7  # data lines, header excluded

    tiny = inter.filter(pl.col("domain") == "tiny").sort("ts")
    assert tiny.select("user", "item", "rating", "ts", "review").rows() == [
        ("u1", "i1", 5.0, 978300760, "great movie"),
        ("u2", "i1", 4.0, 978301968, None),
        ("u1", "i2", 3.5, 978302109, "meh"),  # 978302109.7 floored to int seconds
    ]
    assert json.loads(tiny["extra"][0]) == {"device": "web", "weights": [0.5, 1.0]}
    assert tiny["split"].null_count() == 3

    # second.inter: RecBole-Yelp field names, and a domain column (empty cell -> <name>)
    second = inter.filter(pl.col("item").str.starts_with("b")).sort("item")
    assert second.select("user", "item", "rating", "ts", "domain").rows() == [
        ("u1", "b1", 4.0, 1500000000, "Restaurants"),
        ("u9", "b2", 2.0, 1500000001, "second"),
    ]

    items = items.sort("item")
    assert items["item"].to_list() == ["b1", "b2", "i1", "i2"]  # i3 rejected, i1 dup dropped
    i1 = items.filter(pl.col("item") == "i1").row(0, named=True)
    assert i1["title"] == "Toy Story" and i1["categories"] == ["Animation", "Comedy"]
    assert i1["price"] == 9.99 and i1["brand"] == "Pixar" and i1["domain"] == "tiny"
    assert json.loads(i1["extra"]) == {"release_year": "1995"}
    b1 = items.filter(pl.col("item") == "b1").row(0, named=True)
    assert b1["title"] is None and b1["extra"] == "{}" and b1["domain"] == "Restaurants"
    assert stats["items_without_meta"] == 2
    assert stats["duplicate_item_rows"] == 1

    users = users.sort("user")
    assert users["user"].to_list() == ["u1", "u2", "u9"]
    assert json.loads(users["extra"][0]) == {"age": 24.0, "gender": "F"}
    assert users["extra"][1] == "{}"  # u2's user line was rejected
    assert stats["users_without_meta"] == 2


def test_categories_filter(tmp_path):
    inter, items, _, _, _ = _read(PLAIN, tmp_path, categories=["second"])
    assert sorted(inter["item"]) == ["b1", "b2"]
    assert sorted(items["item"]) == ["b1", "b2"]
    with pytest.raises(IngestError, match="nope"):
        _read(PLAIN, tmp_path / "x", categories=["nope"])


def test_benchmark_split_files(tmp_path):
    inter, items, users, stats, rejects = _read(SPLIT, tmp_path)
    counts = dict(inter.group_by("split").len().rows())
    assert counts == {"train": 3, "valid": 1, "test": 2}
    assert "99" not in inter["item"].to_list()  # ml.inter is ignored when split files exist
    assert stats["ml/inter_ignored_for_split_files"] == 1
    assert users is None
    assert sorted(items["item"]) == ["10", "11", "12", "13"]
    assert items["title"].null_count() == 4


def test_split_files_need_train(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "ml.test.inter").write_text("user_id:token\titem_id:token\n1\t2\n")
    with pytest.raises(IngestError, match="ml.train.inter"):
        _read(folder, tmp_path)


@pytest.mark.parametrize(
    "header, message",
    [
        ("user_id:token\titem_id:tokn\n", "item_id:tokn"),
        ("user_id:token\titem\n", "'item'"),
        ("user_id:token\tmovie:token\n", "item_id:token"),
    ],
)
def test_bad_header(tmp_path, header, message):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "x.inter").write_text(header + "1\t2\n")
    with pytest.raises(IngestError, match=message) as err:
        _read(folder, tmp_path)
    assert "x.inter:1" in str(err.value)


def test_missing_inter_file(tmp_path):
    with pytest.raises(IngestError, match=r"<name>\.inter"):
        _read(tmp_path, tmp_path)


# --- export -> import round trip -------------------------------------------------------------


def _processed(folder, domains=("beauty", "beauty", "beauty")):
    """A tiny split-stage output written by hand (the layout export_recbole reads)."""
    folder.mkdir(parents=True)
    pl.DataFrame(
        {"uid": [0, 1, 2], "user": ["A1", "B 2", "C\t3"]},
        schema={"uid": pl.Int32, "user": pl.String},
    ).write_parquet(folder / "user_map.parquet")
    pl.DataFrame(
        {"iid": [0, 1, 2, 3], "item": ["x0", "x1", "x2", "x3"]},
        schema={"iid": pl.Int32, "item": pl.String},
    ).write_parquet(folder / "item_map.parquet")
    rows = {
        "train": [(0, 0, 10), (0, 1, 11), (1, 1, 12), (1, 2, 13), (2, 3, None)],
        "valid": [(0, 2, 14), (1, 3, 15)],
        "test": [(0, 3, 16), (1, 0, 17), (2, 0, 18)],
    }
    for (split, triples), dom in zip(rows.items(), domains):
        pl.DataFrame(
            [(u, i, t, dom) for u, i, t in triples],
            schema={"uid": pl.Int32, "iid": pl.Int32, "ts": pl.Int64, "domain": pl.String},
            orient="row",
        ).write_parquet(folder / f"{split}.parquet")
    pl.DataFrame(
        {
            "item": ["x0", "x1", "x2", "x9"],
            "title": ["Lip\tBalm\nSPF 15", "Soap", None, "not in the map"],
            "categories": [["Beauty", "Skin Care"], [], None, ["Other"]],
            "iid": [0, 1, 2, None],
        },
        schema_overrides={"iid": pl.Int32},
    ).write_parquet(folder / "items.parquet")
    return rows


def test_round_trip(tmp_path):
    rows = _processed(tmp_path / "processed")
    out = tmp_path / "recbole" / "beauty"
    written = export_recbole(tmp_path / "processed", out, "beauty")
    assert [p.name for p in written] == [
        "beauty.train.inter", "beauty.valid.inter", "beauty.test.inter", "beauty.item"
    ]
    train_text = (out / "beauty.train.inter").read_text().splitlines()
    assert train_text[0] == "user_id:token\titem_id:token\ttimestamp:float"
    assert train_text[1] == "A1\tx0\t10"
    assert train_text[-1] == "C 3\tx3\t"  # tab in an id -> space; null ts -> empty field
    assert all(line.count("\t") == 2 for line in train_text)

    inter, items, _, _, rejects = _read(out, tmp_path)
    assert rejects.rejects == []
    counts = dict(inter.group_by("split").len().rows())
    assert counts == {s: len(v) for s, v in rows.items()}
    assert set(inter["domain"]) == {"beauty"}
    users = ["A1", "B 2", "C 3"]
    items_ids = ["x0", "x1", "x2", "x3"]
    for split, triples in rows.items():
        got = inter.filter(pl.col("split") == split).select("user", "item", "ts").rows()
        assert got == [(users[u], items_ids[i], t) for u, i, t in triples]

    items = items.sort("item")
    assert items["item"].to_list() == ["x0", "x1", "x2", "x3"]  # x3: stub, x9 not exported
    x0, x1, x2, x3 = items.iter_rows(named=True)
    assert x0["title"] == "Lip Balm SPF 15"
    assert x0["categories"] == ["Beauty", "Skin_Care"]  # one token per category
    assert x1["title"] == "Soap" and x1["categories"] == []
    assert x2["title"] is None
    assert x3["title"] is None and x3["extra"] == "{}"


def test_round_trip_multi_domain(tmp_path):
    _processed(tmp_path / "processed", domains=("beauty", "toys", "toys"))
    out = tmp_path / "out"
    export_recbole(tmp_path / "processed", out, "mix")
    header = (out / "mix.valid.inter").read_text().splitlines()[0]
    assert header == "user_id:token\titem_id:token\ttimestamp:float\tdomain:token"
    inter, _, _, _, _ = _read(out, tmp_path)
    assert dict(inter.group_by("split").agg(pl.col("domain").first()).rows()) == {
        "train": "beauty", "valid": "toys", "test": "toys"
    }


def test_export_without_items_and_unmapped_ids(tmp_path):
    _processed(tmp_path / "processed")
    (tmp_path / "processed" / "items.parquet").unlink()
    written = export_recbole(tmp_path / "processed", tmp_path / "out", "b")
    assert [p.name for p in written] == ["b.train.inter", "b.valid.inter", "b.test.inter"]

    pl.DataFrame({"uid": [0, 1], "user": ["A1", "B 2"]},
                 schema={"uid": pl.Int32, "user": pl.String}).write_parquet(
        tmp_path / "processed" / "user_map.parquet"
    )
    with pytest.raises(ValueError, match="uid=2"):
        export_recbole(tmp_path / "processed", tmp_path / "out2", "b")
