"""Bad input: every case gets an error that names the file or value and what to do."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from aesop_bench.cli import main
from aesop_bench.data.sets import expand_sets
from aesop_bench.errors import AesopBenchError, ConfigError, InputError
from aesop_bench.protocols import get_protocol
from aesop_bench.evaluation.config import EvalConfig, as_source
from aesop_bench.evaluation.runner import run_evaluation as evaluate
from aesop_bench.imageio import read_image
from aesop_bench.metrics.registry import expand_metrics
from aesop_bench.models.options import RunOptions


def _set_with(tmp_path, images: dict) -> None:
    hr = tmp_path / "data" / "Set5" / "HR"
    hr.mkdir(parents=True)
    for name, img in images.items():
        img.save(hr / name) if isinstance(img, Image.Image) else (hr / name).write_bytes(img)


def _run(tmp_path, sets=None, metrics=("psnr",), batch=None, **kw):
    # by default a folder of the user's named Set5, given by its path: evaluated as it is (the registered set5
    # would be refused as incomplete)
    cfg = EvalConfig(source=as_source("bicubic"), sets=sets or [str(tmp_path / "data" / "Set5")], metrics=list(metrics),
                     protocol=get_protocol("basicsr", **kw), data_root=tmp_path / "data", out_dir=tmp_path / "out",
                     progress=False, download=False, log=lambda m: None, run=RunOptions(batch=batch))
    return evaluate(cfg)


def _stored(tmp_path) -> set[tuple[str, str]]:
    """(image, metric) of every value in the run folder's rows."""
    lines = (tmp_path / "out" / "rows.jsonl").read_text().splitlines()
    return {(r["image"], r["metric"]) for r in map(json.loads, lines)}


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
    with pytest.raises(InputError, match=r"b\.png: cannot read image"):
        _run(tmp_path)
    # what was computed before the bad file is kept
    assert _stored(tmp_path) == {("a", "psnr")}


def test_a_corrupt_image_among_good_ones_fails_alone(tmp_path):
    """A PNG cut short after its header reads as 48x48 like the others, so it shares their batch: the batch's
    reading fails, then each image is done alone; the good ones are stored and the error names the bad one."""
    buf = io.BytesIO()
    _rgb(seed=3).save(buf, format="PNG")
    cut = buf.getvalue()[: len(buf.getvalue()) // 2]
    _set_with(tmp_path, {"a.png": _rgb(seed=1), "b.png": cut, "c.png": _rgb(seed=2)})
    with pytest.raises(InputError, match=r"b\.png: cannot read image \(image file is truncated\)"):
        _run(tmp_path, batch=8)
    assert _stored(tmp_path) == {("a", "psnr"), ("c", "psnr")}


@pytest.mark.parametrize("kind", [InputError, ConfigError])
def test_only_bad_input_is_retried_image_by_image(tmp_path, monkeypatch, kind):
    """SSIM fails on one image of a batch of three. Bad input is worth retrying image by image: the other two
    keep their SSIM and the error names the file. A configuration error would fail every image alike: it is raised
    once, as it is, and stores no SSIM at all (PSNR, computed first, is kept)."""
    import torch

    from aesop_bench.metrics import fidelity

    _set_with(tmp_path, {f"{k}.png": _rgb(seed=i) for i, k in enumerate("abc")})
    bad = read_image(tmp_path / "data" / "Set5" / "HR" / "b.png")
    real, calls = fidelity.ssim, []

    def ssim(sr, hr, *a, **k):
        calls.append(len(hr))
        if any(torch.equal(h, bad) for h in hr):
            raise kind("undefined here")
        return real(sr, hr, *a, **k)

    monkeypatch.setattr(fidelity, "ssim", ssim)
    with pytest.raises(kind) as info:
        _run(tmp_path, metrics=("psnr", "ssim"), batch=8)
    psnr = {(k, "psnr") for k in "abc"}
    if kind is InputError:
        assert str(info.value) == f"{tmp_path / 'data' / 'Set5' / 'HR' / 'b.png'}: undefined here"
        assert calls == [3, 1, 1, 1]
        assert _stored(tmp_path) == psnr | {("a", "ssim"), ("c", "ssim")}
    else:
        assert str(info.value) == "undefined here" and calls == [3]
        assert _stored(tmp_path) == psnr


def test_missing_weights_met_while_scoring_are_not_blamed_on_an_image(tmp_path):
    """NIQE's weights, absent under --no-download, are found missing when its scorer is built for the first
    batch: one error about the weights, not one about the first image."""
    _set_with(tmp_path, {"a.png": _rgb(seed=1), "b.png": _rgb(seed=2)})
    with pytest.raises(AesopBenchError, match=r"^weights 'niqe_pristine' .*not in the cache") as info:
        _run(tmp_path, metrics=("niqe",), batch=8)
    assert not isinstance(info.value, InputError)


def test_sixteen_bit_image_is_refused(tmp_path):
    arr = (np.arange(48 * 48, dtype=np.uint16).reshape(48, 48) * 20)
    _set_with(tmp_path, {"deep.png": Image.fromarray(arr)})
    with pytest.raises(InputError, match=r"deep\.png: .*16-bit"):
        _run(tmp_path)


def test_rgba_rule(tmp_path):
    opaque = _rgb().convert("RGBA")
    p = tmp_path / "opaque.png"
    opaque.save(p)
    assert read_image(p).shape == (3, 48, 48)  # fully opaque alpha is dropped
    arr = np.array(opaque)
    arr[0, 0, 3] = 10
    Image.fromarray(arr).save(p)
    with pytest.raises(InputError, match="transparent"):
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
    cfg = EvalConfig(source=as_source("bicubic"), sets=expand_sets(str(folder)), metrics=["psnr", "ssim"],
                     protocol=get_protocol("matlab"), data_root=tmp_path, out_dir=tmp_path / "out",
                     progress=False, download=False, log=lambda m: None)
    out = evaluate(cfg)["sets"][str(folder)]
    assert out["n_images"] == 5
    # published 28.42 / 0.8104, within the tolerances of test_bicubic_reproduces_published_numbers
    assert abs(out["metrics"]["psnr"] - 28.42) <= 0.02 and abs(out["metrics"]["ssim"] - 0.8104) <= 0.002
