"""Images of one size in one network call: the same values as one image at a time, grouped by size, failures
named by file and nothing computed lost."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from aesop_bench.errors import AesopBenchError
from aesop_bench.evaluation.batching import batches
from aesop_bench.evaluation.config import EvalConfig, as_source
from aesop_bench.evaluation.runner import run_evaluation as evaluate
from aesop_bench.models.options import RunOptions
from aesop_bench.protocols import get_protocol

from .standin_models import RecordingBicubic
from .test_evaluate import _published

SETS = ["set5", "set14", "bsd100"]


def _cfg(bench_root, out, sets, metrics, model="bicubic", protocol="matlab", **kw) -> EvalConfig:
    return EvalConfig(source=as_source(model), sets=list(sets), metrics=list(metrics), protocol=get_protocol(protocol),
                      data_root=bench_root, out_dir=out, progress=False, download=False, log=lambda m: None, **kw)


def _values(run: Path) -> dict:
    return {(r["set"], r["image"], r["metric"]): float(r["value"]) for r in csv.DictReader(open(run / "per_image.csv"))}


def test_batched_bicubic_reproduces_the_published_numbers_image_for_image(bench_root, reference_data, tmp_path):
    """MATLAB protocol, bicubic, 8 images per call: the published Set5/Set14/BSD100 numbers, and per image the
    values of one image per call. Set14 mixes grayscale and RGB images of one size; BSD100 has two sizes."""
    metrics = ["psnr", "ssim", "lr_psnr"]
    one = RecordingBicubic()  # bicubic without an SR cache: every run runs it on every image
    evaluate(_cfg(bench_root, tmp_path / "one", SETS, metrics, model=one))
    assert len(one.calls) == 119 and all(c[0] == 1 for c in one.calls)
    many = RecordingBicubic()
    summary = evaluate(_cfg(bench_root, tmp_path / "many", SETS, metrics, model=many, run=RunOptions(batch=8)))
    assert sum(c[0] for c in many.calls) == 119 and max(c[0] for c in many.calls) == 8
    assert len(many.calls) <= 5 + 14 + 14  # BSD100: 100 images of two sizes in 14 calls at most
    published = _published(reference_data)
    for s in SETS:
        got = summary["sets"][s]["metrics"]
        assert abs(got["psnr"] - published[s][0]) <= 0.02, (s, got)
        assert abs(got["ssim"] - published[s][1]) <= 0.002, (s, got)
    one, many = _values(tmp_path / "one"), _values(tmp_path / "many")
    assert one.keys() == many.keys() and len(one) == 119 * 3
    assert all(many[k] == pytest.approx(v, abs=1e-12) for k, v in one.items())


class _Net(nn.Module):
    """A small float network: bicubic x4 plus a random convolution of it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        up = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
        return up + 0.05 * self.conv(up)


def test_an_in_memory_network_gives_the_same_values_in_batches(bench_root, tmp_path):
    import aesop_bench as ab

    net = _Net()
    metrics = ["psnr", "ssim", "lr_psnr"]
    one = ab.evaluate(net, sets="bsd100", metrics=metrics, protocol="basicsr", download=False, batch=1,
                      out=tmp_path / "one")
    assert len(net.shapes) == 100
    net.shapes.clear()
    many = ab.evaluate(net, sets="bsd100", metrics=metrics, protocol="basicsr", download=False,
                       out=tmp_path / "many", batch=16, identity="the-same-net-without-its-sr-cache")
    assert sorted(s[0] for s in net.shapes)[-1] == 16 and sum(s[0] for s in net.shapes) == 100
    a, b = _values(tmp_path / "one"), _values(tmp_path / "many")
    assert a.keys() == b.keys()
    # float32 convolutions of a batch may round differently from one image's: an 8-bit SR pixel can move by one
    assert all(b[k] == pytest.approx(v, rel=1e-4) for k, v in a.items())
    for m in metrics:
        assert many.mean("bsd100", m) == pytest.approx(one.mean("bsd100", m), rel=1e-6)


