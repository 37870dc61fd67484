"""NIQE (Mittal et al. 2013), the official MATLAB algorithm, vectorised in torch (float64).

As in LIVE's ``computequality.m``: the luminance (0-255, rounded) is cropped to
whole 96x96 blocks; at two scales (the second after MATLAB ``imresize`` by
0.5) the MSCN coefficients are computed with a 7x7 Gaussian window
(sigma 7/6, replicate padding); per block, an AGGD fit of the coefficients
and of their products with four shifted copies (``circshift`` by (0,1),
(1,0), (1,1), (1,-1)) gives 18 features (36 over both scales). Their mean and
covariance (rows with NaN dropped) against the pristine model give
``sqrt((mu_p - mu) pinv((S_p + S) / 2) (mu_p - mu)^T)``.

The pristine model is the LIVE ``modelparameters.mat`` (``mu_prisparam``,
``cov_prisparam``), obtained through the weights manager (``niqe_pristine``).

The value has the same last bit whatever the CPU thread count: every reduction
has one output per block or feature, which torch computes on one thread, and
the covariance is summed in a fixed order (:func:`_cov`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from ..data.imresize import imresize
from .fidelity import _filter_valid

BLOCK = 96
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@lru_cache(maxsize=1)
def _gaussian_window() -> list[float]:
    # fspecial('gaussian', 7, 7/6) is separable: the outer product of this normalised 1-D kernel.
    x = torch.arange(7, dtype=torch.float64) - 3
    g = torch.exp(-(x ** 2) / (2 * (7 / 6) ** 2))
    return (g / g.sum()).tolist()


@lru_cache(maxsize=4)
def _gamma_table(device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The grid of AGGD shapes and their moment ratios, on ``device`` (one table per device)."""
    gam = torch.arange(0.2, 10.0005, 0.001, dtype=torch.float64, device=device)
    gam = torch.round(gam * 1000) / 1000  # the grid 0.2:0.001:10, without accumulated rounding
    lg = torch.lgamma
    r_gam = torch.exp(2 * lg(2 / gam) - lg(1 / gam) - lg(3 / gam))
    return gam, r_gam


