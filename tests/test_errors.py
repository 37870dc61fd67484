"""Bad input: every case gets an error that names the file or value and what to do."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from aesop_bench.cli import main
from aesop_bench.data.sets import expand_sets
from aesop_bench.errors import AesopBenchError
from aesop_bench.protocols import get_protocol
from aesop_bench.evaluation.config import EvalConfig
from aesop_bench.evaluation.runner import run_evaluation as evaluate
from aesop_bench.imageio import read_image
from aesop_bench.metrics.registry import expand_metrics


def _set_with(tmp_path, images: dict) -> None:
    hr = tmp_path / "data" / "Set5" / "HR"
    hr.mkdir(parents=True)
    for name, img in images.items():
        img.save(hr / name) if isinstance(img, Image.Image) else (hr / name).write_bytes(img)


def _run(tmp_path, sets=None, **kw):
    # by default a folder of the user's named Set5, given by its path: evaluated as it is (the registered set5
    # would be refused as incomplete)
    cfg = EvalConfig(model="bicubic", sets=sets or [str(tmp_path / "data" / "Set5")], metrics=["psnr"], protocol=get_protocol("basicsr", **kw),
                     data_root=tmp_path / "data", out_dir=tmp_path / "out", progress=False, download=False,
                     log=lambda m: None)
    return evaluate(cfg)


def _rgb(h=48, w=48, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_unknown_names(tmp_path):
    with pytest.raises(AesopBenchError, match="unknown benchmark set 'set99'"):
        expand_sets("set5,set99")
    with pytest.raises(AesopBenchError, match="unknown metric 'psnrr'"):
        expand_metrics("psnr,psnrr")
    with pytest.raises(AesopBenchError, match="unknown protocol 'mat'"):
        get_protocol("mat")
    with pytest.raises(AesopBenchError, match="modcrop 6 must be a multiple of the scale 4"):
        get_protocol("basicsr", modcrop=6)


def test_all_means_the_papers_seven():
    assert expand_sets("all") == ["set14", "manga109", "general100", "urban100", "div2k_val", "bsd100", "lsdir_val"]
    assert expand_sets("Set5,B100,LSDIR") == ["set5", "bsd100", "lsdir_val"]


def test_missing_set_folder_says_how_to_get_it(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(AesopBenchError, match=r"set 'set5' not found .*aesop-bench data download set5"):
        _run(tmp_path, sets=["set5"])


def test_corrupt_image_is_named(tmp_path):
    _set_with(tmp_path, {"a.png": _rgb(), "b.png": b"\x89PNG\r\n\x1a\nnot really a png"})
    with pytest.raises(AesopBenchError, match=r"b\.png: cannot read image"):
        _run(tmp_path)
    # what was computed before the bad file is kept
    assert (tmp_path / "out" / "rows.jsonl").read_text().count('"image": "a"') == 1


def test_sixteen_bit_image_is_refused(tmp_path):
    arr = (np.arange(48 * 48, dtype=np.uint16).reshape(48, 48) * 20)
    _set_with(tmp_path, {"deep.png": Image.fromarray(arr)})
    with pytest.raises(AesopBenchError, match=r"deep\.png: .*16-bit"):
        _run(tmp_path)


def test_rgba_rule(tmp_path):
    opaque = _rgb().convert("RGBA")
    p = tmp_path / "opaque.png"
    opaque.save(p)
    assert read_image(p).shape == (3, 48, 48)  # fully opaque alpha is dropped
    arr = np.array(opaque)
    arr[0, 0, 3] = 10
    Image.fromarray(arr).save(p)
    with pytest.raises(AesopBenchError, match="transparent"):
        read_image(p)


def test_palette_and_grayscale_are_read(tmp_path):
    p = tmp_path / "pal.png"
    _rgb().convert("P").save(p)
    assert read_image(p).shape == (3, 48, 48)
    _rgb().convert("L").save(p)
    assert read_image(p).shape == (1, 48, 48)


def test_lr_folder_mismatches(tmp_path):
    _set_with(tmp_path, {"a.png": _rgb(48, 48), "b.png": _rgb(48, 48, 1)})
    lr = tmp_path / "data" / "Set5" / "LR_bicubic" / "X4"
    lr.mkdir(parents=True)
    _rgb(12, 12).save(lr / "ax4.png")
    with pytest.raises(AesopBenchError, match=r"b\.png: no LR image for x4"):
        _run(tmp_path, lr_source="folder")
    _rgb(12, 13).save(lr / "bx4.png")
    shutil.rmtree(tmp_path / "out")
    with pytest.raises(AesopBenchError, match=r"bx4\.png: LR size 13x12 does not match HR b\.png"):
        _run(tmp_path, lr_source="folder")


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    rc = main(["eval", "--model", "bicubic", "--sets", "nope", "--data-root", str(tmp_path)])
    assert rc == 2
    assert "unknown benchmark set 'nope'" in capsys.readouterr().err
    rc = main(["eval", "--model", "esrgan9", "--sets", "set5", "--data-root", str(tmp_path)])
    assert rc == 2
    assert "unknown model 'esrgan9'" in capsys.readouterr().err


def test_folder_of_images_is_a_set(tmp_path, bench_root):
    # Set5's images in a folder of the user's: evaluated as a set, they give the published bicubic numbers
    folder = tmp_path / "mine"
    folder.mkdir()
    for f in (bench_root / "Set5" / "HR").glob("*.png"):
        shutil.copy(f, folder / f.name)
    cfg = EvalConfig(model="bicubic", sets=expand_sets(str(folder)), metrics=["psnr", "ssim"],
                     protocol=get_protocol("matlab"), data_root=tmp_path, out_dir=tmp_path / "out",
                     progress=False, download=False, log=lambda m: None)
    out = evaluate(cfg)["sets"][str(folder)]
    assert out["n_images"] == 5
    # published 28.42 / 0.8104, within the tolerances of test_bicubic_reproduces_published_numbers
    assert abs(out["metrics"]["psnr"] - 28.42) <= 0.02 and abs(out["metrics"]["ssim"] - 0.8104) <= 0.002
