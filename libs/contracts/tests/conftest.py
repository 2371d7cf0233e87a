from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qlp_contracts.codegen import find_root


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return find_root()


@pytest.fixture
def proto_copy(repo_root: Path, tmp_path: Path) -> Path:
    """A scratch repository root holding a copy of proto/ (with its snapshot) to mutate."""
    shutil.copytree(repo_root / "proto", tmp_path / "proto")
    return tmp_path
