"""Shared test fixtures.

Real data lives in ../shared/data beside the repo (developers and CI); on a user's machine
it is absent and the tests that need it skip with a message saying so. Override the location
with RECPIPE_SHARED_DATA.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RECPIPE_SHARED_DATA", ROOT.parent / "shared" / "data"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def shared_path(*parts: str) -> Path:
    """Path inside the shared data folder; skips the calling test when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available: {p} is missing (needs ../shared/data beside the repo)")
    return p


@pytest.fixture
def shared():
    return shared_path
