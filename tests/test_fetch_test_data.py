"""`aesop-bench data fetch-test-data`: the shared test-data folder rebuilt from its pinned public sources, served
here by a local server laid out like raw.githubusercontent.com (REPO/COMMIT/PATH)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from aesop_bench.cli import main
from aesop_bench.data import testdata
from aesop_bench.data.testdata import fetch_test_data, tree_rows
from aesop_bench.errors import AesopBenchError
from aesop_bench.fileutil import sha256_file


def _small(row) -> bool:
    """A few files of several sources: Set5 HR and LR, the NIQE model, RDN's Set5 outputs."""
    return row["file"].startswith(("benchmarks/Set5/", "weights/", "results/RDN/"))


@pytest.fixture()
def mirror(server, shared_data, monkeypatch):
    """Every file of the tree on the local server where its row says GitHub has it (links to the shared copy),
    with $AESOP_BENCH_GITHUB_RAW pointing at the server; returns (server root, handler, requested paths)."""
    www, url, handler = server
    for r in tree_rows():
        dst = www / r["repo"] / r["commit"] / r["path_in_repo"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(shared_data / r["file"], dst)
    monkeypatch.setenv("AESOP_BENCH_GITHUB_RAW", url)
    requested = []
    serve = handler.do_GET

    def counting(self):
        requested.append(self.path)
        serve(self)

    monkeypatch.setattr(handler, "do_GET", counting)
    return www, handler, requested


def _published(shared_data: Path) -> dict[str, str]:
    """``{file: sha256}`` as shared/data documents it: MANIFEST.md's table and results/SHA256SUMS."""
    manifest, sums = shared_data / "MANIFEST.md", shared_data / "results" / "SHA256SUMS"
    if not manifest.is_file() or not sums.is_file():
        pytest.skip(f"{shared_data} has no MANIFEST.md or results/SHA256SUMS to compare a fetched folder with (a "
                    "folder made by fetch-test-data has none)")
    rows = dict(re.findall(r"^\| (\S+) \| \d+ \| ([0-9a-f]{64}) \|$", manifest.read_text(), re.MULTILINE))
    for line in sums.read_text().splitlines():
        digest, name = line.split()
        rows[f"results/{name}"] = digest
    return rows


def _tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in folder.rglob("*") if p.is_file()}


def test_the_fetched_folder_is_shared_data_less_what_has_no_public_source(mirror, shared_data, tmp_path):
    _, _, requested = mirror
    published = _published(shared_data)
    assert not any(f.startswith("reference/") for f in published)
    dest = tmp_path / "td"
    lines = []
    report = fetch_test_data(dest, log=lines.append)
    assert _tree(dest) == published  # every file, byte for byte, and nothing else (no .part left)
    assert len(report.fetched) == len(requested) == len(published) and not report.present
    said = "\n".join(lines)
    assert f"{len(published)} files fetched, 0 already present" in said
    assert f"AESOP_BENCH_SHARED={dest.resolve()}" in said and "reference/published_x4.csv" in said
    # a second run finds everything verified: no request, no file written again
    mtimes = {p: p.stat().st_mtime_ns for p in dest.rglob("*")}
    again = fetch_test_data(dest, log=None)
    assert not again.fetched and len(again.present) == len(published) and len(requested) == len(published)
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*")} == mtimes


def test_a_corrupt_source_file_is_refused_by_name(mirror, tmp_path):
    www, _, _ = mirror
    row = next(r for r in tree_rows() if r["file"] == "results/RDN/Set5/bird_RDN_x4.png")
    served = www / row["repo"] / row["commit"] / row["path_in_repo"]
    data = bytearray(served.read_bytes())
    data[len(data) // 2] ^= 0xFF
    served.unlink()
    served.write_bytes(bytes(data))
    dest = tmp_path / "td"
    with pytest.raises(AesopBenchError, match=r"^results/RDN/Set5/bird_RDN_x4\.png: sha256 mismatch for http.*"
                                              r"\$AESOP_BENCH_SHARED"):
        fetch_test_data(dest, log=None, select=_small)
    target = dest / row["file"]
    assert not target.exists() and not target.with_name(target.name + ".part").exists()
    assert (dest / "results/RDN/Set5/baby_RDN_x4.png").is_file()  # those before it are kept, verified


def test_an_interrupted_folder_is_completed(mirror, tmp_path):
    _, handler, requested = mirror
    dest = tmp_path / "td"
    first = fetch_test_data(dest, log=None, select=_small)
    assert len(first.fetched) == len(requested) == 16
    (dest / "benchmarks/Set5/HR/bird.png").unlink()
    lost = dest / "weights/niqe/modelparameters.mat"  # cut in the middle of its download
    part = lost.with_name(lost.name + ".part")
    part.write_bytes(lost.read_bytes()[:3000])
    lost.unlink()
    again = fetch_test_data(dest, log=None, select=_small)
    assert sorted(again.fetched) == ["benchmarks/Set5/HR/bird.png", "weights/niqe/modelparameters.mat"]
    assert len(again.present) == 14 and len(requested) == 18 and handler.ranges_seen == ["bytes=3000-"]
    rows = {r["file"]: r["sha256"] for r in tree_rows() if _small(r)}
    assert _tree(dest) == rows


def test_the_command_line(mirror, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(testdata, "tree_rows", lambda: tuple(r for r in tree_rows() if _small(r)))
    dest = tmp_path / "td"
    assert main(["data", "fetch-test-data", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "16 files fetched, 0 already present" in out and f"AESOP_BENCH_SHARED={dest.resolve()}" in out
    assert main(["data", "fetch-test-data", str(dest)]) == 0
    assert "0 files fetched, 16 already present" in capsys.readouterr().out
    assert main(["data", "fetch-test-data"]) == 2
    assert "needs DIR" in capsys.readouterr().err


def test_an_unreachable_source_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("AESOP_BENCH_GITHUB_RAW", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(AesopBenchError) as exc:
        fetch_test_data(tmp_path / "td", log=None, select=lambda r: r["file"] == "weights/niqe/modelparameters.mat")
    said = str(exc.value)
    assert said.startswith("weights/niqe/modelparameters.mat: download failed: http://127.0.0.1:9/Vampirehh/")
    assert "run the command again" in said and "$AESOP_BENCH_SHARED" in said
    assert not any(p.is_file() for p in (tmp_path / "td").rglob("*"))
