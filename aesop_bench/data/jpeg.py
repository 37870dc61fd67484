"""JPEG compression of a batch on tensors, each image at its own quality: the DiffJPEG that Real-ESRGAN's
training-pair synthesis uses (``DiffJPEG(differentiable=False)`` in BasicSR, after mlomnitz/DiffJPEG).

The steps are baseline JPEG's, computed in float32 on whatever device the batch is on:

1. pad the image with zeros at the bottom and right to a multiple of 16 (a 2x2-subsampled 8x8 block);
2. RGB (x 255) to YCbCr with the JFIF matrix, offset 128 on the chroma;
3. Cb and Cr averaged over 2x2 (4:2:0);
4. each channel cut into 8x8 blocks, shifted by -128, 2-D DCT-II (orthonormal scaling);
5. divided by the quantisation table x the quality's factor and rounded (``torch.round``: half to even);
6. and back: multiplied by the same table, inverse DCT, +128, blocks merged, chroma repeated 2x2, YCbCr to RGB,
   clamped to [0, 255], / 255, and the padding cropped.

The factor of quality q is ``(5000 / q) / 100`` below 50 and ``(200 - 2 q) / 100`` from 50 (libjpeg's scaling,
without its rounding to integers and its clamping of table entries to [1, 255]), so the result differs slightly
from a real JPEG codec's. Two conventions of DiffJPEG are kept so that the output is the same to the bit:
the tables are applied transposed (the entry for vertical frequency u and horizontal frequency v is Annex K's
entry at row v, column u), and each step runs in float32 in the same order of operations (the colour matrices
and both DCTs as tensor contractions).

>>> import torch
>>> x = torch.full((2, 3, 16, 16), 0.5)
>>> jpeg(x, torch.tensor([50.0, 90.0])).sub(x).abs().max().item() < 1 / 255
True
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError

# ITU-T T.81 Annex K, tables K.1 (luminance) and K.2 (chrominance), row = vertical frequency
LUMA_TABLE = ((16, 11, 10, 16, 24, 40, 51, 61), (12, 12, 14, 19, 26, 58, 60, 55),
              (14, 13, 16, 24, 40, 57, 69, 56), (14, 17, 22, 29, 51, 87, 80, 62),
              (18, 22, 37, 56, 68, 109, 103, 77), (24, 35, 55, 64, 81, 104, 113, 92),
              (49, 64, 78, 87, 103, 121, 120, 101), (72, 92, 95, 98, 112, 100, 103, 99))
CHROMA_TABLE = tuple(tuple(r) + (99,) * 4 for r in ((17, 18, 24, 47), (18, 21, 26, 66), (24, 26, 56, 99),
                                                    (47, 66, 99, 99))) + ((99,) * 8,) * 4
# JFIF: RGB -> YCbCr rows (Y, Cb, Cr) and YCbCr -> RGB rows (R, G, B)
RGB_TO_YCBCR = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
YCBCR_TO_RGB = ((1.0, 0.0, 1.402), (1.0, -0.344136, -0.714136), (1.0, 1.772, 0.0))

_CONSTANTS: dict = {}


def _dct_basis(inverse: bool) -> np.ndarray:
    """(8, 8, 8, 8) float32: ``[x, y, u, v] = cos((2x+1) u pi/16) cos((2y+1) v pi/16)`` (forward), or the same
    with the roles of (x, y) and (u, v) swapped (inverse), each product in float64 rounded once to float32."""
    i = np.arange(8)
    if inverse:
        c = np.cos((2 * i[None, :] + 1) * i[:, None] * np.pi / 16)  # c[x, u] = cos((2u+1) x pi/16)
    else:
        c = np.cos((2 * i[:, None] + 1) * i[None, :] * np.pi / 16)  # c[x, u] = cos((2x+1) u pi/16)
    return np.einsum("xu,yv->xyuv", c, c).astype(np.float32)


def _constants(device: torch.device) -> dict:
    if device not in _CONSTANTS:
        alpha = np.array([1 / np.sqrt(2)] + [1.0] * 7)
        as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32), device=device)
        _CONSTANTS[device] = {
            "to_ycbcr": as_t(np.array(RGB_TO_YCBCR).T), "to_ycbcr_shift": as_t([0.0, 128.0, 128.0]),
            "to_rgb": as_t(np.array(YCBCR_TO_RGB).T), "to_rgb_shift": as_t([0.0, -128.0, -128.0]),
            "dct": as_t(_dct_basis(False)), "dct_scale": as_t(np.outer(alpha, alpha) * 0.25),
            "idct": as_t(_dct_basis(True)), "idct_alpha": as_t(np.outer(alpha, alpha)),
            "luma": as_t(np.array(LUMA_TABLE).T), "chroma": as_t(np.array(CHROMA_TABLE).T),
        }
    return _CONSTANTS[device]


def quality_factor(quality: torch.Tensor) -> torch.Tensor:
    """The multiplier of the quantisation tables for JPEG quality ``quality`` (float32, per image)."""
    return torch.where(quality < 50, 5000.0 / quality, 200.0 - quality * 2) / 100.0


def _blocks(channel: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> (N, H/8 * W/8, 8, 8), blocks in row-major order."""
    n, h, w = channel.shape
    return channel.view(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4).contiguous().view(n, -1, 8, 8)


