"""Doctests in the package run with the tests' data and an isolated cache home (tests/conftest.py does the same
for the tests)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _doctest_environment(request, tmp_path, monkeypatch):
    if not isinstance(request.node, pytest.DoctestItem):
        return
    shared = Path(os.environ.get("AESOP_BENCH_SHARED") or REPO.parent / "shared" / "data")
    data = Path(os.environ.get("AESOP_BENCH_DATA") or shared / "benchmarks")
    if not (data / "Set5").is_dir():
        pytest.fail(f"doctest data missing: {data / 'Set5'} (set AESOP_BENCH_DATA)")
    monkeypatch.setenv("AESOP_BENCH_DATA", str(data))
    monkeypatch.setenv("AESOP_BENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AESOP_BENCH_LDL_SOURCE", str(tmp_path / "no-ldl-archive.zip"))
