"""Bad input that used to slip through the readers (issue 12, section 8).

Every bad file is made here, in tmp_path: pickles with scipy, gzip streams cut short or
damaged, a sequence file cut mid-number. Each must stop ingest with a message naming the file,
what is wrong and where (entry, line, bytes), or, for a possibly cut last line, warn and count
it (and reject it under `ingest.strict_last_line`). Runs through the ingest stage check the
exit code (2, no traceback) and that no partial output is left behind.
"""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from conftest import FIXTURES, ROOT, shared_path, stage

from recpipe.config import ParamError, load_params, parse, section
from recpipe.data.ingest import ingest
from recpipe.data.readers import ReadOptions, get_reader
from recpipe.data.rejects import IngestError, RejectLog
from recpipe.params import DatasetParams, IngestParams


def _stage_main():
    return stage("ingest").main


def run_stage(tmp_path: Path, fmt: str, folder: Path, **ingest_params) -> tuple[int, Path]:
    """Run stages/ingest.py in-process; return (exit code, output folder)."""
    params = {"dataset": {"format": fmt, "path": str(folder)}, "ingest": {"workers": 1,
                                                                          **ingest_params}}
    (tmp_path / "params.yaml").write_text(json.dumps(params))  # JSON is YAML
    out = tmp_path / "interim"
    code = _stage_main()(["--params", str(tmp_path / "params.yaml"), "--out", str(out),
                          "--metrics", str(tmp_path / "metrics" / "ingest.json")])
    return code, out


def assert_nothing_written(tmp_path: Path, out: Path) -> None:
    """A failed ingest leaves no table, no temporary file and no scratch folder."""
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) if out.exists() else []
    assert left == [], left
    assert not (tmp_path / "metrics" / "ingest.json").exists()


def read(fmt: str, folder: Path, workdir: Path, **opts):
    rejects = RejectLog()
    return get_reader(fmt)(folder, ReadOptions(**opts), rejects, workdir), rejects


# --------------------------------------------------------------------------- rlmrec matrices


def rlmrec_release(folder: Path, tst=None) -> Path:
    """A 3 users x 4 items release; `tst` replaces the test matrix (any picklable object)."""
    folder.mkdir(parents=True)
    trn = sp.coo_matrix((np.ones(4), ([0, 1, 2, 2], [0, 1, 2, 3])), shape=(3, 4))
    val = sp.coo_matrix((np.ones(1), ([0], [3])), shape=(3, 4))
    if tst is None:
        tst = sp.coo_matrix((np.ones(2), ([1, 2], [0, 1])), shape=(3, 4))
    for name, m in (("trn_mat.pkl", trn), ("val_mat.pkl", val), ("tst_mat.pkl", tst)):
        (folder / name).write_bytes(pickle.dumps(m, protocol=4))
    return folder


def damaged_tst(change: str):
    """A test matrix whose stored arrays were changed after construction (as a pickle can be)."""
    m = sp.coo_matrix((np.ones(3), ([0, 1, 2], [0, 1, 2])), shape=(3, 4))
    if change == "row -1":
        m.row[1] = -1
    elif change == "col 4":
        m.col[1] = 4
    elif change == "row 3":
        m.row[1] = 3
    elif change == "float rows":
        m.coords = (m.row.astype(np.float64) + 0.5, m.col)
    elif change == "nan value":
        m.data[1] = np.nan
    elif change == "negative value":
        m.data[1] = -1.0
    elif change == "csr indices":
        m = m.tocsr()
        m.indices[1] = 9
    elif change == "csr indptr":
        m = m.tocsr()
        m.indptr[1] = 3  # rows no longer partition the entries
    return m


ROW_OUT = "1 of 3 entries have a row (user) index outside 0..2, e.g. entry 1: "
COL_OUT = "1 of 3 entries have a column (item) index outside 0..3, e.g. entry 1: "