def test_a_metric_failing_in_a_batch_names_the_file_and_keeps_the_rest(bench_root, tmp_path, monkeypatch):
    from aesop_bench.data.transforms import mod_crop
    from aesop_bench.imageio import read_image
    from aesop_bench.metrics import fidelity

    files = sorted((bench_root / "BSD100" / "HR").glob("*.png"))
    bad = next(f for f in files[1:] if read_image(f).shape == read_image(files[0]).shape)  # in the first batch
    target = mod_crop(read_image(bad), 4)
    real = fidelity.ssim

    def flaky(sr, hr, *a, **k):
        if any(torch.equal(h, target) for h in hr):
            raise ValueError("undefined on this image")
        return real(sr, hr, *a, **k)
    monkeypatch.setattr(fidelity, "ssim", flaky)
    with pytest.raises(AesopBenchError, match=f"{bad.name}: ssim: undefined on this image"):
        evaluate(_cfg(bench_root, tmp_path / "run", ["bsd100"], ["psnr", "ssim"], run=RunOptions(batch=8)))
    stored = _values(tmp_path / "run")
    assert ("bsd100", bad.stem, "psnr") in stored and ("bsd100", bad.stem, "ssim") not in stored
    assert ("bsd100", files[0].stem, "ssim") in stored  # the batch's other images kept both
    monkeypatch.setattr(fidelity, "ssim", real)
    rows = tmp_path / "run" / "rows.jsonl"
    lines = rows.read_text().count("\n")
    summary = evaluate(_cfg(bench_root, tmp_path / "run", ["bsd100"], ["psnr", "ssim"], run=RunOptions(batch=8)))
    assert rows.read_text().count("\n") - lines == 2 * 100 - len(stored)  # only the values never stored
    assert set(summary["sets"]["bsd100"]["metrics"]) == {"psnr", "ssim"}


def test_batches_hold_images_of_one_size_within_the_pixel_bound(bench_root):
    files = sorted((bench_root / "BSD100" / "HR").glob("*.png"))
    from PIL import Image

    sizes = {f: Image.open(f).size for f in files}
    groups = list(batches(files, 16, 3 * 481 * 321, path=lambda f: f))
    assert sorted(f for g in groups for f in g) == files
    assert all(len({sizes[f] for f in g}) == 1 and len(g) <= 3 for g in groups)
    assert len(groups) == sum(-(-n // 3) for n in [sum(1 for s in sizes.values() if s == wh)
                                                    for wh in set(sizes.values())])
    assert [len(g) for g in batches(files, 1)] == [1] * 100
    assert RunOptions().batch_limits() == (1, None)
    assert RunOptions(device="cuda").batch_limits() == (16, 4_000_000)
    assert RunOptions(device="cuda", batch=3).batch_limits() == (3, None)


@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_a_batch_that_is_not_a_positive_count_is_refused(bench_root, tmp_path, bad):
    with pytest.raises(AesopBenchError, match=f"--batch {bad}"):
        _cfg(bench_root, tmp_path, ["set5"], ["psnr"], run=RunOptions(batch=bad))


def test_cli_batch_option(bench_root, tmp_path, capsys):
    from aesop_bench.cli import main

    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--batch", "0", "--data-root", str(bench_root),
                 "--no-download", "--quiet", "--out", str(tmp_path / "x")]) != 0
    assert "--batch 0: give a whole number of images" in capsys.readouterr().err
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--batch", "4", "--data-root", str(bench_root),
                 "--no-download", "--quiet", "--out", str(tmp_path / "y"), "--format", "json"]) == 0


def test_batches_of_any_size_keep_the_order_and_the_pixel_bound(bench_root):
    from PIL import Image

    files = sorted((bench_root / "Set5" / "HR").glob("*.png"))  # five sizes, 52,000 to 262,144 pixels
    px = {f: Image.open(f).size[0] * Image.open(f).size[1] for f in files}
    groups = list(batches(files, 4, 300_000, path=lambda f: f, same_size=False))
    assert [f for g in groups for f in g] == files
    assert all(len(g) <= 4 and (len(g) == 1 or sum(px[f] for f in g) <= 300_000) for g in groups)
    assert len(groups) < len(files) and [len(g) for g in batches(files, 5, path=lambda f: f, same_size=False)] == [5]
