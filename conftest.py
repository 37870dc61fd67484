"""Doctests in the package run with the tests' data and an isolated cache home (tests/conftest.py does the same
for the tests)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent
WORKERS = 2  # pytest-xdist processes by default: the suite's time halves on a 2-core machine


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config):
    """``-n 2`` where pytest-xdist is installed and enabled, unless the command chose its workers itself (``-n``,
    ``--tx``) or debugs (``--pdb``, one process). Not in pyproject's ``addopts``: there a ``-n`` is an unknown
    option wherever xdist is missing or disabled (``-p no:xdist``). Set here, before xdist's own hook turns it into
    ``--dist load`` and its workers; called for this conftest because it is an initial one (the rootdir's)."""
    opt = config.option
    xdist = hasattr(opt, "numprocesses")  # its options exist only where the plugin is loaded
    if xdist and not hasattr(config, "workerinput") and opt.numprocesses is None and not opt.tx and not opt.usepdb:
        opt.numprocesses = WORKERS
    return (yield)


def pytest_configure(config):
    """Each of several xdist workers computes on one thread by default (torch's pool and the BLAS libraries
    loaded so far): two workers at two threads each on a 2-core machine wait for each other's time slices at every
    parallel operation. A test that needs a count sets it; no value depends on it."""
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    if workers > 1 and workers >= (os.cpu_count() or 1):
        import torch

        torch.set_num_threads(1)


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
               "$AESOP_BENCH_DATA): get it with `aesop-bench data fetch-test-data DIR`, then set "
               "AESOP_BENCH_SHARED=DIR; see the README's Tests section")
        if os.environ.get("CI"):  # where the data must be there, its absence fails
            pytest.fail(f"doctest data missing: {data / 'Set5'}; {msg}")
        pytest.skip(msg)
    monkeypatch.setenv("AESOP_BENCH_DATA", str(data))
    monkeypatch.setenv("AESOP_BENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AESOP_BENCH_LDL_SOURCE", str(tmp_path / "no-ldl-archive.zip"))
