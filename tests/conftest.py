"""Shared fixtures: real data from ../shared/data, isolated caches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_root() -> Path:
    env = os.environ.get("AESOP_BENCH_SHARED")
    return Path(env) if env else REPO.parent / "shared" / "data"


def _benchmarks_root() -> Path:
    env = os.environ.get("AESOP_BENCH_DATA")
    return Path(env) if env else _shared_root() / "benchmarks"


def _require(path: Path) -> Path:
    if not path.exists():
        msg = f"test data missing: {path} (set AESOP_BENCH_SHARED / AESOP_BENCH_DATA)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require(_shared_root())


@pytest.fixture(scope="session")
def bench_root() -> Path:
    root = _benchmarks_root()
    _require(root / "Set5" / "HR")
    return root


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own cache home, so no test sees another's SR cache or downloads; it lies in the
    test's tmp_path, which is deleted when the test passes (pyproject: tmp_path_retention_policy)."""
    home = tmp_path / "aesop-bench-home"
    home.mkdir()
    monkeypatch.setenv("AESOP_BENCH_HOME", str(home))
    # No extra manifest, and whatever a test sets (benchmarks/standins.py sets os.environ directly) is undone at
    # its end: setenv records the variable's original state for restoring; delenv alone records nothing when the
    # variable is absent.
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", "")
    monkeypatch.delenv("AESOP_BENCH_WEIGHTS_MANIFEST")
    return home
