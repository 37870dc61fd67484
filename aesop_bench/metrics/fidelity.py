"""Fidelity metrics: Y-channel PSNR and SSIM in the conventions of SR papers.

Formulas (images on the 0-255 scale, computed in float64):

* Y (ITU-R BT.601, studio range): ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255``.
  With ``y_round`` Y is rounded half away from zero, as MATLAB's
  ``rgb2ycbcr`` does for uint8 images.
* ``PSNR = 10 log10(255^2 / (MSE + eps 255^2))`` per image, after cropping
  ``crop_border`` pixels from every side; ``eps`` is 0 (identical images give
  ``inf``) or, as in the AESOP code, 1e-8 on the 0-1 scale (80 dB at most).
* SSIM (Wang et al. 2004): 11x11 Gaussian window with sigma 1.5, 'valid'
  filtering, ``C1 = (0.01 * 255)^2``, ``C2 = (0.03 * 255)^2``, no
  downsampling; the mean of the SSIM map, averaged over channels.

Every mean is :func:`~aesop_bench.determinism.fixed_mean`: the same last bit whatever the CPU thread count
(torch's own mean of one image's map is not).

Inputs are ``(N, C, H, W)`` tensors, either ``uint8`` (0-255) or floating
point in ``[0, 1]``. Single-channel images are used as they are (no Y
conversion), which is the MATLAB convention for grayscale images.
"""

from __future__ import annotations

import torch

from ..data.imresize import imresize
from ..determinism import fixed_mean

__all__ = ["to_255", "rgb_to_y", "prepare", "psnr", "ssim", "lr_psnr", "mse_to_psnr"]

_Y_WEIGHTS = (65.481, 128.553, 24.966)


def to_255(img: torch.Tensor) -> torch.Tensor:
    """An image as float64 on the 0-255 scale (uint8 as is; float in [0, 1] times 255)."""
    if img.dtype == torch.uint8:
        return img.to(torch.float64)
    if not img.is_floating_point():
        raise TypeError(f"expected a uint8 or floating image tensor, got {img.dtype}")
    return img.to(torch.float64) * 255.0


def rgb_to_y(img255: torch.Tensor, y_round: bool = False) -> torch.Tensor:
    """BT.601 luma of an ``(N, 3, H, W)`` image on the 0-255 scale; returns ``(N, 1, H, W)``."""
    if img255.shape[-3] != 3:
        raise ValueError(f"rgb_to_y expects 3 channels, got shape {tuple(img255.shape)}")
    r, g, b = img255.split(1, dim=-3)
    y = r * _Y_WEIGHTS[0]
    y.add_(g, alpha=_Y_WEIGHTS[1]).add_(b, alpha=_Y_WEIGHTS[2]).div_(255.0).add_(16.0)
    if y_round:
        y = torch.floor(y + 0.5)
    return y


def _crop(img: torch.Tensor, crop_border: int) -> torch.Tensor:
    if not crop_border:
        return img
    h, w = img.shape[-2:]
    if h <= 2 * crop_border or w <= 2 * crop_border:
        raise ValueError(f"image of size {h}x{w} is too small for a border crop of {crop_border}")
    return img[..., crop_border:-crop_border, crop_border:-crop_border]


def prepare(img: torch.Tensor, crop_border: int = 0, y_channel: bool = True, y_round: bool = False) -> torch.Tensor:
    """0-255 float64, border cropped, Y channel where the image has 3 channels."""
    if img.dim() == 3:
        img = img.unsqueeze(0)
    x = to_255(_crop(img, crop_border))
    if y_channel and x.shape[1] == 3:
        x = rgb_to_y(x, y_round)
    elif y_channel and y_round:  # a grayscale image is its own Y: rounded as the RGB path rounds Y (a no-op on 8 bits)
        x = torch.floor(x + 0.5)
    return x


def _check_pair(sr: torch.Tensor, hr: torch.Tensor) -> None:
    if sr.shape != hr.shape:
        raise ValueError(f"SR and HR shapes differ: {tuple(sr.shape)} vs {tuple(hr.shape)}")


