"""Shared test fixtures: the real ESC-10 data when present, and generated audio."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "recipes"))

ESC50_DEV = Path(os.environ.get("ESC50_DEV", REPO.parent / "shared" / "ESC-50-dev"))


@pytest.fixture(scope="session")
def esc50_dev():
    """The real ESC-10 folder (ESC-50 layout); skips the test when it is absent."""
    if not (ESC50_DEV / "meta" / "esc50.csv").is_file():
        pytest.skip(f"real data not found at {ESC50_DEV}")
    return ESC50_DEV
