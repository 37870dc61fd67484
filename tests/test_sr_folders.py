"""`aesop-bench eval --sr DIR`: published networks' own outputs against their papers' numbers, name matching,
sizes, grayscale, content identity and resume, and reports of folder runs."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from aesop_bench.cli import main
from aesop_bench.errors import AesopBenchError
from aesop_bench.evaluation.folders import match_files


def _eval(capsys, *args):
    rc = main(["eval", "--quiet", *args])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out


def _summary(run):
    return json.loads((run / "summary.json").read_text())


@pytest.mark.parametrize("method, psnr, ssim", [("RDN", 32.47, 0.8990), ("RDNplus", 32.61, 0.9003)])
def test_published_rdn_outputs_give_the_published_numbers(method, psnr, ssim, shared_data, bench_root, tmp_path,
                                                          capsys):
    """RDN (CVPR 2018) Table 3, x4 BI, Set5: the authors' released SR images give their published means."""
    run = tmp_path / method
    _eval(capsys, "--sr", str(shared_data / "results" / method), "--sets", "set5", "--metrics", "psnr,ssim",
          "--out", str(run), "--data-root", str(bench_root))
    got = _summary(run)["sets"]["set5"]["metrics"]
    assert got["psnr"] == pytest.approx(psnr, abs=0.01)
    assert got["ssim"] == pytest.approx(ssim, abs=0.001)
    assert _summary(run)["model"]["name"] == method


def test_srresnet_set14_crops_four_images_and_equals_basicsr(shared_data, bench_root, tmp_path, capsys):
    """Four SRResNet Set14 outputs are cropped to a multiple of 4 and `bridge` has a grayscale HR: the run says which
    images were cropped, and every per-image PSNR/SSIM equals BasicSR's on the HR cropped by hand."""
    import cv2

    from tests.references import basicsr_archs

    basicsr_archs()  # installs the torchvision shim basicsr 1.4.2 needs
    from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim

    run = tmp_path / "srresnet"
    out = _eval(capsys, "--sr", str(shared_data / "results" / "SRResNet"), "--sets", "set5,set14",
                "--metrics", "psnr,ssim", "--out", str(run), "--data-root", str(bench_root), "--protocol", "basicsr")
    cropped = _summary(run)["sr_folder"]["cropped"]["set14"]
    assert sorted(cropped) == ["comic", "flowers", "ppt3", "zebra"]
    assert "set14: 4 image(s) evaluated on the SR's smaller area" in out.out
    assert "comic (248x360 of 250x361)" in out.err
    # the published SRResNet-MSE Set14 PSNR is 28.49 (computed under another convention: ~0.1 dB)
    assert _summary(run)["sets"]["set14"]["metrics"]["psnr"] == pytest.approx(28.49, abs=0.15)
    rows = {(r["set"], r["image"], r["metric"]): float(r["value"]) for r in csv.DictReader(open(run / "per_image.csv"))}
    # BasicSR converts to Y in float32: agreement to its rounding
    for sr_file in sorted((shared_data / "results" / "SRResNet" / "Set14").glob("*.png")):
        stem = sr_file.stem.replace("_SRResNet-MSE", "")
        sr = cv2.imread(str(sr_file), cv2.IMREAD_COLOR)
        hr = cv2.imread(str(bench_root / "Set14" / "HR" / f"{stem}.png"), cv2.IMREAD_COLOR)[: sr.shape[0], : sr.shape[1]]
        assert rows[("set14", stem, "psnr")] == pytest.approx(calculate_psnr(sr, hr, 4, test_y_channel=True), abs=1e-5)
        assert rows[("set14", stem, "ssim")] == pytest.approx(calculate_ssim(sr, hr, 4, test_y_channel=True), abs=1e-6)


