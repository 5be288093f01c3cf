"""Data without text (ids only) through every stage (issue 12, section 1).

The RLMRec release ships interaction matrices without any text, and S3Rec sequences carry only
attribute ids: there is nothing to profile or embed. Every stage must still succeed, leave each
declared output in place (an empty table, a cache folder) and say in its metrics that it had
nothing to work on (`"status": "skipped: no text"`), so `dvc exp run` of the README's command
for such data runs through to the report (tests/test_readme_commands.py runs that command on
the RLMRec release and checks each stage's output). Before the fix `embed` stopped the
pipeline with "output 'data/embeddings/cache' does not exist".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import shared_path, stage

SKIPPED = "skipped: no text"


def _stage(name: str):
    return stage(name)


@pytest.fixture(scope="module")
def seqtxt(tmp_path_factory) -> Path:
    """S3Rec's Beauty sequences (22,363 users, ids only) as data/processed."""
    from recpipe.config import parse
    from recpipe.data.ingest import ingest
    from recpipe.data.processed import build
    from recpipe.params import DatasetParams, IngestParams, SplitParams

    src = shared_path("s3rec_seq")
    root = tmp_path_factory.mktemp("seqtxt")
    ingest(DatasetParams(format="seqtxt", path=str(src)), IngestParams(categories=["Beauty"]),
           root / "interim")
    build(root / "interim", root / "processed",
          parse(SplitParams, {"protocol": "loo"}, prefix="split"), 1)
    return root / "processed"


def test_profile_and_embed_stages_on_sequences_without_text(seqtxt, tmp_path, capsys):
    """In process and fast: no text -> empty profile tables, no matrix, every output in place,
    the status in the declared metrics and the counts in the stage folder's metrics.json."""
    params = tmp_path / "params.yaml"
    params.write_text("seed: 1\ndataset:\n  format: seqtxt\nprofile:\n  backend: template\n"
                      "embed:\n  device: cpu\n")
    profiles, cache = tmp_path / "profiles", tmp_path / "profile_cache" / "cache.jsonl"
    assert _stage("profiles").main(["--params", str(params), "--processed", str(seqtxt), "--out",
                                    str(profiles), "--cache", str(cache), "--metrics",
                                    str(tmp_path / "profile.json")]) == 0
    head = json.loads((tmp_path / "profile.json").read_text())
    assert head == {"ok": 0, "failed": 0, "status": SKIPPED}
    full = json.loads((profiles / "metrics.json").read_text())
    assert full["status"] == SKIPPED and full["users_empty"] == 22_363
    for kind in ("user", "item"):
        assert (profiles / f"{kind}_profiles.parquet").exists()

    emb, ecache = tmp_path / "embeddings", tmp_path / "embed_cache"
    assert _stage("embed").main(["--params", str(params), "--processed", str(seqtxt), "--profiles",
                                 str(profiles), "--out", str(emb), "--cache", str(ecache),
                                 "--metrics", str(tmp_path / "embed.json")]) == 0
    assert json.loads((tmp_path / "embed.json").read_text()) == {"dim": 0, "status": SKIPPED}
    full = json.loads((emb / "metrics.json").read_text())
    assert full["status"] == SKIPPED and full["item_text/skipped"] == 1
    assert sorted(p.name for p in emb.iterdir()) == ["index.json", "metrics.json"]
    # the declared cache folder exists (not empty, so DVC does not warn) though nothing was encoded
    assert [p.name for p in ecache.iterdir()] == ["README.txt"]
    assert "no text for item_text" in capsys.readouterr().out


def test_graph_alignment_on_data_without_text_falls_back_to_the_plain_backbone(small_processed, tmp_path, capsys):
    """The default graph.align=con on ids-only data (issue 14's bare LOO command): the embed
    stage skipped, so the graph stage trains <model>-none and says so, instead of failing."""
    import yaml

    from conftest import ROOT

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["graph"]["train"].update(epochs=1, eval_every=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    emb = tmp_path / "embeddings"
    emb.mkdir()
    args = ["--params", str(tmp_path / "params.yaml"), "--processed", str(small_processed),
            "--embeddings", str(emb), "--out", str(tmp_path / "out"), "--metrics",
            str(tmp_path / "graph.json"), "--plots", str(tmp_path / "plots")]
    # no embed report at all: still the clear error that names what is missing
    assert _stage("graph").main(args) == 2
    assert "user_profile.npy" in capsys.readouterr().err
    (emb / "metrics.json").write_text(json.dumps({"status": SKIPPED}))
    assert _stage("graph").main(args) == 0
    assert "falls back to none (lightgcn-none)" in capsys.readouterr().out
    full = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert full["model"] == "lightgcn-none"
    assert json.loads((tmp_path / "out" / "hparams.json").read_text())["align"] == "none"
