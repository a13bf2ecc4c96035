"""Fixtures of the reqs tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def proj(tmp_path) -> Path:
    """An empty project folder the test writes requirement files into."""
    p = tmp_path / "proj"
    p.mkdir()
    return p
