"""Typed params: unknown keys, wrong types and out-of-range values stop with a clear message."""

from pathlib import Path

import pytest

from recpipe.config import ParamError, load_params, parse, section
from recpipe.params import DatasetParams, IngestParams, SplitParams
from conftest import ROOT


def test_project_params_parse_with_defaults_documented():
    params = load_params(ROOT / "params.yaml")
    assert section(params, "dataset", DatasetParams).format == "amazon2018"
    split = section(params, "split", SplitParams)
    assert split.protocol == "random" and split.ratios == [0.6, 0.2, 0.2]
    assert section(params, "ingest", IngestParams).max_reject_fraction == 0.01


@pytest.mark.parametrize(
    "data, message",
    [
        ({"protocl": "loo"}, "split: unknown key(s) protocl"),
        ({"protocol": "bogus"}, "split.protocol: 'bogus' is not allowed; choose one of 'random'"),
        ({"user_core": "5"}, "split.user_core: '5' is not an integer"),
        ({"user_core": -1}, "split.user_core: -1 must be >= 0"),
        ({"sample_users": 0.0}, "split.sample_users: 0.0 must be > 0.0"),
        ({"ratios": [0.5, 0.5]}, "split.ratios: [0.5, 0.5] must be 3 numbers summing to 1"),
        ({"temporal_valid": 1.5}, "split.temporal_valid: quantile 1.5 must be in (0, 1)"),
        ({"min_rating": "high"}, "split.min_rating: 'high' is not float or None"),
    ],
)
def test_bad_split_values_name_key_value_and_allowed(data, message):
    with pytest.raises(ParamError) as e:
        parse(SplitParams, data, prefix="split")
    assert message in str(e.value)


def test_valid_values_are_coerced():
    p = parse(SplitParams, {"min_rating": 3, "temporal_test": "2022-07-16"}, prefix="split")
    assert p.min_rating == 3.0 and isinstance(p.min_rating, float)
    assert p.temporal_test == "2022-07-16"
    with pytest.raises(ParamError, match="dataset.format: 'csv' is not allowed"):
        parse(DatasetParams, {"format": "csv"}, prefix="dataset")


def test_section_must_be_a_mapping():
    with pytest.raises(ParamError, match="split: expected a mapping"):
        section({"split": "loo"}, "split", SplitParams)


def test_the_presets_index_names_paper_source_and_an_existing_file_for_every_entry():
    from recpipe.cli import main
    from recpipe.presets import PRESETS, TABLES, flags, index

    root = Path(__file__).resolve().parents[1]
    for name, p in PRESETS.items():
        assert p.paper and p.source and p.flags, name
        assert flags(name)[1::2] == [f"{k}={v}" if not isinstance(v, list) else f"{k}=[{','.join(map(str, v))}]"
                                     for k, v in p.flags.items()]
    for name, (where, source) in TABLES.items():
        assert (root / where.split()[0]).is_file(), f"{name}: {where} does not exist"
        assert source, name
    text = index()
    assert all(n in text for n in [*PRESETS, *TABLES]) and "22413752" in text
    with pytest.raises(KeyError, match="unknown preset 'nope'; choose one of rlmrec"):
        flags("nope")
    assert main(["preset", "nope"]) == 2


def test_the_committed_params_yaml_validates_section_by_section():
    """recpipe/sections.py lists every params.yaml section's dataclass; the shipped
    params.yaml parses through all of them, and a stray section is named."""
    import yaml

    from recpipe.config import ParamError
    from recpipe.sections import SCALARS, SECTIONS, validate_all

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    assert set(params) == set(SECTIONS) | set(SCALARS)
    parsed = validate_all(params)
    assert parsed["graph"].train_config().select_metric == "recall@20"
    assert parsed["baselines"].bprmf.train_config().epochs == params["baselines"]["bprmf"]["train"]["epochs"]
    assert parsed["eval"].preset == params["eval"]["preset"]
    with pytest.raises(ParamError, match=r"unknown section\(s\) grpah; sections are seed, dataset"):
        validate_all({**params, "grpah": {}})
    with pytest.raises(ParamError, match=r"graph.train.patience: -1 must be >= 0"):
        validate_all({**params, "graph": {**params["graph"], "train": {"patience": -1}}})


def test_reader_options_come_from_the_ingest_section_by_name():
    import dataclasses

    from recpipe.data.ingest import read_options
    from recpipe.data.readers import ReadOptions
    from recpipe.params import IngestParams

    p = parse(IngestParams, {"categories": ["Books"], "workers": 3, "chunk_lines": 5000,
                             "steam_source": "reviews", "chunk_mb": 8.0, "strict_last_line": True},
              prefix="ingest")
    opts = read_options(p)
    for f in dataclasses.fields(ReadOptions):  # every option is an ingest key of the same name
        assert getattr(opts, f.name) == getattr(p, f.name), f.name
    assert opts.workers == 3 and opts.steam_source == "reviews" and opts.strict_last_line is True