def mse_to_psnr(mse: torch.Tensor, data_range: float = 255.0, eps: float = 0.0) -> torch.Tensor:
    """``eps`` is added to the MSE on the 0-1 scale."""
    return 10.0 * torch.log10(data_range ** 2 / (mse + eps * data_range ** 2))


def psnr(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 0, y_channel: bool = True,
         y_round: bool = False, eps: float = 0.0) -> torch.Tensor:
    """Per-image PSNR in dB (``inf`` for identical images unless ``eps`` > 0).

    >>> a = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    >>> b = torch.full((1, 3, 8, 8), 255, dtype=torch.uint8)
    >>> psnr(a, b, y_channel=False).item()
    0.0
    """
    _check_pair(sr, hr)
    if sr.dim() == 4 and sr.shape[1] == 3 and y_channel and not y_round and sr.dtype == hr.dtype == torch.uint8:
        # Y is linear in RGB, so Y(sr) - Y(hr) is the luma of the integer difference: one float64 conversion
        # instead of two, and the 16 offsets cancel. Equal to the route below up to float rounding (~1e-14 dB).
        x, y = _crop(sr, crop_border), _crop(hr, crop_border)
        d = (x.to(torch.int16) - y.to(torch.int16)).to(torch.float64)
        w = torch.tensor(_Y_WEIGHTS, dtype=torch.float64, device=d.device) / 255.0
        mse = fixed_mean(torch.einsum("c,nchw->nhw", w, d).square_())
        return mse_to_psnr(mse, eps=eps)
    x = prepare(sr, crop_border, y_channel, y_round)
    y = prepare(hr, crop_border, y_channel, y_round)
    mse = fixed_mean((x - y) ** 2)
    return mse_to_psnr(mse, eps=eps)


def _gaussian_1d(size: int = 11, sigma: float = 1.5, dtype=torch.float64, device=None) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _filter_valid(x: torch.Tensor, g: list[float], rows: torch.Tensor | None = None,
                  out: torch.Tensor | None = None) -> torch.Tensor:
    # Separable 'valid' filtering as in-place sums of shifted slices: exact up to rounding, and on CPU
    # several times faster than float64 conv2d for an 11-tap kernel. ``rows`` and ``out``: buffers of the
    # vertical pass's and the result's shapes to write into (allocated where None).
    k = len(g)
    h = x.shape[-2] - k + 1
    w = x.shape[-1] - k + 1
    rows = torch.mul(x.narrow(-2, 0, h), g[0], out=rows) if rows is not None else x.narrow(-2, 0, h) * g[0]
    for i in range(1, k):
        rows.add_(x.narrow(-2, i, h), alpha=g[i])
    out = torch.mul(rows.narrow(-1, 0, w), g[0], out=out) if out is not None else rows.narrow(-1, 0, w) * g[0]
    for i in range(1, k):
        out.add_(rows.narrow(-1, i, w), alpha=g[i])
    return out


# Bytes of float64 maps one band of SSIM rows works on (the 4 maps to filter, their vertical pass, the filtered
# maps): about a core's L2 cache, where they stay between the filter's 22 passes over them; larger bands spill
# to memory, smaller ones pay more for their 60-odd tensor operations than for the arithmetic.
_BAND_BYTES = 1 << 21


