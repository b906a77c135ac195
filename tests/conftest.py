"""Shared fixtures: the real sample media in ../shared/data."""
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"sample media not found at {DATA} (../shared/data beside the checkout)")
    return DATA


@pytest.fixture(scope="session", autouse=True)
def doppel_config(tmp_path_factory):
    """Keep the C2PA certificate doppel creates on first use out of the user's ~/.config."""
    import os
    folder = tmp_path_factory.mktemp("doppel_config")
    old = os.environ.get("DOPPEL_CONFIG_DIR")
    os.environ["DOPPEL_CONFIG_DIR"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("DOPPEL_CONFIG_DIR", None)
    else:
        os.environ["DOPPEL_CONFIG_DIR"] = old
