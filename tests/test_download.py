"""Downloads against a local HTTP server on 127.0.0.1: pinned, verified, resumable, atomic, safe extraction."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

from aesop_bench.download import extract, fetch
from aesop_bench.data.manage import download_set, make_lr, verify_set
from aesop_bench.errors import AesopBenchError
from aesop_bench.imageio import read_image

REPO = Path(__file__).resolve().parents[1]


def test_fetch_verifies_and_is_atomic(server, tmp_path):
    root, url, _ = server
    payload = os.urandom(300_000)
    (root / "f.bin").write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "out" / "f.bin"
    assert fetch(f"{url}/f.bin", dest, good) == good
    assert dest.read_bytes() == payload
    bad = tmp_path / "out" / "g.bin"
    with pytest.raises(AesopBenchError, match="sha256 mismatch"):
        fetch(f"{url}/f.bin", bad, "0" * 64)
    assert not bad.exists() and not bad.with_name("g.bin.part").exists()


def test_fetch_resumes_a_cut_download(server, tmp_path):
    root, url, handler = server
    payload = os.urandom(500_000)
    (root / "big.bin").write_bytes(payload)
    handler.cut_after = 123_456
    dest = tmp_path / "big.bin"
    fetch(f"{url}/big.bin", dest, hashlib.sha256(payload).hexdigest())
    assert dest.read_bytes() == payload
    assert handler.ranges_seen == ["bytes=123456-"]


def test_fetch_file_url(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello")
    dest = tmp_path / "d" / "x.bin"
    fetch(src.as_uri(), dest, hashlib.sha256(b"hello").hexdigest())
    assert dest.read_bytes() == b"hello"


def test_fetch_missing_is_a_clear_error(server, tmp_path):
    _, url, _ = server
    with pytest.raises(AesopBenchError, match=r"download failed: .*nothing\.bin"):
        fetch(f"{url}/nothing.bin", tmp_path / "n.bin", None)


def test_extract_refuses_path_escapes_and_links(tmp_path):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ok/a.txt", "fine")
        zf.writestr("../escape.txt", "bad")
    with pytest.raises(AesopBenchError, match="outside"):
        extract(z, tmp_path / "x")
    assert not (tmp_path / "escape.txt").exists()
    t = tmp_path / "evil.tar"
    with tarfile.open(t, "w") as tf:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(AesopBenchError, match="link"):
        extract(t, tmp_path / "y")
    good = tmp_path / "good.tar"
    with tarfile.open(good, "w") as tf:
        data = b"png bytes"
        info = tarfile.TarInfo("DIV2K_valid_HR/0801.png")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    assert [p.name for p in extract(good, tmp_path / "z")] == ["0801.png"]


def test_download_verify_and_make_lr(server, mirror_sets, bench_root, tmp_path, monkeypatch):
    www, url, _ = server
    mirror_sets(["set5", "set14"])
    monkeypatch.setenv("AESOP_BENCH_GITHUB_RAW", url)
    data = tmp_path / "data"
    download_set("set5", data, log=None)
    assert verify_set("set5", data).status == "canonical"
    assert sorted(p.name for p in (data / "Set5" / "HR").iterdir()) == [
        "baby.png", "bird.png", "butterfly.png", "head.png", "woman.png"]
    # a damaged file is reported, and a second download repairs only it
    (data / "Set5" / "HR" / "bird.png").write_bytes(b"damaged")
    rep = verify_set("set5", data)
    assert rep.status == "differs" and rep.differing == ["HR/bird.png"]
    download_set("set5", data, log=None)
    assert verify_set("set5", data).status == "canonical"
    # make-lr reproduces the pixels of the downloaded MATLAB LR files (Set5), under the same names
    lr_dir = data / "Set5" / "LR_bicubic" / "X4"
    matlab = {p.name: read_image(p) for p in lr_dir.iterdir()}
    shutil.rmtree(lr_dir)
    make_lr("set5", data, 4, log=None)
    assert sorted(p.name for p in lr_dir.iterdir()) == sorted(matlab)
    for name, ref in matlab.items():
        assert torch.equal(read_image(lr_dir / name), ref), name


def test_an_incomplete_set_is_never_scored_as_the_set(server, mirror_sets, bench_root, tmp_path, monkeypatch, capsys):
    from aesop_bench.cli import main

    www, url, _ = server
    mirror_sets(["set5", "set14"])
    monkeypatch.setenv("AESOP_BENCH_GITHUB_RAW", url)
    data = tmp_path / "data"
    mirrored = next(www.rglob("bird.png"))
    kept = mirrored.read_bytes()
    mirrored.unlink()  # the source lacks one file: the first download fails on it
    args = ["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr", "--quiet", "--data-root", str(data)]
    assert main(args + ["--out", str(tmp_path / "a")]) == 2
    capsys.readouterr()
    # offline, the rerun refuses the set and names the file, instead of a mean over four images
    assert main(args + ["--out", str(tmp_path / "b"), "--no-download"]) == 2
    err = capsys.readouterr().err
    assert "incomplete" in err and "bird.png" in err and "aesop-bench data download set5" in err
    assert not (tmp_path / "b" / "summary.json").exists()
    # with downloads allowed, the rerun finishes the set once the source has the file
    mirrored.write_bytes(kept)
    assert main(args + ["--out", str(tmp_path / "c")]) == 0
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["sets"]["set5"]["n_images"] == 5
    # an image that is not part of the set is refused too; the same folder given as a path is taken as it is
    shutil.copy(data / "Set5" / "HR" / "bird.png", data / "Set5" / "HR" / "bird2.png")
    assert main(args + ["--out", str(tmp_path / "d")]) == 2
    assert "not part of set5: bird2.png" in capsys.readouterr().err
    folder = str(data / "Set5" / "HR")
    assert main(["eval", "--model", "bicubic", "--sets", folder, "--metrics", "psnr", "--quiet", "--out",
                 str(tmp_path / "e")]) == 0
    assert json.loads((tmp_path / "e" / "summary.json").read_text())["sets"][folder]["n_images"] == 6
    # data verify reports every set, broken or not, and does not stop at the first
    (data / "Set5" / "HR" / "bird2.png").unlink()
    (data / "Set5" / "HR" / "baby.png").unlink()
    (data / "Set14" / "HR").mkdir(parents=True)
    capsys.readouterr()
    assert main(["data", "verify", "set5,set14,bsd100", "--data-root", str(data)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("set5: differs") and "missing: HR/baby.png" in out[0]
    assert out[1].startswith("set14: differs") and out[2].startswith("bsd100: missing (no BSD100 folder (any case) in ")


def test_readme_main_command_with_a_local_server(server, mirror_sets, bench_root, tmp_path):
    """The README's first command (after install), with the local server standing in for GitHub."""
    www, url, _ = server
    mirror_sets(["set5", "set14"])
    readme = (REPO / "README.md").read_text().splitlines()
    first = next(line for line in readme if line.startswith("pip install -e . && aesop-bench eval"))
    eval_args = first.split("&& aesop-bench ", 1)[1].split()
    env = dict(os.environ, AESOP_BENCH_GITHUB_RAW=url, AESOP_BENCH_DATA=str(tmp_path / "fresh"),
               AESOP_BENCH_HOME=str(tmp_path / "home"))
    proc = subprocess.run([sys.executable, "-m", "aesop_bench", *eval_args, "--quiet"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr
    assert "set5" in proc.stdout and "set14" in proc.stdout
    summary = (tmp_path / "runs" / "bicubic-paper" / "summary.json")
    assert summary.is_file()
    with open(REPO / "aesop_bench" / "data" / "fingerprints.csv") as f:
        n = sum(1 for r in csv.DictReader(f) if r["set"] in ("set5", "set14"))
    got = list((tmp_path / "fresh").rglob("*.png"))
    assert len(got) == n


def _deepinv_md5(folder):
    """deepinv's calculate_md5_for_folder, written out here: MD5 of the joined hex MD5s of the files by name."""
    import hashlib

    joined = "".join(hashlib.md5((folder / n).read_bytes()).hexdigest() for n in sorted(os.listdir(folder)))
    return hashlib.md5(joined.encode()).hexdigest()


@pytest.mark.parametrize("name", ["lsdir_val", "div2k_val"])
def test_archive_sets_are_verified_with_the_published_folder_checksum(name, server, bench_root, tmp_path,
                                                                      monkeypatch):
    """LSDIR's val1.tar.gz and DIV2K's zip from a local server: the HR folder's deepinv checksum (LSDIR: the MD5
    of the folder's MD5, as deepinv's split check) must match, each file's sha256 is recorded at the first
    verified download; a changed file and a truncated archive are refused, with nothing recorded or placed."""
    import dataclasses
    import hashlib
    import json

    from aesop_bench.data import manage
    from aesop_bench.data.sets import SETS, Archive

    www, url, _ = server
    src = tmp_path / "src"
    src.mkdir()
    for f in sorted((bench_root / "Set5" / "HR").iterdir()):
        shutil.copy(f, src / f.name)
    folder_md5 = _deepinv_md5(src)
    lsdir = name == "lsdir_val"
    published = hashlib.md5(folder_md5.encode()).hexdigest() if lsdir else folder_md5
    members = "val1/HR/val" if lsdir else "DIV2K_valid_HR"

    def build(path, files):
        if lsdir:
            with tarfile.open(path, "w:gz") as tf:
                for f in files:
                    tf.add(f, f"{members}/{f.name}")
                tf.add(files[0], "val1/X4/val/" + files[0].name)  # the LR folders travel with it, unused
        else:
            with zipfile.ZipFile(path, "w") as zf:
                for f in files:
                    zf.write(f, f"{members}/{f.name}")

    arc_name = "val1.tar.gz" if lsdir else "DIV2K_valid_HR.zip"
    entry = dataclasses.replace(SETS[name], n_images=5,
                                archive=Archive(f"{url}/{arc_name}", None, members, published, lsdir))
    monkeypatch.setitem(SETS, name, entry)
    data = tmp_path / "data"
    record = data / manage.RECORDED_HASHES
    # a changed file: the checksum fails, the download is deleted, nothing recorded or placed
    changed = tmp_path / "changed"
    shutil.copytree(src, changed)
    (changed / "bird.png").write_bytes((changed / "bird.png").read_bytes() + b"\0")
    build(www / arc_name, sorted(changed.iterdir()))
    with pytest.raises(AesopBenchError, match="do not match the published checksum"):
        manage.download_set(name, data, log=None)
    assert not record.exists() and not (data / entry.folder / "HR").exists()
    # a truncated archive: refused, deleted
    build(www / arc_name, sorted(src.iterdir()))
    (www / arc_name).write_bytes((www / arc_name).read_bytes()[:3000])
    with pytest.raises(AesopBenchError, match="cannot be extracted|do not match"):
        manage.download_set(name, data, log=None)
    assert not record.exists() and not (data / entry.folder / "HR").exists()
    # the real one
    build(www / arc_name, sorted(src.iterdir()))
    manage.download_set(name, data, log=None)
    assert sorted(p.name for p in (data / entry.folder / "HR").iterdir()) == sorted(p.name for p in src.iterdir())
    rec = json.loads(record.read_text())
    assert rec[f"{name}/HR/bird.png"] == hashlib.sha256((src / "bird.png").read_bytes()).hexdigest()
    assert manage.verify_set(name, data).status == "canonical"
    (data / entry.folder / "HR" / "bird.png").write_bytes(b"damaged")
    assert manage.verify_set(name, data).status == "differs"


def test_eval_fetch_only_fetches_all_seven_paper_sets_with_no_manual_step(server, mirror_sets, bench_root,
                                                                            tmp_path, monkeypatch, capsys):
    """`eval --sets all --fetch-only` under the paper protocol against a local server: LDL's test data (Set14,
    Manga109, General100, Urban100, DIV2K100 as an archive like its mirrors'), BSD100 pinned to its public
    commit, LSDIR from its archive with the folder checksum; nothing computed, nothing placed by hand, and the
    evaluation then finds every set offline. (LDL's sets other than Set14 and LSDIR are small stand-in images
    in the real layout and counts.)"""
    import dataclasses
    import hashlib

    import numpy as np
    from PIL import Image

    from aesop_bench.cli import main
    from aesop_bench.data import ldl
    from aesop_bench.data.ldl import resolve_for
    from aesop_bench.data.sets import PAPER_SETS, SETS, Archive
    from aesop_bench.protocols import get_protocol

    www, url, _ = server
    mirror_sets(["bsd100"])
    monkeypatch.setenv("AESOP_BENCH_GITHUB_RAW", url)
    rng = np.random.default_rng(0)

    def tiny(path, size):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)

    with zipfile.ZipFile(www / "LDL_testsets.zip", "w") as zf:
        for f in sorted((bench_root / "Set14" / "HR").iterdir()):
            img = Image.open(f).convert("RGB")
            buf = io.BytesIO()
            img.save(buf, "PNG")
            zf.writestr(f"testsets/Set14/HR/{f.name}", buf.getvalue())
            buf = io.BytesIO()
            img.resize((img.width // 4, img.height // 4), Image.BICUBIC).save(buf, "PNG")
            zf.writestr(f"testsets/Set14/LR/{f.name}", buf.getvalue())
        stage = tmp_path / "stage"
        for name in ("manga109", "general100", "urban100", "div2k_val"):
            folder = ldl.LDL_NAMES[name]
            for i in range(SETS[name].n_images):
                tiny(stage / folder / "HR" / f"img{i:03d}.png", 32)
                tiny(stage / folder / "LR" / f"img{i:03d}.png", 8)
        for f in sorted(stage.rglob("*.png")):
            zf.write(f, "testsets/" + f.relative_to(stage).as_posix())
    monkeypatch.setenv("AESOP_BENCH_LDL_SOURCE", f"{url}/LDL_testsets.zip")
    lsdir = tmp_path / "lsdir"
    for i in range(250):
        tiny(lsdir / f"{i + 1:07d}.png", 16)
    with tarfile.open(www / "val1.tar.gz", "w:gz") as tf:
        for f in sorted(lsdir.iterdir()):
            tf.add(f, f"val1/HR/val/{f.name}")
    joined = "".join(hashlib.md5(f.read_bytes()).hexdigest() for f in sorted(lsdir.iterdir()))
    checksum = hashlib.md5(hashlib.md5(joined.encode()).hexdigest().encode()).hexdigest()
    monkeypatch.setitem(SETS, "lsdir_val", dataclasses.replace(
        SETS["lsdir_val"], archive=Archive(f"{url}/val1.tar.gz", None, "val1/HR/val", checksum, True)))

    data = tmp_path / "data"
    assert main(["eval", "--model", "bicubic", "--sets", "all", "--metrics", "psnr,ssim", "--fetch-only",
                 "--data-root", str(data), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "total" in out and "fallback" not in out
    assert not (tmp_path / "run").exists()  # nothing computed
    paper = get_protocol("paper")
    for name in PAPER_SETS:
        res = resolve_for(name, data, paper)
        assert len(res.hr_files) == SETS[name].n_images and "fallback" not in res.data, name
        assert res.data["source"] == ("own" if name in ("bsd100", "lsdir_val") else "ldl"), name
