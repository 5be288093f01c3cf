"""Cleaning and split protocols, checked on real shared data."""

from pathlib import Path

import polars as pl
import pytest

from conftest import shared_path
from recpipe.config import parse
from recpipe.data.clean import clean, kcore
from recpipe.data.ingest import ingest
from recpipe.data.processed import build
from recpipe.data.rejects import IngestError
from recpipe.params import DatasetParams, IngestParams, SplitParams


def interim(tmp_path: Path, folder: Path, fmt: str = "amazon2018") -> Path:
    out = tmp_path / "interim"
    ingest(DatasetParams(format=fmt, path=str(folder)), IngestParams(), out)
    return out


def run(tmp_path, src: Path, seed=7, name="p", **split):
    out = tmp_path / name
    report = build(src, out, parse(SplitParams, split, prefix="split"), seed)
    parts = {s: pl.read_parquet(out / f"{s}.parquet") for s in ("train", "valid", "test")}
    return report, parts, out


def pairs(df):
    return set(zip(df["uid"].to_list(), df["iid"].to_list()))


@pytest.fixture(scope="module")
def gift(tmp_path_factory):
    return interim(tmp_path_factory.mktemp("gift"), shared_path("amazon2018_gift_cards"))


def test_random_split_is_disjoint_covered_and_seeded(gift, tmp_path):
    rep, parts, out = run(tmp_path, gift, protocol="random")
    tr, va, te = parts["train"], parts["valid"], parts["test"]
    assert not (pairs(tr) & pairs(va)) and not (pairs(tr) & pairs(te)) and not (pairs(va) & pairs(te))
    n = rep["interactions"]
    assert tr.height + va.height + te.height == n
    assert 0.55 < tr.height / n < 0.68 and 0.15 < te.height / n < 0.25
    assert tr["uid"].n_unique() == rep["users"] and tr["iid"].n_unique() == rep["items"]
    assert rep["removed/duplicate_pairs"] == 2972 - 2965
    same, parts2, _ = run(tmp_path, gift, name="again", protocol="random")
    assert parts2["test"].equals(te)
    _, other, _ = run(tmp_path, gift, seed=8, name="other", protocol="random")
    assert not other["test"].equals(te)
    umap = pl.read_parquet(out / "user_map.parquet")
    assert umap["uid"].to_list() == list(range(rep["users"]))
    assert umap["user"].to_list() == sorted(umap["user"].to_list())


def test_redraw_guarantee_records_the_seed(gift, tmp_path):
    rep, parts, _ = run(tmp_path, gift, protocol="random", guarantee="redraw", user_core=0, item_core=0)
    assert parts["train"]["uid"].n_unique() == rep["users"]
    assert rep["split/seed_used"] >= 7


def test_loo_puts_each_users_latest_interaction_in_test(gift, tmp_path):
    rep, parts, out = run(tmp_path, gift, protocol="loo")
    inter = pl.read_parquet(out / "interactions.parquet")
    latest = inter.group_by("uid").agg(pl.col("ts").max().alias("last"))
    te = parts["test"].join(latest, on="uid")
    assert te.height == rep["users"] == parts["valid"].height
    assert (te["ts"] == te["last"]).all()
    tr_last = parts["train"].group_by("uid").agg(pl.col("ts").max())
    va = parts["valid"].join(tr_last, on="uid", suffix="_tr").join(parts["test"], on="uid", suffix="_te")
    assert ((va["ts_tr"] <= va["ts"]) & (va["ts"] <= va["ts_te"])).all()


def test_loo_truncation_keeps_last_n(gift, tmp_path):
    rep, parts, _ = run(tmp_path, gift, protocol="loo", loo_max_len=4)
    assert parts["train"].group_by("uid").len()["len"].max() == 2
    assert rep["split/truncated"] > 0


def test_user_ratio_gives_every_user_valid_and_test(gift, tmp_path):
    rep, parts, _ = run(tmp_path, gift, protocol="user_ratio", ratios=[0.8, 0.1, 0.1])
    assert parts["valid"]["uid"].n_unique() == rep["users"] == parts["test"]["uid"].n_unique()
    assert not (pairs(parts["train"]) & pairs(parts["test"]))


