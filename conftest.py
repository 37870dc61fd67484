"""Doctests in the package run with the tests' data and an isolated cache home (tests/conftest.py does the same
for the tests)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Skips for missing shared test data (tests and doctests) are reported at one place, so that the summary has
    one line for all of them (pytest groups skips by place and reason)."""
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and isinstance(rep.longrepr, tuple) and str(rep.longrepr[2]).endswith(
            "see the README's Tests section"):
        rep.longrepr = (str(Path(__file__)), 1, rep.longrepr[2])


@pytest.fixture(autouse=True)
def _doctest_environment(request, tmp_path, monkeypatch):
    if not isinstance(request.node, pytest.DoctestItem):
        return
    shared = Path(os.environ.get("AESOP_BENCH_SHARED") or REPO.parent / "shared" / "data")
    data = Path(os.environ.get("AESOP_BENCH_DATA") or shared / "benchmarks")
    if not (data / "Set5").is_dir():
        msg = (f"shared test data not found in {shared} ($AESOP_BENCH_SHARED; benchmark images in {data}, "
               "$AESOP_BENCH_DATA): see the README's Tests section")
        if os.environ.get("CI"):  # where the data must be there, its absence fails
            pytest.fail(f"doctest data missing: {data / 'Set5'}; {msg}")
        pytest.skip(msg)
    monkeypatch.setenv("AESOP_BENCH_DATA", str(data))
    monkeypatch.setenv("AESOP_BENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AESOP_BENCH_LDL_SOURCE", str(tmp_path / "no-ldl-archive.zip"))
