"""The `cdsr` reader (C2DSR/URLLM mixed sequences): real counts, the per-user union, bad lines."""

from __future__ import annotations

import json

import polars as pl
import pytest
from conftest import shared_path, stage

from recpipe.data.readers import ReadOptions
from recpipe.data.readers.cdsr import read
from recpipe.data.rejects import IngestError, RejectLog
from recpipe.data.schema import conform

ITEMS_A = "idBefore,item_title,idAfter,item_attribute\n" + "".join(
    f"{10 + i},art thing {i},{i},arts crafts brand{i}\n" for i in range(5)
)
ITEMS_O = "idBefore,item_title,idAfter,item_attribute\n" + "".join(
    f"{i},office thing {i},{5 + i},office products\n" for i in range(4)
)


def _read(folder, tmp_path, categories=()):
    rejects = RejectLog()
    t = read(folder, ReadOptions(categories=list(categories)), rejects, tmp_path)
    return (conform(t.interactions, "interactions"), conform(t.items, "items"),
            conform(t.users, "users"), t.stats, rejects)


def _folder(tmp_path, train: str, *, valid=None, test=None, items_a=ITEMS_A, items_o=ITEMS_O,
            userlist=None, dual=None):
    d = tmp_path / "raw"
    d.mkdir()
    (d / "train_F2.txt").write_text(train)
    for name, text in (("valid_F2.txt", valid), ("test_F2.txt", test),
                       ("item_listA_F.csv", items_a), ("item_listO_AA_F.csv", items_o),
                       ("userlist.txt", userlist)):
        if text is not None:
            (d / name).write_text(text)
    if dual is not None:
        (d / "Dualuser_dict.json").write_text(json.dumps(dual))
    return d


def _line(uid, items, n=None, trail="\t"):
    n = len(items) - 1 if n is None else n
    return f"{uid}\t{n}\t" + "\t".join(f"{i}|{p}|{p}" for p, i in enumerate(items)) + trail + "\n"


# --------------------------------------------------------------------------- the real release


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    folder = shared_path("cdsr_arts_office")
    return folder, *_read(folder, tmp_path_factory.mktemp("cdsr"))


def test_real_counts_match_the_data_readme(real):
    _, inter, _, users, stats, rejects = real
    assert rejects.rejects == []
    # the data README's 198,964 (A 110,462, O 88,502) count one item per position (the later
    # line's); each user's two final items (one per domain) make 9,577 more rows
    assert inter.height == 198_964 + 9_577
    assert users.height == inter["user"].n_unique() == 9_577
    assert dict(inter.group_by("domain").len().iter_rows()) == {"A": 110_877, "O": 97_664}
    assert inter.unique(["user", "item"]).height == 206_661  # repeated pairs: the split dedupes
    # every user in both domains
    per_user = inter.group_by("user").agg(pl.col("domain").n_unique())
    assert (per_user["domain"] == 2).all() and stats["cdsr/users_in_every_domain"] == 9_577
    # the two lines per user differ only in the last item: both kept, no conflict earlier
    assert stats["cdsr/final_positions_with_several_items"] == 9_577
    assert stats["cdsr/position_conflicts_mid"] == 0
    assert stats["ts_kind"] == "position" and inter["rating"].null_count() == inter.height


def test_real_positions_are_contiguous_from_zero(real):
    _, inter, *_ = real
    got = inter.group_by("user").agg(pl.col("ts").unique().sort(), n=pl.col("ts").n_unique())
    assert all(ts == list(range(n)) for _, ts, n in got.iter_rows())
    assert inter.select(pl.struct("user", "ts").n_unique()).item() == inter.height - 9_577
    lengths = got["n"]
    assert (lengths.min(), lengths.max()) == (9, 101)  # the data README: length 9-101


def test_real_items_have_titles_domains_by_list_and_release_order(real):
    _, inter, items, *_ = real
    assert items.height == 18_639 + 19_757 and items["title"].null_count() == 0
    assert (items["orig_id"] == items["item"].cast(pl.Int64)).all()
    doms = items.select(pl.col("item").cast(pl.Int64), "domain")
    assert doms.filter(pl.col("domain") == "A")["item"].max() == 18_638
    assert doms.filter(pl.col("domain") == "O")["item"].min() == 18_639
    assert inter["item"].is_in(items["item"].implode()).all()
    first = items.filter(pl.col("item") == "0").row(0, named=True)
    assert first["title"] == "fletcher terry co framers stacked points 08 950 silver 5 8 in"
    assert first["categories"] == ["arts crafts sewing crafting picture framing fletcher terry"]
    assert json.loads(first["extra"]) == {"id_before": 0} and first["brand"] is None