@pytest.mark.parametrize("change, expected", [
    ("row -1", ROW_OUT + "(row -1, column 1, value 1.0)"),
    ("col 4", COL_OUT + "(row 1, column 4, value 1.0)"),
    ("row 3", ROW_OUT + "(row 3, column 1, value 1.0)"),
])
def test_rlmrec_index_outside_the_shape_stops_the_stage(tmp_path, capsys, change, expected):
    # before: row -1 and column 4 were folded onto other users/items (exit 0, no reject);
    # row 3 crashed in polars with a traceback
    ds = rlmrec_release(tmp_path / "data" / "ds", tst=damaged_tst(change))
    code, out = run_stage(tmp_path, "rlmrec", ds)
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"ingest failed: {ds / 'tst_mat.pkl'}: {expected}" in err
    assert "n_users=3, n_items=4" in err and "trn_mat.pkl" in err
    assert_nothing_written(tmp_path, out)


@pytest.mark.parametrize("change, expected", [
    ("float rows", "the row index array has dtype float64 and shape (3,); expected a 1-d array "
                   "of integers"),
    ("nan value", "1 of 3 entries have a value that is not a finite number >= 0, e.g. entry 1: "
                  "(row 1, column 1, value nan)"),
    ("negative value", "e.g. entry 1: (row 1, column 1, value -1.0); an interaction matrix"),
    ("csr indices", "not a consistent sparse matrix"),
    ("csr indptr", "not a consistent sparse matrix"),
])
def test_rlmrec_matrix_contents_are_checked(tmp_path, change, expected):
    ds = rlmrec_release(tmp_path / "ds", tst=damaged_tst(change))
    with pytest.raises(IngestError) as exc:
        read("rlmrec", ds, tmp_path / "work")
    assert str(exc.value).startswith(f"{ds / 'tst_mat.pkl'}: ")
    assert expected in str(exc.value)


def test_rlmrec_valid_release_still_reads(tmp_path):
    tables, rejects = read("rlmrec", rlmrec_release(tmp_path / "ds"), tmp_path / "work")
    assert tables.interactions.height == 7 and rejects.rejects == []