def test_matching_rules():
    from pathlib import Path

    hr = [Path(f"{s}.png") for s in ("img", "img_1", "baby", "ppt3")]
    sr = [Path(n) for n in ("img_x4.png", "img_1_x4_SR.png", "baby-RDN.png", "ppt3.png")]
    got, ignored = match_files(hr, sr)
    assert {k: v.name for k, v in got.items()} == {"img.png": "img_x4.png", "img_1.png": "img_1_x4_SR.png",
                                                   "baby.png": "baby-RDN.png", "ppt3.png": "ppt3.png"}
    assert ignored == []
    with pytest.raises(AesopBenchError) as e:
        match_files(hr, [Path("img_x4.png"), Path("img_v2.png"), Path("babyx4.png"), Path("zebra_x4.png"),
                         Path("ppt3.png")])
    msg = str(e.value)
    assert "3 HR image(s) without an SR file: img_1.png, baby.png" not in msg  # counts are exact
    assert "2 HR image(s) without an SR file: img_1.png, baby.png" in msg
    assert "img: img_x4.png, img_v2.png" in msg
    assert "2 SR file(s) matching no HR image: babyx4.png, zebra_x4.png" in msg
    got, ignored = match_files(hr[2:], [Path("baby_RDN_x4.png"), Path("ppt3_RDN_x4.png"), Path("notes.png")],
                               suffix="_RDN_x4")
    assert {k: v.name for k, v in got.items()} == {"baby.png": "baby_RDN_x4.png", "ppt3.png": "ppt3_RDN_x4.png"}
    assert ignored == ["notes.png"]


def _copy_set5(shared_data, dst, sets_subfolder=True):
    target = dst / "Set5" if sets_subfolder else dst
    shutil.copytree(shared_data / "results" / "RDN" / "Set5", target)
    return target


def test_single_set_folder_and_size_errors(shared_data, bench_root, tmp_path, capsys):
    flat = _copy_set5(shared_data, tmp_path / "flat", sets_subfolder=False)
    _eval(capsys, "--sr", str(flat), "--sets", "set5", "--out", str(tmp_path / "r1"), "--data-root", str(bench_root))
    assert _summary(tmp_path / "r1")["sets"]["set5"]["metrics"]["psnr"] == pytest.approx(32.47, abs=0.01)
    # several sets need one subfolder per set
    assert main(["eval", "--quiet", "--sr", str(flat), "--sets", "set5,set14", "--out", str(tmp_path / "r2"),
                 "--data-root", str(bench_root)]) == 2
    assert "no subfolder for set set5" in capsys.readouterr().err
    # an SR larger than its HR, and one smaller by 12 pixels, are refused with the file and both sizes
    img = np.array(Image.open(flat / "baby_RDN_x4.png"))
    Image.fromarray(np.pad(img, ((0, 4), (0, 0), (0, 0)))).save(flat / "baby_RDN_x4.png")
    Image.fromarray(np.array(Image.open(flat / "bird_RDN_x4.png"))[:-12]).save(flat / "bird_RDN_x4.png")
    assert main(["eval", "--quiet", "--sr", str(flat), "--sets", "set5", "--out", str(tmp_path / "r3"),
                 "--data-root", str(bench_root)]) == 2
    err = capsys.readouterr().err
    assert "baby_RDN_x4.png is 512x516 but its HR baby.png is 512x512" in err
    assert "bird_RDN_x4.png is 288x276 but its HR bird.png is 288x288" in err
    # neither or both of --model and --sr
    assert main(["eval", "--sets", "set5"]) == 2
    assert "give --model NAME" in capsys.readouterr().err


def test_editing_one_image_recomputes_that_image_only(shared_data, bench_root, tmp_path, capsys):
    root = tmp_path / "mine"
    folder = _copy_set5(shared_data, root)
    run = tmp_path / "run"
    args = ["--sr", str(root), "--sets", "set5", "--metrics", "psnr,ssim", "--out", str(run),
            "--data-root", str(bench_root)]
    _eval(capsys, *args)
    first = _summary(run)
    lines = (run / "rows.jsonl").read_text().splitlines()
    assert len(lines) == 10
    _eval(capsys, *args)  # nothing changed: nothing computed
    assert len((run / "rows.jsonl").read_text().splitlines()) == 10
    img = np.array(Image.open(folder / "bird_RDN_x4.png"))
    img[100:140, 100:140] = 0
    Image.fromarray(img).save(folder / "bird_RDN_x4.png")
    _eval(capsys, *args)
    new = [json.loads(x) for x in (run / "rows.jsonl").read_text().splitlines()[10:]]
    assert {(r["image"], r["metric"]) for r in new} == {("bird", "psnr"), ("bird", "ssim")}
    second = _summary(run)
    assert second["sets"]["set5"]["metrics"]["psnr"] < first["sets"]["set5"]["metrics"]["psnr"] - 0.1
    assert second["sr_folder"]["content"] != first["sr_folder"]["content"]
    per_image = {(r["image"], r["metric"]): float(r["value"]) for r in csv.DictReader(open(run / "per_image.csv"))}
    assert len(per_image) == 10