def _band_rows(planes: int, width: int, device: torch.device) -> int:
    """Output rows of SSIM per band: the whole image off the CPU (where each operation is a kernel launch)."""
    if device.type != "cpu":
        return 1 << 62
    return max(8, _BAND_BYTES // (3 * 4 * planes * width * 8))


def _ssim_band(x: torch.Tensor, y: torch.Tensor, g: list[float], bufs: list[torch.Tensor],
               out: torch.Tensor) -> None:
    """The SSIM map of ``(P, rows + 10, W)`` float64 bands of Y into ``out`` (``(P, rows, W - 10)``), in the
    buffers ``bufs`` (:func:`ssim`'s, of a band's size at least).

    Element by element the operations of the whole-image formula in the same order (so the same bits): the
    four maps to filter, x, y, x^2 + y^2 (the map needs only s1 + s2: four filtered maps, not five) and xy,
    filtered together; then ``(2 mu12 + C1)(2 (xy - mu12) + C2) / ((mu_sq + C1)(sum_sq - mu_sq + C2))`` with
    ``mu_sq = mu1^2 + mu2^2``.
    """
    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    rows = out.shape[-2]
    maps, vert, filt, mu12, mu_sq = (b.narrow(-2, 0, n) for b, n in zip(bufs, (x.shape[-2], rows, rows, rows, rows)))
    maps[0].copy_(x)
    maps[1].copy_(y)
    torch.mul(x, x, out=maps[2]).addcmul_(y, y)
    torch.mul(x, y, out=maps[3])
    mu1, mu2, sum_sq, xy = _filter_valid(maps, g, rows=vert, out=filt)
    torch.mul(mu1, mu2, out=mu12)
    torch.mul(mu1, mu1, out=mu_sq).addcmul_(mu2, mu2)
    # in place, into maps no longer needed: 2 mu12 + C1 into mu1, 2 (xy - mu12) + C2 into xy
    num = torch.mul(mu12, 2, out=mu1).add_(c1)
    num.mul_(xy.sub_(mu12).mul_(2).add_(c2))
    den = sum_sq.sub_(mu_sq).add_(c2)  # sum_sq - mu_sq + C2, before mu_sq takes C1
    den.mul_(mu_sq.add_(c1))
    torch.div(num, den, out=out)


def ssim(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 0, y_channel: bool = True,
         y_round: bool = False) -> torch.Tensor:
    """Per-image SSIM (mean of the 'valid' SSIM map, averaged over channels).

    The map is computed band of rows by band of rows (Y, the four filtered maps, the formula), each band's
    maps staying in the CPU's cache: every element goes through the same operations as in one pass over the
    whole image, so the values are the same bits (``tests/test_fidelity.py`` keeps the whole-image formula and
    compares); only the mean is taken over the whole map.
    """
    _check_pair(sr, hr)
    if sr.dim() == 3:
        sr, hr = sr.unsqueeze(0), hr.unsqueeze(0)
    sr, hr = _crop(sr, crop_border), _crop(hr, crop_border)
    n, c, h, w = sr.shape
    if y_channel and c == 3:
        c = 1
    if h < 11 or w < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 after cropping, got {h}x{w}")
    g = _gaussian_1d().tolist()
    k = len(g)
    p = n * c
    ssim_map = torch.empty((p, h - k + 1, w - k + 1), dtype=torch.float64, device=sr.device)
    band = min(h - k + 1, _band_rows(p, w, sr.device))
    bufs = [torch.empty(shape, dtype=torch.float64, device=sr.device) for shape in
            ((4, p, band + k - 1, w), (4, p, band, w), (4, p, band, w - k + 1), (p, band, w - k + 1),
             (p, band, w - k + 1))]
    for r0 in range(0, h - k + 1, band):
        r1 = min(h - k + 1, r0 + band)
        # Y of the band's input rows (a pixel's Y is its own RGB's)
        x, y = (prepare(img[..., r0:r1 + k - 1, :], 0, y_channel, y_round).reshape(p, r1 - r0 + k - 1, w)
                for img in (sr, hr))
        _ssim_band(x, y, g, bufs, ssim_map[:, r0:r1])
    return fixed_mean(fixed_mean(ssim_map.reshape(n, c, -1), 2))


def lr_psnr(sr: torch.Tensor, lr: torch.Tensor, y_round: bool = False, eps: float = 0.0) -> torch.Tensor:
    """PSNR between the MATLAB-bicubic downscaled SR and the LR input, per image.

    The 8-bit SR is downscaled to the LR's size on MATLAB's double path (no
    rounding of the result, so the metric is not floored by quantisation
    noise), then compared with the LR on the Y channel (rounded or not as the
    protocol says), with no border crop: the LR is small, and the mirrored
    border of the bicubic kernel is part of what a consistent SR must match.

    The AESOP authors name no kernel and released no code for it; MATLAB bicubic is the kernel that made the
    LR, so an SR consistent with its input scores highest. The kernel is part of the metric's version.
    """
    down = imresize(to_255(sr), size=tuple(lr.shape[-2:])) / 255.0
    return psnr(down, lr, crop_border=0, y_channel=True, y_round=y_round, eps=eps)
