"""The `seqtxt` reader (S3Rec sequences): real counts, order preserved, attributes, bad lines."""

from __future__ import annotations

import json

import polars as pl
import pytest
from conftest import FIXTURES, shared_path

from recpipe.data.readers import ReadOptions
from recpipe.data.readers.seqtxt import read
from recpipe.data.rejects import IngestError, RejectLog
from recpipe.data.schema import conform

REAL = {  # name: (users, items, interactions, items in the attribute file)
    "Beauty": (22_363, 12_101, 198_502, 12_101),
    "Toys_and_Games": (19_412, 11_924, 167_597, 11_924),
    "Yelp": (30_431, 20_033, 316_354, 20_033),
}


def _read(folder, tmp_path, categories=()):
    rejects = RejectLog()
    tables = read(folder, ReadOptions(categories=list(categories)), rejects, tmp_path)
    return (
        conform(tables.interactions, "interactions"),
        conform(tables.items, "items"),
        conform(tables.users, "users"),
        tables.stats,
        rejects,
    )


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_counts_and_order(name, tmp_path):
    folder = shared_path("s3rec_seq")
    inter, items, users, stats, rejects = _read(folder, tmp_path, [name])
    n_users, n_items, n_inter, n_attr = REAL[name]
    assert inter.height == n_inter
    assert users.height == inter["user"].n_unique() == n_users
    assert items.height == inter["item"].n_unique() == n_items
    assert stats[f"{name}/interactions"] == n_inter
    assert rejects.rejects == []
    assert inter["domain"].unique().to_list() == [name]
    assert inter["rating"].null_count() == n_inter

    # 1-based release ids -> 0-based orig_id, dense here
    assert sorted(users["orig_id"]) == list(range(n_users))
    assert sorted(items["orig_id"]) == list(range(n_items))
    assert (users["orig_id"] == users["user"].cast(pl.Int64) - 1).all()

    # ts is the position in the sequence: sorting by it gives back the file's line exactly
    got = (
        inter.sort("ts")
        .group_by("user", maintain_order=False)
        .agg(pl.col("item"), pl.col("ts"))
    )
    lines = (folder / f"{name}.txt").read_text().split("\n")
    expected = {l.split()[0]: l.split()[1:] for l in lines if l.strip()}
    assert len(expected) == n_users
    for user, seq, ts in got.iter_rows():
        assert seq == expected[user]
        assert ts == list(range(len(seq)))

    # every item has its attribute list in extra, exactly as in the JSON file
    attrs = json.loads((folder / f"{name}_item2attributes.json").read_text())
    assert len(attrs) == n_attr
    assert stats[f"{name}/items_without_attributes"] == 0
    decoded = dict(zip(items["item"], items["extra"].str.json_decode().struct.field("attributes")))
    assert all(decoded[k].to_list() == v for k, v in attrs.items())
    assert items["categories"].list.len().sum() == 0 and items["title"].null_count() == n_items


def test_real_all_domains_prefixed(tmp_path):
    folder = shared_path("s3rec_seq")
    inter, items, users, stats, _ = _read(folder, tmp_path)
    assert inter.height == sum(v[2] for v in REAL.values())
    assert users.height == sum(v[0] for v in REAL.values())
    assert items.height == items["item"].n_unique() == sum(v[1] for v in REAL.values())
    assert inter.filter(pl.col("domain") == "Toys_and_Games")["item"].str.starts_with(
        "Toys_and_Games:"
    ).all()
    # orig_id stays unique across domains, in name order, each domain in release order
    assert sorted(items["orig_id"]) == list(range(items.height))
    first_toys = items.filter(pl.col("item") == "Toys_and_Games:1")["orig_id"].item()
    assert first_toys == REAL["Beauty"][1]


def test_fixture_rejects(tmp_path):
    inter, items, users, stats, rejects = _read(FIXTURES / "seqtxt", tmp_path, ["Tiny"])
    got = {(r.file, r.line, r.field) for r in rejects.rejects}
    assert got == {
        ("Tiny.txt", 2, "item"),  # "x" is not an integer
        ("Tiny.txt", 3, "item"),  # a user with no items
        ("Tiny.txt", 6, "user"),  # "5a"
        ("Tiny.txt", 7, "user"),  # user 1 again
        ("Tiny_item2attributes.json", 0, "item_id"),  # "abc"
        ("Tiny_item2attributes.json", 0, "attributes"),  # "x"
    }
    assert rejects.lines["Tiny.txt"] == 7
    assert inter.select("user", "item", "ts").rows() == [
        ("1", "1", 0), ("1", "2", 1), ("1", "3", 2), ("4", "2", 0), ("4", "1", 1)
    ]
    # items: those in sequences plus the attribute-only item 7
    assert items.sort("orig_id").select("item", "orig_id", "extra").rows() == [
        ("1", 0, '{"attributes":[1,2]}'),
        ("2", 1, '{"attributes":[3]}'),
        ("3", 2, '{"attributes":[]}'),
        ("7", 6, '{"attributes":[9]}'),
    ]
    assert users.sort("orig_id").select("user", "orig_id").rows() == [("1", 0), ("4", 3)]


def test_fixture_two_domains(tmp_path):
    inter, items, users, stats, _ = _read(FIXTURES / "seqtxt", tmp_path)
    assert set(inter["domain"]) == {"Other", "Tiny"}
    other = inter.filter(pl.col("domain") == "Other").select("user", "item", "ts").rows()
    assert other == [
        ("Other:1", "Other:1", 0), ("Other:3", "Other:1", 0), ("Other:3", "Other:2", 1)
    ]
    # Other (first by name) takes orig_ids 0.., Tiny continues after Other's id range
    assert dict(users.select("user", "orig_id").rows()) == {
        "Other:1": 0, "Other:3": 2, "Tiny:1": 3, "Tiny:4": 6
    }
    assert items.filter(pl.col("item") == "Other:2")["extra"].item() == "{}"  # no attribute file
    assert "Other/items_without_attributes" not in stats


def test_unknown_category(tmp_path):
    with pytest.raises(IngestError, match="Nope.txt|Nope"):
        _read(FIXTURES / "seqtxt", tmp_path, ["Nope"])


def test_no_sequence_file(tmp_path):
    with pytest.raises(IngestError, match=r"<Name>\.txt"):
        _read(tmp_path, tmp_path)
