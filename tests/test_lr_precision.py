"""The LR the protocols make, against independent references, and the LR folders training pairs with its HR.

Under ``paper`` the LR of the sets read from their own files (BSD100, LSDIR) is the authors'
``sr_dataset_fp64mod12`` LR: MATLAB bicubic of the mod-12 HR in double precision, rounded once to 8 bits. The
``basicsr`` and ``matlab`` protocols keep MATLAB's uint8 path (rounded after each pass), which made the classic
LR files (tests/test_imresize.py checks it against the MATLAB-made Set5 LR, bit for bit)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import aesop_bench as ab
from aesop_bench.cli import main
from aesop_bench.data.imresize import imresize
from aesop_bench.data.sets import list_images
from aesop_bench.data.transforms import matlab_lr, mod_crop, protocol_lr, to_rgb
from aesop_bench.errors import AesopBenchError
from aesop_bench.imageio import read_image
from aesop_bench.protocols import get_protocol


def _basicsr_imresize():
    from tests.references import basicsr_archs

    basicsr_archs()
    from basicsr.utils.matlab_functions import imresize as basicsr_imresize

    return basicsr_imresize


def _bsd100(bench_root) -> list:
    files = list_images(bench_root / "BSD100" / "HR")
    assert len(files) == 100
    return files


def test_paper_lr_equals_the_float64_loop_reference_exactly(bench_root):
    """Against the loop-based numpy port of MATLAB's double path (float64 throughout): equal on every value."""
    from benchmarks.reference_impls import matlab_imresize_numpy

    for f in _bsd100(bench_root)[:5]:
        raw = to_rgb(read_image(f))
        hr = mod_crop(raw, 12).permute(1, 2, 0).numpy()
        ref = np.floor(np.clip(matlab_imresize_numpy(hr.astype(np.float64) / 255, 0.25), 0, 1) * 255 + 0.5)
        got = protocol_lr(raw, get_protocol("paper")).permute(1, 2, 0).numpy()
        assert np.array_equal(got, ref.astype(np.uint8)), f.name


def test_uint8_path_differs_on_a_tenth_of_bsd100_lr_and_basicsr_matlab_keep_it(bench_root):
    """The uint8 path (the paper protocol's LR before version 2, and the basicsr/matlab protocols' LR) moves
    10.5% of BSD100's mod-12 LR values, by up to 6 levels; the paper protocol makes matlab_lr's LR, the others
    the uint8 path's LR of the HR cropped to the scale."""
    moved = total = 0
    for k, f in enumerate(_bsd100(bench_root)):
        raw = to_rgb(read_image(f))
        hr = mod_crop(raw, 12)
        double, uint8 = matlab_lr(hr, 4), imresize(hr, 0.25)
        if k < 3:
            assert torch.equal(protocol_lr(raw, get_protocol("paper")), double)
            assert torch.equal(protocol_lr(raw, get_protocol("paper", lr_precision="uint8")), uint8)
            for name in ("basicsr", "matlab"):
                assert torch.equal(protocol_lr(raw, get_protocol(name)), imresize(mod_crop(raw, 4), 0.25))
        assert int((double.int() - uint8.int()).abs().max()) <= 6
        moved += int((double != uint8).sum())
        total += double.numel()
    assert moved / total == pytest.approx(0.105, abs=5e-4)


