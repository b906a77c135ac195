"""Shared fixtures: the real sample media in ../shared/data."""
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"sample media not found at {DATA} (../shared/data beside the checkout)")
    return DATA
