"""PSNR, SSIM, Y channel and LR-PSNR against closed forms and reference packages."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aesop_bench.data.imresize import imresize
from aesop_bench.data.transforms import mod_crop
from aesop_bench.imageio import read_image
from aesop_bench.determinism import fixed_mean
from aesop_bench.metrics import fidelity
from aesop_bench.metrics.fidelity import lr_psnr, prepare, psnr, rgb_to_y, ssim
from benchmarks.reference_impls import ssim_skimage


def test_psnr_closed_form():
    # A uniform error of d gray levels gives PSNR = 20 log10(255 / d).
    hr = torch.full((1, 1, 16, 16), 100, dtype=torch.uint8)
    sr = hr + 5
    assert psnr(sr, hr).item() == pytest.approx(20 * math.log10(255 / 5), abs=1e-12)
    assert math.isinf(psnr(hr, hr).item())


def test_border_crop_ignores_the_border():
    hr = torch.full((1, 1, 20, 20), 50, dtype=torch.uint8)
    sr = hr.clone()
    sr[..., :4, :] = 0
    assert math.isinf(psnr(sr, hr, crop_border=4).item())
    assert not math.isinf(psnr(sr, hr, crop_border=3).item())


def test_y_channel_matches_scikit_image():
    from skimage.color import rgb2ycbcr

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    ref = rgb2ycbcr(img)[..., 0]  # BT.601 studio range, same matrix
    ours = rgb_to_y(torch.from_numpy(img).permute(2, 0, 1)[None].double())[0, 0].numpy()
    assert np.allclose(ours, ref, atol=1e-9)
    rounded = rgb_to_y(torch.from_numpy(img).permute(2, 0, 1)[None].double(), y_round=True)[0, 0].numpy()
    assert np.array_equal(rounded, np.floor(ref + 0.5))


def test_ssim_matches_scikit_image_on_real_images(bench_root):
    for name in ("baby", "butterfly"):
        hr = mod_crop(read_image(bench_root / "Set5" / "HR" / f"{name}.png"), 4)[None]
        sr = imresize(imresize(hr, 0.25), 4.0)
        y_sr = rgb_to_y(sr.double())[0, 0, 4:-4, 4:-4].numpy()
        y_hr = rgb_to_y(hr.double())[0, 0, 4:-4, 4:-4].numpy()
        assert ssim(sr, hr, crop_border=4).item() == pytest.approx(ssim_skimage(y_sr, y_hr), abs=1e-6)


def _whole_image_ssim(sr, hr, crop_border=0, y_channel=True, y_round=False):
    """SSIM as this project computed it before it went band by band: Y of the whole images, the four maps filtered
    in one pass over the whole image (sums of shifted slices), the formula on whole maps."""
    x = prepare(sr, crop_border, y_channel, y_round)
    y = prepare(hr, crop_border, y_channel, y_round)
    n, c, h, w = x.shape
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - (11 - 1) / 2) ** 2) / (2 * 1.5 ** 2))
    g = (g / g.sum()).tolist()
    x, y = x.reshape(n * c, 1, h, w), y.reshape(n * c, 1, h, w)
    maps = torch.empty((4 * n * c, 1, h, w), dtype=x.dtype)
    mx, my, mxxyy, mxy = maps.split(n * c, dim=0)
    mx.copy_(x)
    my.copy_(y)
    torch.mul(x, x, out=mxxyy).addcmul_(y, y)
    torch.mul(x, y, out=mxy)
    rows = maps[..., 0:h - 10, :] * g[0]
    for i in range(1, 11):
        rows.add_(maps[..., i:i + h - 10, :], alpha=g[i])
    out = rows[..., 0:w - 10] * g[0]
    for i in range(1, 11):
        out.add_(rows[..., i:i + w - 10], alpha=g[i])
    mu1, mu2, sum_sq, xy = out.split(n * c, dim=0)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu12 = mu1 * mu2
    mu_sq = mu1 * mu1
    mu_sq.addcmul_(mu2, mu2)
    num = (2 * mu12 + c1) * (2 * (xy - mu12) + c2)
    den = (mu_sq + c1) * (sum_sq - mu_sq + c2)
    return fixed_mean(fixed_mean(num.div_(den).reshape(n, c, -1), 2))


@pytest.mark.parametrize("band_bytes", [1, 1 << 16, 1 << 21], ids=["8-row bands", "small bands", "default bands"])
def test_ssim_by_bands_equals_the_whole_image_formula_bit_for_bit(bench_root, monkeypatch, band_bytes):
    monkeypatch.setattr(fidelity, "_BAND_BYTES", band_bytes)
    g = torch.Generator().manual_seed(0)
    cases = []
    for shape, crop, y_round in (((1, 3, 11, 11), 0, False), ((2, 3, 37, 53), 4, True), ((1, 1, 90, 23), 0, True),
                                 ((3, 3, 61, 40), 2, False), ((1, 3, 131, 77), 4, False)):
        hr = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
        sr = (hr.to(torch.int16) + torch.randint(-25, 26, shape, generator=g)).clamp(0, 255).to(torch.uint8)
        cases += [(sr, hr, crop, True, y_round), (sr.double() / 255, hr.double() / 255, crop, True, y_round)]
    cases.append((cases[-2][0], cases[-2][1], 4, False, False))  # every RGB channel, no Y
    hr = mod_crop(read_image(bench_root / "Set5" / "HR" / "bird.png"), 4)[None]
    cases.append((imresize(imresize(hr, 0.25), 4.0), hr, 4, True, False))
    for sr, hr, crop, y_channel, y_round in cases:
        want = _whole_image_ssim(sr, hr, crop, y_channel, y_round)
        got = ssim(sr, hr, crop, y_channel, y_round)
        assert got.dtype == torch.float64 and torch.equal(got, want), (tuple(sr.shape), crop, y_round, got, want)


def test_y_psnr_matches_scikit_image_on_real_images(bench_root):
    from skimage.color import rgb2ycbcr
    from skimage.metrics import peak_signal_noise_ratio

    for name in ("baboon", "comic", "zebra"):
        hr = mod_crop(read_image(bench_root / "Set14" / "HR" / f"{name}.png"), 4)[None]
        sr = imresize(imresize(hr, 0.25), 4.0)
        y_sr, y_hr = (rgb2ycbcr(x[0].permute(1, 2, 0).numpy())[4:-4, 4:-4, 0] for x in (sr, hr))
        want = peak_signal_noise_ratio(y_hr, y_sr, data_range=255)
        assert psnr(sr, hr, crop_border=4).item() == pytest.approx(want, abs=1e-10)
        assert psnr(sr.double() / 255, hr.double() / 255, crop_border=4).item() == pytest.approx(want, abs=1e-10)


def test_ssim_of_identical_images_is_one():
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))


def test_float_and_uint8_inputs_agree():
    x = torch.randint(0, 256, (1, 3, 24, 24), dtype=torch.uint8)
    y = torch.randint(0, 256, (1, 3, 24, 24), dtype=torch.uint8)
    assert psnr(x, y).item() == pytest.approx(psnr(x.double() / 255, y.double() / 255).item(), abs=1e-9)


def test_lr_psnr_of_a_consistent_sr_is_high(bench_root):
    # An SR whose MATLAB downscale is the LR itself scores infinity; bicubic upsampling scores finite.
    hr = mod_crop(read_image(bench_root / "Set5" / "HR" / "bird.png"), 4)[None]
    lr_exact = imresize(hr.double() / 255, 0.25)
    assert lr_psnr(hr, lr_exact).item() > 200
    lr = imresize(hr, 0.25)
    sr = imresize(lr, 4.0)
    value = lr_psnr(sr, lr).item()
    # the same by hand: the SR downscaled on MATLAB's double path (not rounded), BT.601 Y of both in float64,
    # PSNR on the 0-255 scale with no crop
    down = imresize(sr[0].double(), 0.25).numpy()
    ref = lr[0].double().numpy()

    def y(a):
        return 16 + (65.481 * a[0] + 128.553 * a[1] + 24.966 * a[2]) / 255

    expected = 10 * np.log10(255 ** 2 / np.mean((y(down) - y(ref)) ** 2))
    assert value == pytest.approx(expected, abs=1e-9) and 30 < value < 60


def test_too_small_image_is_a_clear_error():
    x = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="too small"):
        psnr(x, x, crop_border=4)
    with pytest.raises(ValueError, match="11x11"):
        ssim(x, x)


def test_lr_psnr_rounds_a_grayscale_y_as_it_rounds_an_rgb_y(bench_root):
    """Under ``matlab`` (Y rounded, grayscale kept) LR-PSNR of Set14's grayscale bridge rounds the downscaled SR
    as the RGB path rounds Y: PSNR(round(imresize(SR, 1/4)), LR), with the MATLAB loop port as the resizer."""
    import aesop_bench as ab
    from aesop_bench.data.transforms import protocol_lr
    from aesop_bench.imageio import read_image
    from benchmarks.reference_impls import matlab_imresize_numpy

    prot = ab.protocol("matlab")
    hr = read_image(bench_root / "Set14" / "HR" / "bridge.png")
    assert hr.shape[0] == 1
    lr = protocol_lr(hr[:, :504, :504], prot)
    sr = torch.from_numpy(np.clip(hr[0, :504, :504].numpy().astype(np.int16) + 3, 0, 255).astype(np.uint8))[None]
    down = np.floor(matlab_imresize_numpy(sr[0].numpy().astype(np.float64), 0.25) + 0.5)
    want = 10 * np.log10(255.0 ** 2 / np.mean((down - lr[0].numpy().astype(np.float64)) ** 2))
    got = float(ab.metric("lr_psnr", protocol=prot)(sr, lr=lr)[0])
    assert got == pytest.approx(want, abs=1e-9)
    assert ab.metric("lr_psnr", protocol=prot).version.endswith("+grayround")
    assert "+grayround" not in ab.metric("lr_psnr", protocol="paper").version