@pytest.mark.parametrize("damage, reason", [
    (lambda b: b[: len(b) // 2], "UnpicklingError: pickle data was truncated"),
    (lambda b: b"\x00" + b, "UnpicklingError: invalid load key, '\\x00'"),
    (lambda b: b"", "EOFError: Ran out of input"),
])
def test_rlmrec_corrupt_pickle_names_the_file_and_reason(tmp_path, capsys, damage, reason):
    ds = rlmrec_release(tmp_path / "data" / "ds")
    val = ds / "val_mat.pkl"
    val.write_bytes(damage(val.read_bytes()))
    code, out = run_stage(tmp_path, "rlmrec", ds)
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"ingest failed: {val}: not a readable pickle, the file ({val.stat().st_size:,} bytes)" \
           f" is truncated or corrupt ({reason}" in err
    assert_nothing_written(tmp_path, out)


# --------------------------------------------------------------------------- truncated .gz


def cut(data: bytes, how: str) -> bytes:
    if how == "truncated":
        return data[: len(data) * 2 // 3]
    if how == "bad crc":  # the 8-byte trailer is CRC32 + size: zero the CRC
        return data[:-8] + b"\0\0\0\0" + data[-4:]
    if how == "not gzip":
        return b"this is not gzip data\n" * 10
    raise ValueError(how)


EXPECTED = {
    "truncated": ("the file is truncated (the compressed stream ends before its end marker): "
                  "EOFError: Compressed file ended before the end-of-stream marker was reached."),
    "bad crc": "the file is corrupt (not valid gzip data): BadGzipFile: CRC check failed",
    "not gzip": "the file is corrupt (not valid gzip data): BadGzipFile: Not a gzipped file",
}


def review_lines(n: int) -> list[str]:
    return [json.dumps({"reviewerID": f"U{k % 50}", "asin": f"I{k % 40}", "overall": 5.0,
                        "unixReviewTime": 1500000000 + k, "reviewText": "fine " * 20})
            for k in range(n)]


def assert_broken_file_message(err: str, file: Path, how: str) -> None:
    assert f"ingest failed: {file}: {EXPECTED[how]}" in err, err
    assert "It broke off after " in err and " bytes of text; " in err
    assert " lines had been parsed. " in err
    assert f"Copy or download the {file.stat().st_size:,}-byte file again" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("how", sorted(EXPECTED))
def test_amazon2018_broken_review_gz_stops_cleanly(tmp_path, capsys, how):
    # the review file streams in blocks (iter_blocks) straight into the final table
    raw = tmp_path / "raw"
    raw.mkdir()
    f = raw / "Books_5.json.gz"
    f.write_bytes(cut(gzip.compress("\n".join(review_lines(3000)).encode() + b"\n"), how))
    code, out = run_stage(tmp_path, "amazon2018", raw, chunk_mb=0.05)
    err = capsys.readouterr().err
    assert code == 2, err
    assert_broken_file_message(err, f, how)
    assert_nothing_written(tmp_path, out)  # blocks already parsed were not left as a table


@pytest.mark.parametrize("how", sorted(EXPECTED))
def test_amazon2018_broken_meta_gz_stops_cleanly(tmp_path, capsys, how):
    # meta files go line by line (iter_chunks)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "Books_5.json.gz").write_bytes(gzip.compress("\n".join(review_lines(50)).encode()))
    meta = [json.dumps({"asin": f"I{k}", "title": f"title {k}" * 30}) for k in range(4000)]
    f = raw / "meta_Books.json.gz"
    f.write_bytes(cut(gzip.compress("\n".join(meta).encode()), how))
    code, out = run_stage(tmp_path, "amazon2018", raw, chunk_lines=1000)
    err = capsys.readouterr().err
    assert code == 2, err
    assert_broken_file_message(err, f, how)
    assert_nothing_written(tmp_path, out)


def test_real_gift_cards_cut_short(tmp_path, capsys):
    src = shared_path("amazon2018_gift_cards", "Gift_Cards_5.json.gz")
    raw = tmp_path / "raw"
    raw.mkdir()
    f = raw / src.name
    f.write_bytes(cut(src.read_bytes(), "truncated"))
    code, out = run_stage(tmp_path, "amazon2018", raw)
    err = capsys.readouterr().err
    assert code == 2, err
    assert_broken_file_message(err, f, "truncated")
    assert_nothing_written(tmp_path, out)


def test_amazon2014_truncated_reviews_gz(tmp_path, capsys):
    src = FIXTURES / "amazon2014" / "two_categories" / "reviews_Toy_Tools_5.json"
    raw = tmp_path / "raw"
    raw.mkdir()
    f = raw / "reviews_Toy_Tools_5.json.gz"
    f.write_bytes(cut(gzip.compress(src.read_bytes() * 200), "truncated"))
    code, out = run_stage(tmp_path, "amazon2014", raw, chunk_lines=1000)
    err = capsys.readouterr().err
    assert code == 2, err
    assert_broken_file_message(err, f, "truncated")
    assert_nothing_written(tmp_path, out)


def test_steam_truncated_games_gz(tmp_path, capsys):
    # Python-literal lines go through map_chunks -> iter_chunks
    src = FIXTURES / "steam" / "reviews"
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "steam_reviews.json").write_bytes((src / "steam_reviews.json").read_bytes())
    f = raw / "steam_games.json.gz"
    f.write_bytes(cut(gzip.compress((src / "steam_games.json").read_bytes() * 300), "truncated"))
    code, out = run_stage(tmp_path, "steam", raw, chunk_lines=1000)
    err = capsys.readouterr().err
    assert code == 2, err
    assert_broken_file_message(err, f, "truncated")
    assert_nothing_written(tmp_path, out)


def test_lines_counts_what_was_parsed_before_the_break(tmp_path):
    from recpipe.data.lines import iter_blocks

    f = tmp_path / "a.json.gz"
    text = "\n".join(review_lines(3000)).encode() + b"\n"
    f.write_bytes(cut(gzip.compress(text), "truncated"))
    seen = 0
    with pytest.raises(IngestError) as exc:
        for first, n, _ in iter_blocks(f, 1 << 16):
            seen = first + n - 1
    assert seen > 0 and f"; {seen:,} lines had been parsed" in str(exc.value)


# --------------------------------------------------------------------------- seqtxt last line


def seq_folder(tmp_path: Path, final_newline: bool) -> Path:
    folder = tmp_path / "seq"
    folder.mkdir()
    lines = [f"{u} {u + 1} {u + 2} {u + 3}" for u in range(1, 200)]
    lines.append("2459 70")  # "2459 703", cut short
    (folder / "Beauty.txt").write_text("\n".join(lines) + ("\n" if final_newline else ""))
    return folder


def test_seqtxt_cut_last_line_is_kept_with_a_warning_and_counted(tmp_path, capsys):
    folder = seq_folder(tmp_path, final_newline=False)
    report = ingest(DatasetParams(format="seqtxt", path=str(folder)), IngestParams(),
                    tmp_path / "interim")
    err = capsys.readouterr().err
    assert (f"ingest: warning: {folder / 'Beauty.txt'}: line 200, the last line, has no line "
            f"break, so the file may be cut short") in err
    assert "set ingest.strict_last_line: true to reject it" in err
    assert report["Beauty/truncated_last_line"] == 1 and report["rejects"] == 0
    inter = pl.read_parquet(tmp_path / "interim" / "interactions.parquet")
    assert inter.filter(pl.col("user") == "2459")["item"].to_list() == ["70"]  # kept, as warned


def test_seqtxt_strict_last_line_rejects_it(tmp_path, capsys):
    folder = seq_folder(tmp_path, final_newline=False)
    report = ingest(DatasetParams(format="seqtxt", path=str(folder)),
                    IngestParams(strict_last_line=True), tmp_path / "interim")
    assert "rejected it (ingest.strict_last_line: true)" in capsys.readouterr().err
    assert report["Beauty/truncated_last_line"] == 1 and report["rejects/Beauty.txt"] == 1
    (rej,) = map(json.loads, (tmp_path / "interim" / "rejects.jsonl").read_text().splitlines())
    assert rej == {"file": "Beauty.txt", "line": 200, "field": "item", "text": "2459 70",
                   "reason": "last line has no line break: the file may be cut short mid-number "
                             "(ingest.strict_last_line)"}
    inter = pl.read_parquet(tmp_path / "interim" / "interactions.parquet")
    assert inter.filter(pl.col("user") == "2459").height == 0
    assert inter.height == 199 * 3


@pytest.mark.parametrize("strict", [False, True])
def test_seqtxt_complete_file_has_no_warning(tmp_path, capsys, strict):
    folder = seq_folder(tmp_path, final_newline=True)
    tables, rejects = read("seqtxt", folder, tmp_path / "work", strict_last_line=strict)
    assert tables.stats["Beauty/truncated_last_line"] == 0 and rejects.rejects == []
    assert "warning" not in capsys.readouterr().err


def test_strict_last_line_param_is_documented_and_validated():
    params = load_params(ROOT / "params.yaml")
    assert section(params, "ingest", IngestParams).strict_last_line is False
    assert "strict_last_line" in (ROOT / "params.yaml").read_text()
    assert parse(IngestParams, {"strict_last_line": True}).strict_last_line is True
    with pytest.raises(ParamError, match=r"ingest\.strict_last_line: 'yes' is not true/false"):
        parse(IngestParams, {"strict_last_line": "yes"}, prefix="ingest")
