"""The paper protocol per set: Set14 (and Manga109, General100, Urban100, DIV2K-val) from LDL's HR and LR files
as the authors' test configurations read them, the set's own mod-12 files where LDL's are not at hand (said and
recorded), and one image area for every metric of a result folder's row."""

from __future__ import annotations

import csv
import json
import shutil
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aesop_bench.cli import main
from aesop_bench.data import ldl
from aesop_bench.data.imresize import imresize
from aesop_bench.errors import AesopBenchError
from aesop_bench.imageio import read_image


def _ldl_tree(bench_root, dest):
    """Set14 laid out as LDL distributes it (``Set14/HR``, ``Set14/LR`` with the HR's names); the LR files are
    made by Pillow's bicubic (not MATLAB's), so a run that read them and one that made its own LR differ; one HR
    is LDL-cropped to a multiple of 4 and one pixel of another changed, for the comparison with the public copy."""
    hr_dir, lr_dir = dest / "Set14" / "HR", dest / "Set14" / "LR"
    hr_dir.mkdir(parents=True)
    lr_dir.mkdir(parents=True)
    for f in sorted((bench_root / "Set14" / "HR").glob("*.png")):
        img = Image.open(f).convert("RGB")
        w, h = img.size
        if f.stem == "baboon":
            img = img.crop((0, 0, w - w % 4 - 4, h - h % 4))
        if f.stem == "lenna":
            a = np.asarray(img).copy()
            a[10, 10] = 255 - a[10, 10]
            img = Image.fromarray(a)
        img.save(hr_dir / f.name)
        w, h = img.size
        img.crop((0, 0, w - w % 4, h - h % 4)).resize((w // 4, h // 4), Image.BICUBIC).save(lr_dir / f.name)
    return dest


def _data_root(bench_root, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "Set14").symlink_to(bench_root / "Set14")
    return root


def _rows(run):
    return {(r["set"], r["image"], r["metric"]): float(r["value"]) for r in csv.DictReader(open(run / "per_image.csv"))}


def test_paper_protocol_reads_ldl_files_for_set14_and_records_them(bench_root, tmp_path, monkeypatch, capsys):
    """Downloaded from an archive (as LDL's OneDrive mirror gives it), hashes recorded; bicubic PSNR per image
    equals BasicSR's calculate_psnr on LDL's HR cropped to its LR x 4 and the SR made from LDL's LR file."""
    from tests.references import basicsr_archs

    basicsr_archs()
    from basicsr.metrics.psnr_ssim import calculate_psnr

    archive = tmp_path / "LDL_testsets.zip"
    tree = _ldl_tree(bench_root, tmp_path / "tree")
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(tree.rglob("*.png")):
            z.write(f, "testsets/" + f.relative_to(tree).as_posix())
    monkeypatch.setenv("AESOP_BENCH_LDL_SOURCE", str(archive))
    root = _data_root(bench_root, tmp_path)
    run = tmp_path / "run"
    assert main(["eval", "--model", "bicubic", "--sets", "set14", "--metrics", "psnr,lr_psnr", "--quiet",
                 "--data-root", str(root), "--out", str(run)]) == 0
    data = json.loads((run / "summary.json").read_text())["sets"]["set14"]["data"]
    assert data["source"] == "ldl" and "LDL's LR files" in data["lr"] and "multiple of 4" in data["area"]
    assert "fallback" not in data
    recorded = json.loads((root / ldl.RECORD).read_text())
    assert "LDL/Set14/LR/baboon.png" in recorded and "LDL/Set14/HR/baboon.png" in recorded
    rows = _rows(run)
    for f in sorted((root / "LDL" / "Set14" / "HR").glob("*.png")):
        hr = read_image(f).expand(3, -1, -1)
        h, w = hr.shape[-2:]
        hr = hr[:, : h - h % 4, : w - w % 4]
        sr = imresize(read_image(root / "LDL" / "Set14" / "LR" / f.name), 4.0)
        bgr = [x.permute(1, 2, 0).numpy()[..., ::-1].copy() for x in (sr, hr)]
        assert rows[("set14", f.stem, "psnr")] == pytest.approx(calculate_psnr(bgr[0], bgr[1], 4, test_y_channel=True),
                                                                abs=1e-4), f.stem
    # the set's own files under the mod-12 rule give other numbers (MATLAB LR instead of Pillow's)
    own = tmp_path / "own"
    assert main(["eval", "--model", "bicubic", "--sets", "set14", "--metrics", "psnr", "--quiet", "--no-download",
                 "--data-root", str(bench_root), "--out", str(own)]) == 0
    own_rows = _rows(own)
    assert sum(abs(rows[k] - own_rows[k]) > 1e-3 for k in own_rows) >= 10

    # an LDL file changed after its first download is refused, naming it
    lr = root / "LDL" / "Set14" / "LR" / "comic.png"
    img = np.asarray(Image.open(lr)).copy()
    img[0, 0] = 255 - img[0, 0]
    Image.fromarray(img).save(lr)
    assert main(["eval", "--model", "bicubic", "--sets", "set14", "--metrics", "psnr", "--quiet",
                 "--data-root", str(root), "--out", str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err
    assert "comic.png" in err and "differ from their first download" in err

    # each LDL HR image against the public copy over the common area
    lines = ldl.compare_with_public("set14", root)
    assert lines[0].startswith("Set14: 14 LDL HR images; 12 identical") and "2 differ" in lines[0]
    baboon = next(x for x in lines if "baboon" in x)
    assert "identical" in baboon and "public 500x480" in baboon and "LDL 496x480" in baboon
    assert "1 pixels differ" in next(x for x in lines if "lenna" in x)


def test_without_ldl_files_the_paper_protocol_falls_back_and_says_so(bench_root, tmp_path, capsys):
    """LDL's data not at hand (its download fails): the set's own files under the mod-12 rule, said in the log,
    recorded in the summary, and noted under the report's table."""
    run = tmp_path / "run"
    assert main(["eval", "--model", "bicubic", "--sets", "set14", "--metrics", "psnr",
                 "--data-root", str(bench_root), "--out", str(run)]) == 0
    err = capsys.readouterr().err
    assert "LDL's test data" in err and "its own files were used under the mod-12 rule" in err
    data = json.loads((run / "summary.json").read_text())["sets"]["set14"]["data"]
    assert data["source"] == "own" and "multiple of 12" in data["area"] and "LDL" in data["fallback"]
    assert main(["report", str(run), "--sets", "set14", "--metrics", "psnr", "--compare-paper"]) == 0
    out = capsys.readouterr().out
    assert "not the paper's test data: set14 was read from its own files under the mod-12 rule" in out


def test_ldl_from_google_drive_through_gdown(bench_root, tmp_path, monkeypatch):
    """The Drive folder through gdown: its listing (a stand-in for the network calls gives what Drive would, here
    a zip per set), only the files of the sets asked for fetched, archives inside extracted, the sets placed under
    DATA_ROOT/LDL."""
    import gdown

    monkeypatch.delenv("AESOP_BENCH_LDL_SOURCE")
    tree = _ldl_tree(bench_root, tmp_path / "tree")
    drive = tmp_path / "drive"
    drive.mkdir()
    with zipfile.ZipFile(drive / "Set14.zip", "w") as z:
        for f in sorted(tree.rglob("*.png")):
            z.write(f, f.relative_to(tree).as_posix())
    (drive / "Urban100.zip").write_bytes(b"not fetched")
    fetched = []

    def listing(id=None, output=None, quiet=False, skip_download=False, **kw):
        assert id == ldl.DRIVE_FOLDER and skip_download
        return [types.SimpleNamespace(id=f"id-{n}", path=n, local_path=str(Path(output) / n))
                for n in ("Set14.zip", "Urban100.zip")]

    def download(id=None, output=None, quiet=False, resume=False, **kw):
        fetched.append((id, resume))
        shutil.copy(drive / id[3:], output)
        return output

    monkeypatch.setattr(gdown, "download_folder", listing)
    monkeypatch.setattr(gdown, "download", download)
    root = tmp_path / "data"
    assert ldl.download(root, log=None, sets=["set14"]) == root / "LDL"
    assert fetched == [("id-Set14.zip", True)]
    res = ldl.resolve_ldl("set14", root, 4)
    assert res is not None and len(res.hr_files) == 14 and res.lr_source == "folder" and res.modcrop == 4
    with pytest.raises(AesopBenchError, match="Urban100"):  # the file Drive gave is not an archive of the set
        ldl.download(root, log=None, sets=["urban100"])


def test_a_result_folder_row_compares_one_area(bench_root, tmp_path):
    """A result folder's LR-PSNR uses the LR of the SR files' area (cropped to the scale), as its PSNR does, not
    the LR of the HR cropped to the protocol's modcrop of 12: the folder run's values equal the model run's on
    the same area (the mod-4 area of Set5, whose sizes are not multiples of 12)."""
    model_run = tmp_path / "model"
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr,lr_psnr", "--quiet",
                 "--modcrop", "4", "--save-sr", "--data-root", str(bench_root), "--out", str(model_run)]) == 0
    folder_run = tmp_path / "folder"
    assert main(["eval", "--sr", str(model_run / "sr"), "--sets", "set5", "--metrics", "psnr,lr_psnr", "--quiet",
                 "--data-root", str(bench_root), "--out", str(folder_run)]) == 0
    a, b = _rows(model_run), _rows(folder_run)
    assert a.keys() == b.keys()
    for k in a:
        assert b[k] == pytest.approx(a[k], abs=1e-9), k


def test_general100_ldl_names_match_the_pinned_copy_unpadded(tmp_path):
    """LDL may name General100's images ``im_1.png`` where the pinned copy has ``im_001.png``: the comparison
    with the public copy pairs them by number (one identical, one with a changed pixel), with none unmatched."""
    from aesop_bench.data.sets import fingerprints

    rows = fingerprints("general100")
    assert [r["file"] for r in rows] == [f"HR/im_{i:03d}.png" for i in range(1, 101)]
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for i in range(1, 101):
        img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        (root / "General100" / "HR").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / "General100" / "HR" / f"im_{i:03d}.png")
        if i <= 2:
            for sub in ("HR", "LR"):
                (root / "LDL" / "General100" / sub).mkdir(parents=True, exist_ok=True)
            if i == 2:
                img[3, 5] = 255 - img[3, 5]
            Image.fromarray(img).save(root / "LDL" / "General100" / "HR" / f"im_{i}.png")
            Image.fromarray(img[::4, ::4]).save(root / "LDL" / "General100" / "LR" / f"im_{i}.png")
    lines = ldl.compare_with_public("general100", root)
    assert lines[0].startswith("General100: 2 LDL HR images; 1 identical") and "1 differ" in lines[0], lines
    assert "without a public copy" not in lines[0]
    assert "im_2: LDL 16x16, public 16x16; over the common 16x16: 1 pixels differ" in lines[1], lines
