"""MATLAB-exact bicubic: known answers from MATLAB-made files and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aesop_bench.data.imresize import imresize, output_size, resize_matrix
from aesop_bench.data.transforms import mod_crop
from aesop_bench.imageio import read_image

SET5 = ["baby", "bird", "butterfly", "head", "woman"]


def test_set5_lr_equals_matlab(bench_root):
    """LR from Set5 HR on the uint8 path equals the MATLAB-made LR (SwinIR's testsets: ``imresize`` of the 8-bit
    image) bit for bit, as the ``basicsr`` and ``matlab`` protocols make it; the double path rounded once (the
    ``paper`` protocol's LR, the authors' ``fp64mod12`` data) is not what made these files."""
    from aesop_bench.data.transforms import matlab_lr, protocol_lr
    from aesop_bench.protocols import get_protocol

    moved = 0
    for name in SET5:
        raw = read_image(bench_root / "Set5" / "HR" / f"{name}.png")
        hr = mod_crop(raw, 4)
        ref = read_image(bench_root / "Set5" / "LR_bicubic" / "X4" / f"{name}x4.png")
        lr = imresize(hr, 0.25)
        assert lr.shape == ref.shape and lr.dtype == torch.uint8
        assert torch.equal(lr, ref), name
        for protocol in ("basicsr", "matlab"):
            assert torch.equal(protocol_lr(raw, get_protocol(protocol)), ref), (name, protocol)
        double = matlab_lr(hr, 4)
        assert int((double.int() - ref.int()).abs().max()) <= 2
        moved += int((double != ref).sum())
    assert moved > 1000  # 10,971 of Set5's 106,398 LR values


def test_batched_equals_single(bench_root):
    hr = mod_crop(read_image(bench_root / "Set5" / "HR" / "baby.png"), 4)
    batch = torch.stack([hr, hr.flip(-1)])
    out = imresize(batch, 0.25)
    assert torch.equal(out[0], imresize(hr, 0.25))
    assert torch.equal(out[1], imresize(hr.flip(-1), 0.25))


def test_output_size_is_matlab_ceil():
    assert output_size((481, 321), 0.25) == (121, 81)
    assert output_size((10, 7), 4) == (40, 28)
    x = torch.rand(1, 1, 481, 321, dtype=torch.float64)
    assert imresize(x, 0.25).shape[-2:] == (121, 81)


@pytest.mark.parametrize("scale", [0.25, 0.5, 2.0, 4.0, 1 / 3])
def test_constant_image_is_kept(scale):
    # Weights are normalised, so a constant image stays constant, on the double path and the uint8 path.
    x = torch.full((2, 3, 24, 20), 0.37, dtype=torch.float64)
    assert torch.allclose(imresize(x, scale), torch.full_like(imresize(x, scale), 0.37), atol=1e-12)
    u = torch.full((1, 3, 24, 20), 200, dtype=torch.uint8)
    assert torch.all(imresize(u, scale) == 200)


def test_linear_ramp_reproduced_in_the_interior():
    # The Keys cubic (a = -0.5) reproduces linear functions exactly away from the mirrored border.
    n = 64
    ramp = torch.arange(n, dtype=torch.float64).view(1, 1, n, 1).expand(1, 1, n, 8).contiguous()
    up = imresize(ramp, 4.0)
    x = torch.arange(1, 4 * n + 1, dtype=torch.float64)
    u = x / 4 + 0.5 * (1 - 1 / 4) - 1  # MATLAB source coordinate, 0-based
    interior = slice(12, 4 * n - 12)
    assert torch.allclose(up[0, 0, interior, 0], u[interior], atol=1e-10)


def test_rows_of_the_matrix_sum_to_one():
    for scale, n_in in ((0.25, 37), (4.0, 9), (0.5, 16)):
        m = resize_matrix(n_in, math.ceil(n_in * scale), scale)
        assert torch.allclose(m.sum(1), torch.ones(m.shape[0], dtype=torch.float64), atol=1e-12)


def test_uint8_path_rounds_between_passes():
    # On uint8 input MATLAB rounds after the first pass; the double path does not. Check both against
    # an explicit two-pass computation with the same matrices.
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (1, 1, 20, 24), generator=g, dtype=torch.uint8)
    mh, mw = resize_matrix(20, 5, 0.25), resize_matrix(24, 6, 0.25)
    first = torch.floor((mh @ x.double()).clamp(0, 255) + 0.5)
    expect = torch.floor((first @ mw.T).clamp(0, 255) + 0.5).to(torch.uint8)
    assert torch.equal(imresize(x, 0.25), expect)
    assert torch.allclose(imresize(x.double(), 0.25), mh @ x.double() @ mw.T, atol=1e-9)


def test_float_path_keeps_dtype_and_does_not_clamp():
    x = torch.zeros(1, 1, 8, 8)
    x[..., 3:5, 3:5] = 1.0
    y = imresize(x, 2.0)
    assert y.dtype == torch.float32
    assert float(y.min()) < 0.0  # bicubic overshoot survives on the double path


def test_matches_plain_numpy_reference():
    """Against an independent loop-based numpy port of MATLAB's contributions()/resizeAlongDim."""
    from benchmarks.reference_impls import matlab_imresize_numpy

    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(33, 47, 3), dtype=np.uint8)
    for scale in (0.25, 4.0, 0.5):
        ours = imresize(torch.from_numpy(img).permute(2, 0, 1), scale).permute(1, 2, 0).numpy()
        ref = matlab_imresize_numpy(img, scale)
        assert ours.shape == ref.shape
        assert np.abs(ours.astype(int) - ref.astype(int)).max() == 0
    f = rng.random((21, 30))
    # the double path adds each output's taps in MATLAB's order, as the loop does: equal to the last bit
    assert np.array_equal(imresize(torch.from_numpy(f), 0.25).numpy(), matlab_imresize_numpy(f, 0.25))


@pytest.mark.parametrize("scale", [0.25, 4.0, 0.5, 3.0, 1 / 3, 0.3])
def test_wide_images_equal_the_reference_in_both_paths(scale):
    """Away from the borders the taps are read as strided slices and near them gathered; every output, on a
    DIV2K-wide image and on one narrower than the kernel, equals the loop reference (and the dense matrix)."""
    from benchmarks.reference_impls import matlab_imresize_numpy

    rng = np.random.default_rng(2)
    for h, w in ((13, 2040), (7, 5)):
        img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        ours = imresize(torch.from_numpy(img).permute(2, 0, 1), scale).permute(1, 2, 0).numpy()
        assert np.array_equal(ours, matlab_imresize_numpy(img, scale))
        f = rng.random((h, w))
        got = imresize(torch.from_numpy(f), scale)
        ref = matlab_imresize_numpy(f, scale)
        assert np.allclose(got.numpy(), ref, rtol=0, atol=1e-14)
        if scale in (0.25, 4.0, 0.5):  # weights that both compute exactly: equal sums to the last bit
            assert np.array_equal(got.numpy(), ref)
        mh = resize_matrix(h, math.ceil(h * scale), scale)
        mw = resize_matrix(w, math.ceil(w * scale), scale)
        assert torch.allclose(got, mh @ torch.from_numpy(f) @ mw.T, atol=1e-12)
