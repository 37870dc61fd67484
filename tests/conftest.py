"""Shared fixtures: real data from ../shared/data, isolated caches."""

from __future__ import annotations

import http.server
import os
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_root() -> Path:
    env = os.environ.get("AESOP_BENCH_SHARED")
    return Path(env) if env else REPO.parent / "shared" / "data"


def _benchmarks_root() -> Path:
    env = os.environ.get("AESOP_BENCH_DATA")
    return Path(env) if env else _shared_root() / "benchmarks"


def missing_data_reason(hand_made: bool = False) -> str:
    """One reason for every test that needs the shared test data and cannot find it (so that pytest's summary
    prints it once). ``hand_made``: for the tests that read ``reference/`` or the paper's text, which have no
    public file source, so that a folder made by ``aesop-bench data fetch-test-data`` lacks them."""
    if hand_made:
        return (f"shared test data in {_shared_root()} lacks reference/ or ../docs/seeds (published numbers and the "
                "paper's text, transcribed by hand: no public file, so `aesop-bench data fetch-test-data` cannot "
                "fetch them); see the README's Tests section")
    return (f"shared test data not found in {_shared_root()} ($AESOP_BENCH_SHARED; benchmark images in "
            f"{_benchmarks_root()}, $AESOP_BENCH_DATA): get it with `aesop-bench data fetch-test-data DIR`, then "
            "set AESOP_BENCH_SHARED=DIR; see the README's Tests section")


def _require(path: Path, reason: str = "") -> Path:
    if not path.exists():
        reason = reason or missing_data_reason()
        if os.environ.get("CI"):
            pytest.fail(f"test data missing: {path}; " + reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require(_shared_root())


@pytest.fixture(scope="session")
def reference_data(shared_data) -> Path:
    """``reference/`` of the shared data: published numbers and the paper's tables, transcribed by hand."""
    return _require(shared_data / "reference", missing_data_reason(hand_made=True))


@pytest.fixture(scope="session")
def paper_text(shared_data) -> Path:
    """The AESOP paper's text (``docs/seeds`` beside the shared data), from which its tables are parsed."""
    return _require(shared_data.parent / "docs" / "seeds" / "001_d922e9cd703110d8.txt",
                    missing_data_reason(hand_made=True))


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
    monkeypatch.delenv("AESOP_BENCH_WEIGHTS", raising=False)  # weights under that home too
    # the benchmark images where the code under test looks for them by default, as the fixtures find them
    monkeypatch.setenv("AESOP_BENCH_DATA", str(_benchmarks_root()))
    # No extra manifest, and whatever a test sets (benchmarks/standins.py sets os.environ directly) is undone at
    # its end: setenv records the variable's original state for restoring; delenv alone records nothing when the
    # variable is absent.
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", "")
    monkeypatch.delenv("AESOP_BENCH_WEIGHTS_MANIFEST")
    # LDL's test data (read by the paper protocol for five sets) comes from an archive that is not there: no test
    # reaches Google Drive, and a paper-protocol run falls back to the sets' own files unless a test provides it
    monkeypatch.setenv("AESOP_BENCH_LDL_SOURCE", str(tmp_path / "no-ldl-archive.zip"))
    return home


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with HTTP Range support; can cut a response short to simulate a dropped connection."""

    cut_after: int | None = None
    ranges_seen: list = []
    no_length: bool = False  # send no Content-Length: the client cannot tell a cut response from a whole one
    delay: float = 0.0  # seconds before each response: a slow source

    def log_message(self, *a):
        pass

    def do_GET(self):
        if type(self).delay:
            import time

            time.sleep(type(self).delay)
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng:
            type(self).ranges_seen.append(rng)
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if not type(self).no_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = type(self).cut_after
        if cut is not None:
            type(self).cut_after = None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


@pytest.fixture()
def server(tmp_path):
    """A static file server on 127.0.0.1 standing in for the internet: (its folder, its URL, its handler)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = type("H", (_RangeHandler,), {"ranges_seen": [], "cut_after": None, "no_length": False, "delay": 0.0})

    def make(*a, **k):
        return handler(*a, directory=str(root), **k)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()


@pytest.fixture()
def mirror_sets(server, bench_root):
    """``mirror_sets(["set5", ...])`` lays the real files out on the local server as raw.githubusercontent.com
    serves them (REPO/COMMIT/PATH), for downloads pinned to public commits."""
    import shutil

    from aesop_bench.data.sets import SETS, fingerprints

    www = server[0]

    def mirror(sets):
        for s in sets:
            for r in fingerprints(s):
                dst = www / r["repo"] / r["commit"] / r["path_in_repo"]
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(bench_root / SETS[s].folder / r["file"], dst)

    return mirror
