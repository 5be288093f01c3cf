"""graph.device is checked when the params are parsed, not by a torch traceback after the data
has loaded (recpipe/train/device.py)."""

from __future__ import annotations


import pytest

torch = pytest.importorskip("torch")

from conftest import stage  # noqa: E402
from recpipe.config import ParamError, parse  # noqa: E402


@pytest.fixture(scope="module")
def GraphParams():
    return stage("graph").GraphParams


@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:x", "CPU", "cuda:-1", ""])
def test_unknown_device_names_the_key_and_the_choices(GraphParams, value):
    with pytest.raises(ParamError, match=rf"graph.device: {value!r} is not allowed; choose auto, cpu, cuda, cuda:N or mps"):
        parse(GraphParams, {"device": value}, prefix="graph")


def test_a_gpu_torch_cannot_see_stops_at_parse_time(GraphParams):
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ParamError, match=rf"graph.device: 'cuda:{n}' but torch .* sees "):
        parse(GraphParams, {"device": f"cuda:{n}"}, prefix="graph")
    if n == 0:
        with pytest.raises(ParamError, match=r"graph.device: 'cuda' but torch .* sees no CUDA device"):
            parse(GraphParams, {"device": "cuda"}, prefix="graph")
    if not torch.backends.mps.is_available():
        with pytest.raises(ParamError, match=r"graph.device: 'mps' but torch .* sees no MPS device"):
            parse(GraphParams, {"device": "mps"}, prefix="graph")


def test_cpu_and_auto_always_parse_and_auto_resolves_once(GraphParams):
    from recpipe.train.device import check_device, pick_device

    for value in ("cpu", "auto"):
        assert parse(GraphParams, {"device": value}, prefix="graph").device == value
    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu") == "cpu"
    check_device("cpu", "baselines.device")  # the helper names whichever key it checks
    with pytest.raises(ParamError, match="baselines.device: 'gpu'"):
        check_device("gpu", "baselines.device")