def test_temporal_thresholds_order_the_splits(gift, tmp_path):
    rep, parts, _ = run(tmp_path, gift, protocol="temporal", temporal_valid=0.5, temporal_test="2017-06-01")
    assert parts["train"]["ts"].max() < rep["split/t_valid"] <= parts["valid"]["ts"].min()
    assert parts["valid"]["ts"].max() < rep["split/t_test"] == 1496275200 <= parts["test"]["ts"].min()
    assert rep["split/temporal_by"] == "time"  # real unix times: global thresholds


def test_cleaning_order_and_counts(tmp_path):
    src = interim(tmp_path, shared_path("amazon2018_reviews_only"))
    df = pl.read_parquet(src / "interactions.parquet")
    p = parse(SplitParams, {"domains": ["Appliances"], "user_core": 0, "item_core": 0}, prefix="split")
    out, stats, _ = clean(df, p, 0)
    assert out.select(pl.struct("user", "item").n_unique()).item() == out.height == 183
    assert set(out["domain"]) == {"Appliances"} and stats["removed/domain"] > 3000
    # the data README: 2,071 of Appliances' 2,277 lines are exact duplicates
    assert stats["removed/exact_duplicates"] >= 2071 - 68
    with pytest.raises(IngestError, match="not in the data"):
        clean(df, parse(SplitParams, {"domains": ["Books"]}, prefix="split"), 0)
    with pytest.raises(IngestError, match="lower split.user_core"):
        clean(df, parse(SplitParams, {"user_core": 500}, prefix="split"), 0)


def test_min_rating_and_user_sampling_are_saved(gift, tmp_path):
    rep, parts, out = run(tmp_path, gift, min_rating=3, sample_users=0.5, user_core=2, item_core=2)
    assert rep["removed/rating"] == 22 + 11
    sampled = pl.read_parquet(out / "sampled_users.parquet")
    assert 0.49 * 458 <= sampled.height <= 0.51 * 458  # half of the users left after min_rating
    kept = pl.read_parquet(out / "user_map.parquet")["user"]
    assert kept.is_in(sampled["user"].implode()).all()


def test_kcore_iterates_to_a_fixed_point():
    df = pl.DataFrame({"user": list("aaabbbcc"), "item": list("xyzxyzxq")})
    out = kcore(df, 2, 2)
    # q has one interaction -> removed; then c has one -> removed; then x,y,z have 2 each
    assert sorted(out["user"].unique()) == ["a", "b"] and out.height == 6


def test_rlmrec_protocol_reproduces_the_release_exactly(rlmrec_processed):
    out = rlmrec_processed  # the release ingested and split with `split.protocol: rlmrec` (conftest)
    parts = {s: pl.read_parquet(out / f"{s}.parquet") for s in ("train", "valid", "test")}
    n_users, n_items = (pl.read_parquet(out / f"{m}_map.parquet").height for m in ("user", "item"))
    assert (n_users, n_items) == (11_000, 9_332)
    assert tuple(parts[s].height for s in ("train", "valid", "test")) == (120_464, 40_290, 40_106)
    assert not (pairs(parts["train"]) & pairs(parts["test"]))
    # ids stay the release's ids: uid 0 is the mapper's first reviewerID
    umap = pl.read_parquet(out / "user_map.parquet")
    first = shared_path("rlmrec", "mapper", "amazon_user.json").read_text().splitlines()[0]
    assert umap.row(0) == (0, __import__("json").loads(first)["reviewerID"])
    from recpipe.data.safe_pickle import safe_load

    tst = safe_load(shared_path("rlmrec", "amazon", "tst_mat.pkl")).tocoo()
    assert pairs(parts["test"]) == set(zip(tst.row.tolist(), tst.col.tolist()))