def test_real_users_are_reviewer_ids_and_end_with_one_target_per_domain(real):
    folder, inter, _, users, *_ = real
    names = json.loads((folder / "Dualuser_dict.json").read_text())
    assert users.sort("orig_id")["user"].to_list() == names
    # user 0: two train lines that end in 22212 (Office) and 9 (Arts) at position 14
    lines = (folder / "train_F2.txt").read_text().split("\n")[:2]
    seqs = [[int(f.split("|")[0]) for f in line.rstrip("\t").split("\t")[2:]] for line in lines]
    assert seqs[0][:-1] == seqs[1][:-1] and seqs[0][-1] != seqs[1][-1]
    got = inter.filter(pl.col("user") == names[0]).sort("ts", "item")
    assert got["item"].cast(pl.Int64).to_list()[:-2] == seqs[1][:-1]
    last = got.filter(pl.col("ts") == 14)
    assert sorted(last["item"].cast(pl.Int64)) == sorted([seqs[0][-1], seqs[1][-1]])
    assert sorted(last["domain"]) == ["A", "O"]


# --------------------------------------------------------------------------- handmade files


def test_union_of_lines_and_conflicts(tmp_path, capsys):
    train = (_line(0, [0, 5, 1]) + _line(0, [0, 5, 6])  # same history, other last item
             + _line(1, [2, 7, 3, 8]) + _line(1, [2, 6]))  # shorter later line, conflict at 1
    test = _line(1, [2, 6, 3, 8, 4])  # a third line, in a later file: extends the sequence
    folder = _folder(tmp_path, train, test=test, userlist="alice\t0\nbob\t1\n")
    inter, _, users, stats, rejects = _read(folder, tmp_path)
    assert rejects.rejects == []
    seq = {u: g.sort("ts").select("item", "ts").rows()
           for (u,), g in inter.group_by("user")}
    assert seq["alice"] == [("0", 0), ("5", 1), ("1", 2), ("6", 2)]  # both lines' last items
    assert seq["bob"] == [("2", 0), ("6", 1), ("3", 2), ("8", 3), ("4", 4)]
    assert stats["cdsr/final_positions_with_several_items"] == 1
    assert stats["cdsr/position_conflicts_mid"] == 1  # bob's 7 was not a line's last item
    assert "position_conflicts_mid" in capsys.readouterr().err
    assert dict(users.select("user", "orig_id").rows()) == {"alice": 0, "bob": 1}
    assert dict(inter.select("item", "domain").unique().rows())["6"] == "O"


def test_malformed_lines_are_rejected_with_file_line_and_field(tmp_path):
    train = "".join([
        _line(0, [0, 5, 1]),                 # 1 good
        "x\t1\t0|0|0\t5|1|1\t\n",            # 2 uid
        "2\ty\t0|0|0\t\n",                   # 3 n
        "3\t1\t0|0|0\t5|1\t\n",              # 4 item field
        _line(4, [0, 5], n=5),               # 5 n does not match
        _line(5, [0, 99]),                   # 6 unknown item id
        "6\t1\t0|1|1\t5|1|1\t\n",            # 7 positions not increasing
        "7\t\n",                             # 8 too few fields
        "\n",                                # 9 blank: not a record
        "8 1 0|0|0 5|1|1\n",                 # 10 spaces, not tabs
        _line(9, [1, 6], trail=""),          # 11 good without the trailing tab
        "99999999999999999999\t0\t0|0|0\t\n",  # 12 uid too large for an integer id
    ])
    inter, _, _, _, rejects = _read(_folder(tmp_path, train), tmp_path)
    got = {(r.file, r.line, r.field) for r in rejects.rejects}
    assert got == {("train_F2.txt", n, f) for n, f in [
        (2, "uid"), (3, "n"), (4, "item"), (5, "n"), (6, "item"), (7, "item"), (8, "line"),
        (10, "line"), (12, "uid")]}
    reasons = {r.line: r.reason for r in rejects.rejects}
    assert "item id 99 is in no item list (A: 0-4, O: 5-8)" in reasons[6]
    assert "n=5 but the line has 2 items" in reasons[5] and "'5|1'" in reasons[4]
    assert rejects.lines["train_F2.txt"] == 12
    assert sorted(inter["user"].unique()) == ["0", "9"]  # no user list: the integer uid


