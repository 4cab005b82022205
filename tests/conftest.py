"""Fixtures for the template's own tests."""

from pathlib import Path
from typing import Any

import pytest

from tests.baking import Bake, bake_into


@pytest.fixture
def bake(tmp_path: Path) -> Bake:
    """Generate a project into this test's temporary directory."""

    def bake(**answers: Any) -> Path:
        return bake_into(tmp_path / "out", **answers)

    return bake