def test_bicubic_bsd100_psnr_under_paper_is_25_9482_from_basicsr_lr(bench_root):
    """The paper protocol's BSD100 LR against BasicSR's MATLAB-imresize port, and bicubic's BSD100 PSNR under
    ``paper``: 25.9482 dB (25.9472 dB with the uint8-path LR of protocol version 1).

    LR: every value the paper protocol makes equals BasicSR's port run on the mod-12 HR in [0, 1] and rounded once
    (``round(x * 255)``), except where BasicSR's float32 arithmetic lands on the other side of a rounding tie:
    there the two differ by one level and BasicSR's own value lies within 1e-4 of the tie (14 of 2,808,000).

    PSNR: the expected value is derived without the project's LR or metric code: that BasicSR LR, SR by MATLAB's
    uint8-path x4 bicubic (the bicubic model; the uint8 path equals the MATLAB-made Set5 files bit for bit,
    tests/test_imresize.py), PSNR written out from the paper's definition (BT.601 Y not rounded, border 4,
    float64, 1e-8 added to the MSE on the 0-1 scale): 25.948230 dB, against the evaluator's 25.948231 dB."""
    basicsr_imresize = _basicsr_imresize()
    weights = np.array([65.481, 128.553, 24.966])

    def psnr(sr, hr):
        y = [(16 + (x.permute(1, 2, 0).numpy().astype(np.float64) / 255) @ weights)[4:-4, 4:-4] / 255
             for x in (sr, hr)]
        return 10 * np.log10(1 / (np.mean((y[0] - y[1]) ** 2) + 1e-8))

    ref, old, total, ties = [], [], 0, 0
    for f in _bsd100(bench_root):
        raw = to_rgb(read_image(f))
        hr = mod_crop(raw, 12)
        exact = np.clip(basicsr_imresize(hr.permute(1, 2, 0).numpy().astype(np.float64) / 255, 0.25), 0, 1) * 255
        exact = torch.from_numpy(exact.astype(np.float64)).permute(2, 0, 1)
        lr = torch.floor(exact + 0.5).to(torch.uint8)
        made = protocol_lr(raw, get_protocol("paper"))
        off = made != lr
        assert made.shape == lr.shape and int((made.int() - lr.int()).abs().max()) <= 1, f.name
        assert bool(((exact[off] - exact[off].floor() - 0.5).abs() < 1e-4).all()), f.name
        ties, total = ties + int(off.sum()), total + lr.numel()
        ref.append(psnr(imresize(lr, 4.0), hr))
        old.append(psnr(imresize(imresize(hr, 0.25), 4.0), hr))
    assert total == 2_808_000 and ties <= 20
    assert round(float(np.mean(ref)), 4) == 25.9482
    assert round(float(np.mean(old)), 4) == 25.9472

    result = ab.evaluate("bicubic", sets="bsd100", metrics=["psnr"], protocol="paper", download=False)
    mean = result.mean("bsd100", "psnr")
    assert round(mean, 4) == 25.9482
    assert mean == pytest.approx(float(np.mean(ref)), abs=1e-5)


def test_a_paper_run_folder_with_the_uint8_lr_is_refused(bench_root, tmp_path, capsys):
    """A ``paper`` run folder written by protocol version 1 (no lr_precision: the uint8-path LR) is refused by
    version 2, naming the difference; its values are never mixed with the new LR's."""
    run = tmp_path / "run"
    args = ["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr,lr_psnr", "--quiet",
            "--data-root", str(bench_root), "--out", str(run)]
    assert main(args) == 0
    meta = json.loads((run / "run.json").read_text())
    assert meta["protocol"]["version"] == 2 and meta["protocol"]["lr_precision"] == "double"
    meta["protocol"]["version"] = 1
    del meta["protocol"]["lr_precision"]
    (run / "run.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "lr_precision uint8 vs double" in err and "Choose another --out folder" in err


def test_a_version_1_paper_record_differs_in_lr_precision_and_unknown_values_are_refused():
    """``report --compare-paper`` and the run folders compare protocols by these differences."""
    from aesop_bench.protocols import differences

    old = {k: v for k, v in get_protocol("paper").as_dict().items() if k != "lr_precision"}
    old["version"] = 1
    assert differences(old, get_protocol("paper").as_dict()) == {"lr_precision": ("uint8", "double")}
    with pytest.raises(AesopBenchError, match="LR precision 'float' unknown"):
        get_protocol("paper", lr_precision="float")


def _write(folder, names):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        Image.new("RGB", (12, 12)).save(folder / n)


def test_training_refuses_lr_folders_of_another_count(tmp_path):
    """As BasicSR's ``paired_paths_from_folder``: the LR folders must hold as many images as the HR folders."""
    from aesop_bench.train.config import DataConfig
    from aesop_bench.train.data import PairedPatches, training_images

    _write(tmp_path / "HR", ["a.png", "b.png"])
    _write(tmp_path / "LR", ["a.png", "b.png", "c.png"])
    hr = training_images([tmp_path / "HR"])
    with pytest.raises(AesopBenchError) as e:
        PairedPatches(hr, DataConfig(patch=12, make_lr=False), lr_dirs=[tmp_path / "LR"])
    msg = str(e.value)
    assert f"{tmp_path / 'HR'} hold 2 images" in msg and f"{tmp_path / 'LR'} hold 3" in msg
    assert "aesop-bench data prepare-train" in msg
    (tmp_path / "LR" / "c.png").unlink()
    assert len(PairedPatches(hr, DataConfig(patch=12, make_lr=False), lr_dirs=[tmp_path / "LR"])) == 2
    # LR made where a file is missing: the folders need not pair one to one
    _write(tmp_path / "LR", ["c.png"])
    assert len(PairedPatches(hr, DataConfig(patch=12, make_lr=True), lr_dirs=[tmp_path / "LR"])) == 2