def test_rlmrec_protocol_samples_users_and_keeps_each_row_in_its_release_split(rlmrec_processed, tmp_path):
    """`split.sample_users` is the one cleaning key a release split obeys: a seeded tenth of
    the users, every row of theirs in the split the release gave it, no k-core afterwards."""
    src = rlmrec_processed.parent / "interim"
    rep, parts, out = run(tmp_path, src, seed=2023, protocol="rlmrec", sample_users=0.1)
    assert rep["users"] == 1_100 and rep["removed/user_sampling"] > 0
    full = {s: pl.read_parquet(rlmrec_processed / f"{s}.parquet") for s in ("train", "valid", "test")}
    names = {m: pl.read_parquet(out / f"{m}_map.parquet") for m in ("user", "item")}
    full_names = {m: pl.read_parquet(rlmrec_processed / f"{m}_map.parquet") for m in ("user", "item")}

    def named(df, maps):  # (user, item) by their release names: ids differ between the two runs
        df = df.join(maps["user"], on="uid").join(maps["item"], on="iid")
        return set(zip(df["user"].to_list(), df["item"].to_list()))

    kept = set(names["user"]["user"].to_list())
    for s in ("train", "valid", "test"):
        mine = named(parts[s], names)
        whole = {p for p in named(full[s], full_names) if p[0] in kept}
        assert mine == whole, s  # every row of a kept user, in its own split
    again, _, _ = run(tmp_path, src, seed=2023, name="again", protocol="rlmrec", sample_users=0.1)
    same = pl.read_parquet(tmp_path / "again" / "user_map.parquet")["user"]
    assert again["users"] == 1_100 and same.to_list() == names["user"]["user"].to_list()


def test_rlmrec_protocol_needs_a_pre_split_release(gift, tmp_path):
    with pytest.raises(IngestError, match="has none"):
        run(tmp_path, gift, protocol="rlmrec")


# --------------------------------------------------------------------------- order-only ts


def _stages(tmp_path, raw: Path, fmt: str, **split) -> tuple[dict, dict, pl.DataFrame]:
    """Ingest and split stages run on `raw`: (ingest report, split metrics, interactions with
    the raw user and item ids)."""
    import json

    import yaml
    from conftest import ROOT, stage

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["dataset"].update(format=fmt, path=str(raw))
    params["split"].update(**{"user_core": 0, "item_core": 0, **split})
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(params))
    interim, processed = tmp_path / "interim", tmp_path / "processed"
    assert stage("ingest").main(["--params", str(p), "--out", str(interim),
                                 "--metrics", str(interim / "metrics.json")]) == 0
    assert stage("split").main(["--params", str(p), "--interim", str(interim), "--ingest-report",
                                str(interim / "metrics.json"), "--out", str(processed),
                                "--metrics", str(tmp_path / "dataset.json")]) == 0
    df = pl.read_parquet(processed / "interactions.parquet")
    df = df.join(pl.read_parquet(processed / "user_map.parquet"), on="uid").join(
        pl.read_parquet(processed / "item_map.parquet"), on="iid")
    return (json.loads((interim / "metrics.json").read_text()),
            json.loads((processed / "metrics.json").read_text()), df)


def test_temporal_on_positions_splits_each_user_by_order(tmp_path, capsys):
    # seqtxt: ts is the position. Global quantiles of positions would send only the longest
    # sequence's tail to test; position order must stand in for time per user instead.
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "Toy.txt").write_text("1 10 11 12 13 14 15\n2 20 21 22\n3 30 31\n")
    ingest_rep, rep, df = _stages(tmp_path, raw, "seqtxt", protocol="temporal")
    assert ingest_rep["ts_kind"] == "position"
    out = capsys.readouterr().out
    assert "split: temporal: ts holds positions" in out and "temporal_by=position" in out
    assert rep["split/temporal_by"] == "position" and rep["ts_kind"] == "position"
    assert "split/t_valid" not in rep and rep["split/train_only_users"] == 1
    got = {s: sorted(df.filter(pl.col("split") == s)["item"]) for s in ("valid", "test")}
    assert got == {"valid": ["14", "21"], "test": ["15", "22"]}  # user 3 (2 items): train only
    assert set(df.filter(pl.col("user") == "3")["split"]) == {"train"}


def test_positions_leave_the_other_protocols_alone(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "Toy.txt").write_text("1 10 11 12 13 14 15\n2 20 21 22\n")
    _, rep, _ = _stages(tmp_path, raw, "seqtxt", protocol="random", ratios=[0.5, 0.25, 0.25])
    assert "split/temporal_by" not in rep and rep["ts_kind"] == "position"
    assert "temporal" not in capsys.readouterr().out