def test_matlab_protocol_grayscale_hr_with_rgb_sr(shared_data, bench_root, tmp_path, capsys):
    """Set14 `bridge`: a grayscale HR and an RGB SR. Under `matlab` (grayscale kept) the SR is reduced with
    MATLAB's rgb2gray weights and the comparison is single-channel, as for a grayscale model output."""
    root = tmp_path / "sr"
    (root / "Set14").mkdir(parents=True)
    shutil.copy(shared_data / "results" / "SRResNet" / "Set14" / "bridge_SRResNet-MSE.png", root / "Set14")
    hr_dir = tmp_path / "data" / "Set14" / "HR"
    hr_dir.mkdir(parents=True)
    shutil.copy(bench_root / "Set14" / "HR" / "bridge.png", hr_dir)
    run = tmp_path / "run"
    folder = str(hr_dir.parent)  # one image of Set14: a folder evaluated as it is, not the registered set
    _eval(capsys, "--sr", str(root), "--sets", folder, "--metrics", "psnr", "--protocol", "matlab",
          "--out", str(run))
    sr = np.array(Image.open(root / "Set14" / "bridge_SRResNet-MSE.png").convert("RGB")).astype(np.float64)
    gray = np.round(sr @ np.array([0.298936021293775, 0.587043074451121, 0.114020904255103]))
    hr = np.array(Image.open(hr_dir / "bridge.png"))
    assert hr.ndim == 2
    mse = np.mean((gray[4:-4, 4:-4] - hr[4:-4, 4:-4]) ** 2)
    assert _summary(run)["sets"][folder]["metrics"]["psnr"] == pytest.approx(10 * np.log10(255 ** 2 / mse), abs=1e-3)


def test_folder_runs_in_reports(shared_data, bench_root, tmp_path, capsys):
    runs = []
    for method in ("RDN", "RDNplus"):
        runs.append(tmp_path / method)
        _eval(capsys, "--sr", str(shared_data / "results" / method), "--sets", "set5", "--metrics", "psnr,ssim",
              "--out", str(runs[-1]), "--data-root", str(bench_root), *(["--name", "RDN+"] if method == "RDNplus" else []))
    assert main(["report", *map(str, runs), "--layout", "generic", "--metrics", "psnr,ssim"]) == 0
    table = capsys.readouterr().out
    assert "| RDN | RDN+ |" in table.replace("**", "")
    assert "32.610" in table and "32.469" in table
    assert main(["compare", *map(str, runs), "--metric", "psnr"]) == 0
    assert "RDN+ minus RDN" in capsys.readouterr().out
    # plots read the folder runs' own images
    sheet = tmp_path / "crops.png"
    assert main(["plot", "crops", *map(str, runs), "--set", "set5", "--image", "bird", "--data-root", str(bench_root),
                 "--out", str(sheet)]) == 0, capsys.readouterr().err
    assert sheet.with_suffix(".pdf").is_file() and Image.open(sheet).size[0] > 600
    from aesop_bench.report.plots import crop_panels
    from aesop_bench.report.runs import load_runs

    _, _, panels = crop_panels(load_runs(runs), "set5", "bird", None, bench_root)
    assert [p[0] for p in panels] == ["HR", "Bicubic", "RDN", "RDN+"]
    assert panels[3][2].startswith("PSNR 3")  # RDN+'s own per-image PSNR under its crop
    pd_png = tmp_path / "pd.png"
    assert main(["plot", "pd", *map(str, runs), "--set", "set5", "--x", "ssim", "--y", "psnr",
                 "--out", str(pd_png)]) == 0, capsys.readouterr().err
    assert pd_png.is_file()