def _gamma(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(torch.lgamma(x))


def _nearest(table: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``argmin_j (table[j] - v) ** 2`` for each value, for a strictly increasing table (the ratio table is):
    a binary search and the two neighbours, the first of them on a tie, as ``argmin`` picks; a NaN or
    infinite value gives 0, as ``argmin`` does."""
    hi = torch.searchsorted(table, values).clamp(1, len(table) - 1)
    lo = hi - 1
    idx = torch.where((table[hi] - values) ** 2 < (table[lo] - values) ** 2, hi, lo)
    return torch.where(torch.isfinite(values), idx, torch.zeros_like(idx))


def _aggd(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row of ``v`` (blocks x values): AGGD shape alpha and scales beta_l, beta_r (estimateaggdparam.m)."""
    neg, pos = v < 0, v > 0
    v2 = v * v
    left = torch.sqrt((v2 * neg).sum(1) / neg.sum(1))
    right = torch.sqrt((v2 * pos).sum(1) / pos.sum(1))
    gammahat = left / right
    rhat = v.abs().mean(1) ** 2 / v2.mean(1)
    rhatnorm = rhat * (gammahat ** 3 + 1) * (gammahat + 1) / (gammahat ** 2 + 1) ** 2
    gam, r_gam = _gamma_table(str(v.device))
    alpha = gam[_nearest(r_gam, rhatnorm)]
    scale = torch.sqrt(_gamma(1 / alpha) / _gamma(3 / alpha))
    return alpha, left * scale, right * scale


def _block_features(blocks: torch.Tensor) -> torch.Tensor:
    """(n, b, b) MSCN blocks -> (n, 18) features (computefeature.m)."""
    flat = blocks.flatten(1)
    alpha, bl, br = _aggd(flat)
    feats = [alpha, (bl + br) / 2]
    for shift in SHIFTS:
        pair = (blocks * torch.roll(blocks, shifts=shift, dims=(1, 2))).flatten(1)
        alpha, bl, br = _aggd(pair)
        mean = (br - bl) * (_gamma(2 / alpha) / _gamma(1 / alpha))
        feats += [alpha, mean, bl, br]
    return torch.stack(feats, dim=1)


@lru_cache(maxsize=1)
def _pyiqa_window() -> torch.Tensor:
    # IQA-PyTorch builds fspecial('gaussian', 7, 7/6) in float64 and stores it in float32; the rounded
    # weights no longer sum to exactly one, which decides the sign of the MSCN values in flat regions.
    g = torch.tensor(_gaussian_window(), dtype=torch.float64)
    return torch.outer(g, g).float().double()[None, None]


def _window_sums(x: torch.Tensor, k: list[list[float]]) -> torch.Tensor:
    """The valid 2-D correlation of each channel of ``x`` (C, H, W) with the kernel ``k``, as 49 shifted
    multiply-adds in float64 (several times faster than ``conv2d``, which has no fast float64 kernel on the
    CPU, and equal to it on the images tested)."""
    n = len(k)
    h, w = x.shape[-2] - n + 1, x.shape[-1] - n + 1
    acc = torch.zeros(x.shape[0], h, w, dtype=x.dtype, device=x.device)
    for i in range(n):
        for j in range(n):
            acc.add_(x[:, i:i + h, j:j + w], alpha=k[i][j])
    return acc[:, None]


def _mscn(img: torch.Tensor, variant: str = "pyiqa") -> tuple[torch.Tensor, torch.Tensor]:
    x = F.pad(img[None, None], (3, 3, 3, 3), mode="replicate")
    if variant == "pyiqa":
        mu, sq = _window_sums(torch.cat([x, x * x], dim=1)[0], _pyiqa_window()[0, 0].tolist())
    else:
        g = _gaussian_window()
        mu = _filter_valid(x, g)
        sq = _filter_valid(x * x, g)
    sigma = torch.sqrt((sq - mu * mu).abs())
    return ((img[None, None] - mu) / (sigma + 1))[0, 0], sigma[0, 0]


def _blocks(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape
    return x.reshape(h // size, size, w // size, size).permute(2, 0, 1, 3).reshape(-1, size, size)


def _cov(feats: torch.Tensor) -> torch.Tensor:
    """``torch.cov(feats.T)``, the covariance of the features (columns) over the blocks (rows), with the products
    added block after block in float64: torch's matrix product splits the sum over the blocks among its threads
    once there are several hundred blocks, which moves the last bit with the thread count."""
    x = feats.detach().cpu().to(torch.float64).numpy()
    c = x - np.add.reduce(x, axis=0) / len(x)
    cov = np.add.reduce(c[:, :, None] * c[:, None, :], axis=0) / (len(x) - 1)
    return torch.from_numpy(cov).to(feats.device)


def niqe_gray(img: torch.Tensor, mu_pris: torch.Tensor, cov_pris: torch.Tensor, variant: str = "pyiqa") -> float:
    """NIQE of one 2-D luminance image on the 0-255 scale (float64).

    ``variant``: ``pyiqa`` filters with IQA-PyTorch's float32-rounded window (the paper's numbers);
    ``matlab`` with the exact double window. They differ only where the image has flat regions, whose
    MSCN values are rounding noise: NIQE's AGGD fit counts their signs, so there any two
    implementations that round differently disagree (by up to ~0.1 on Set14's ppt3).
    """
    img = img.to(torch.float64)
    h, w = img.shape
    nh, nw = h // BLOCK, w // BLOCK
    if nh * nw < 2:
        raise ValueError(f"NIQE needs at least two {BLOCK}x{BLOCK} blocks (e.g. {BLOCK}x{2 * BLOCK} pixels after the "
                         f"border crop) to estimate a covariance; the image is {w}x{h}")
    img = img[: nh * BLOCK, : nw * BLOCK]
    per_scale = []
    for scale in (1, 2):
        mscn, _ = _mscn(img, variant)
        per_scale.append(_block_features(_blocks(mscn, BLOCK // scale)))
        if scale == 1:
            img = imresize(img, 0.5)
    feats = torch.cat(per_scale, dim=1)
    mu = torch.nanmean(feats, dim=0)
    complete = feats[~torch.isnan(feats).any(dim=1)]
    if len(complete) < 2:
        raise ValueError(f"NIQE found fewer than two {BLOCK}x{BLOCK} blocks with finite features in the {w}x{h} "
                         "image (flat blocks give none); it is undefined for this image")
    cov = _cov(complete)
    mu_pris = mu_pris.to(torch.float64).to(mu.device).flatten()
    diff = (mu_pris - mu)[None]
    inv = torch.linalg.pinv((cov_pris.to(torch.float64).to(cov.device) + cov) / 2)
    return float(torch.sqrt(diff @ inv @ diff.T).squeeze())


def load_pristine(path) -> tuple[torch.Tensor, torch.Tensor]:
    """The pristine model's mean and covariance from the official ``modelparameters.mat``."""
    from scipy.io import loadmat

    m = loadmat(str(path))
    return torch.from_numpy(m["mu_prisparam"]).flatten().double(), torch.from_numpy(m["cov_prisparam"]).double()


_YIQ = ((0.299, 0.587, 0.114), (0.5959, -0.2746, -0.3213), (0.2115, -0.5227, 0.3112))


def luminance(img: torch.Tensor, color_space: str = "yiq", variant: str = "pyiqa") -> torch.Tensor:
    """(3|1, H, W) uint8 -> (H, W) float64 luminance on the 0-255 scale, rounded.

    ``yiq`` (IQA-PyTorch's NIQE default, used by the paper): ``0.299 R + 0.587 G + 0.114 B``;
    ``ycbcr``: BT.601 studio-range Y as the fidelity metrics use. Single-channel images are used as they
    are. The ``pyiqa`` variant computes it as IQA-PyTorch does on a float32 image in [0, 1] (its YIQ
    matrix, float32, round half to even), because which values fall on a rounding tie depends on that;
    ``matlab`` in float64 with rounding half away from zero.
    """
    from .fidelity import rgb_to_y, to_255

    if img.shape[0] == 1:
        y = to_255(img)[0]
    elif color_space == "yiq" and variant == "pyiqa":
        x = (img.float() / 255.0) if img.dtype == torch.uint8 else img.float()
        w = torch.tensor(_YIQ, dtype=torch.float32, device=x.device).t()
        y = (torch.matmul(x.permute(1, 2, 0), w)[..., 0] * 255.0).double()
    elif color_space == "yiq":
        r, g, b = to_255(img).unbind(0)
        y = 0.299 * r + 0.587 * g + 0.114 * b
    elif color_space == "ycbcr":
        y = rgb_to_y(to_255(img)[None])[0, 0]
    else:
        raise ValueError(f"unknown NIQE colour space {color_space!r}; use yiq or ycbcr")
    return torch.round(y) if variant == "pyiqa" else torch.floor(y + 0.5)


def niqe(sr: torch.Tensor, crop_border: int = 0, color_space: str = "yiq", pristine=None,
         variant: str = "pyiqa") -> torch.Tensor:
    """Per-image NIQE of ``(N, C, H, W)`` images (lower is better); see :func:`niqe_gray` for ``variant``."""
    if pristine is None:
        from .. import weights as wm

        pristine = load_pristine(wm.get("niqe_pristine", download_missing=False))
    out = []
    for img in sr:
        y = luminance(img, color_space, variant)
        if crop_border:
            y = y[crop_border:-crop_border, crop_border:-crop_border]
        out.append(niqe_gray(y, *pristine, variant=variant))
    return torch.tensor(out, dtype=torch.float64)


__all__ = ["niqe", "niqe_gray", "load_pristine", "luminance"]