def _merge(blocks: torch.Tensor, h: int, w: int) -> torch.Tensor:
    n = blocks.shape[0]
    return blocks.view(n, h // 8, w // 8, 8, 8).permute(0, 1, 3, 2, 4).contiguous().view(n, h, w)


def _code(channel: torch.Tensor, table: torch.Tensor, c: dict) -> torch.Tensor:
    """Encode and decode one channel (N, H, W) in the 0-255 range; ``table`` (N, 1, 8, 8) holds each image's
    quantisation steps."""
    h, w = channel.shape[1:]
    coeffs = c["dct_scale"] * torch.tensordot(_blocks(channel) - 128, c["dct"], dims=2)
    coeffs = torch.round(coeffs / table) * table
    pixels = 0.25 * torch.tensordot(coeffs * c["idct_alpha"], c["idct"], dims=2) + 128
    return _merge(pixels, h, w)


def jpeg(img: torch.Tensor, quality) -> torch.Tensor:
    """``img`` (N, 3, H, W), RGB in [0, 1], float32, compressed and decompressed at ``quality`` (a number, or a
    tensor of N per-image qualities in (0, 100]); returns the decoded images, same shape, in [0, 1]."""
    if img.ndim != 4 or img.shape[1] != 3 or img.dtype != torch.float32:
        raise InputError(f"jpeg: expected a float32 batch (N, 3, H, W), got {img.dtype} {tuple(img.shape)}")
    n, _, h, w = img.shape
    quality = torch.as_tensor(quality, dtype=torch.float32, device=img.device).expand(n)
    if bool(((quality <= 0) | (quality > 100)).any()):
        raise InputError(f"jpeg: quality must be in (0, 100], got {quality.tolist()}")
    c = _constants(img.device)
    factor = quality_factor(quality).view(n, 1, 1, 1)
    padded = F.pad(img, (0, -w % 16, 0, -h % 16), mode="constant", value=0)

    ycc = torch.tensordot((padded * 255).permute(0, 2, 3, 1), c["to_ycbcr"], dims=1) + c["to_ycbcr_shift"]
    chroma = F.avg_pool2d(ycc[..., 1:].permute(0, 3, 1, 2).contiguous(), kernel_size=2, stride=2)
    y = _code(ycc[..., 0], c["luma"] * factor, c)
    cb, cr = (_code(chroma[:, i], c["chroma"] * factor, c) for i in (0, 1))
    up = lambda x: x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    ycc = torch.stack([y, up(cb), up(cr)], dim=-1)
    rgb = torch.tensordot(ycc + c["to_rgb_shift"], c["to_rgb"], dims=1).permute(0, 3, 1, 2)
    return (rgb.clamp(0, 255) / 255)[:, :, :h, :w]