def test_item_list_rows_and_user_list_lines_are_checked(tmp_path):
    items_o = ITEMS_O + "9,dup,5,office\nx,bad before,9,office\n1,too,many,10,fields\n"
    userlist = "alice\t0\nbob\tone\ncarol\t0\nalice\t2\n"
    train = _line(0, [0, 5]) + _line(2, [1, 6])
    _, items, users, _, rejects = _read(
        _folder(tmp_path, train, items_o=items_o, userlist=userlist), tmp_path)
    got = {(r.file, r.line, r.field) for r in rejects.rejects}
    assert got == {
        ("item_listO_AA_F.csv", 6, "idAfter"),  # 5 listed twice
        ("item_listO_AA_F.csv", 7, "idBefore"),
        ("item_listO_AA_F.csv", 8, "row"),
        ("userlist.txt", 2, "index"),  # not an integer
        ("userlist.txt", 3, "index"),  # index 0 again
        ("userlist.txt", 4, "reviewerID"),  # alice again
        ("train_F2.txt", 2, "uid"),  # uid 2 lost its name above
    }
    assert items.height == 9 and users["user"].to_list() == ["alice"]


def test_user_files_must_agree(tmp_path):
    train = _line(0, [0, 5])
    ok = _folder(tmp_path, train, userlist="u0\t0\n", dual=["u0"])
    assert _read(ok, tmp_path)[2]["user"].to_list() == ["u0"]
    (ok / "userlist.txt").unlink()  # the JSON list alone also names users
    assert _read(ok, tmp_path)[2]["user"].to_list() == ["u0"]
    (ok / "userlist.txt").write_text("other\t0\n")
    with pytest.raises(IngestError, match="disagree on user 0: 'other' vs 'u0'"):
        _read(ok, tmp_path)


def test_missing_files_name_what_is_expected(tmp_path):
    with pytest.raises(IngestError, match=r"item_list\*\.csv"):
        _read(tmp_path, tmp_path)
    (tmp_path / "item_listA_F.csv").write_text(ITEMS_A)
    with pytest.raises(IngestError, match=r"train\*\.txt, valid\*\.txt, test\*\.txt"):
        _read(tmp_path, tmp_path)


def test_categories_select_domains_by_code(tmp_path):
    folder = _folder(tmp_path, _line(0, [0, 5, 1, 6]))
    inter, items, *_ = _read(folder, tmp_path, ["O"])
    assert inter.select("item", "ts").rows() == [("5", 1), ("6", 3)]  # positions kept
    assert set(items["domain"]) == {"O"} and items["orig_id"].min() == 0
    with pytest.raises(IngestError, match="Books"):
        _read(folder, tmp_path, ["Books"])


def test_ingest_reports_position_timestamps_and_temporal_splits_per_user(tmp_path, capsys):
    import yaml
    from conftest import ROOT

    # user 0 ends with one target per domain (two lines), user 1 with one
    train = _line(0, [0, 5, 1, 6, 2, 7]) + _line(0, [0, 5, 1, 6, 2, 3]) + _line(1, [3, 8, 4])
    folder = _folder(tmp_path, train)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["dataset"].update(format="cdsr", path=str(folder))
    params["split"].update(protocol="temporal", user_core=0, item_core=0)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert stage("ingest").main([
        "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "interim"),
        "--metrics", str(tmp_path / "interim" / "metrics.json")]) == 0
    report = json.loads((tmp_path / "interim" / "metrics.json").read_text())
    assert report["ts_kind"] == "position" and report["interactions"] == 10
    assert stage("split").main([
        "--params", str(tmp_path / "params.yaml"), "--interim", str(tmp_path / "interim"),
        "--ingest-report", str(tmp_path / "interim" / "metrics.json"),
        "--out", str(tmp_path / "processed"), "--metrics", str(tmp_path / "dataset.json")]) == 0
    assert "temporal_by=position" in capsys.readouterr().out
    full = json.loads((tmp_path / "processed" / "metrics.json").read_text())
    assert full["split/temporal_by"] == "position" and (full["valid"], full["test"]) == (2, 3)
    df = pl.read_parquet(tmp_path / "processed" / "interactions.parquet")
    imap = dict(pl.read_parquet(tmp_path / "processed" / "item_map.parquet").iter_rows())
    test = sorted(imap[i] for i in df.filter(pl.col("split") == "test")["iid"])
    valid = sorted(imap[i] for i in df.filter(pl.col("split") == "valid")["iid"])
    assert (test, valid) == (["3", "4", "7"], ["2", "8"])  # both of user 0's final items
