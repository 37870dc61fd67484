"""MATLAB-exact bicubic resizing: ``imresize(img, scale, 'bicubic')``.

MATLAB resizes one dimension at a time. For each output pixel ``x`` (1-based)
the source coordinate is ``u = x / s + 0.5 * (1 - 1 / s)``; the cubic kernel
(``a = -0.5``) is widened to ``4 / s`` taps and scaled by ``s`` when
downscaling (antialiasing); weights are normalised to sum to one and indices
outside the image are mirrored (symmetric padding, edge pixel repeated).

Here each dimension's resampling is a dense ``(out, in)`` matrix, so a whole
batch is resized by two matrix products: vectorised, batched, and the same
code on CPU and CUDA.

MATLAB's dtype behaviour is kept:

* ``uint8`` input: each pass is computed in double precision and rounded
  (half away from zero) and clamped to ``[0, 255]`` before the next pass,
  because MATLAB returns ``uint8`` from each pass; the output is ``uint8``.
* floating input: computed in float64 with no rounding or clamping (MATLAB's
  ``double`` path), returned in the input's dtype.

The dimension with the smaller scale factor is resized first (MATLAB sorts
the scale factors; height first on ties).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

__all__ = ["imresize", "resize_matrix", "output_size"]


def _cubic(x: torch.Tensor) -> torch.Tensor:
    absx = x.abs()
    absx2 = absx * absx
    absx3 = absx2 * absx
    inner = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1)
    outer = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1) & (absx <= 2))
    return inner + outer


@lru_cache(maxsize=256)
def _resize_matrix_cpu(in_len: int, out_len: int, scale: float, antialias: bool) -> torch.Tensor:
    kernel_width = 4.0
    use_aa = antialias and scale < 1
    if use_aa:
        kernel_width /= scale
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]  # 1-based
    dist = u[:, None] - idx
    weights = scale * _cubic(scale * dist) if use_aa else _cubic(dist)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Symmetric padding: MATLAB indexes aux = [1..in, in..1] cyclically.
    m = torch.remainder(idx.long() - 1, 2 * in_len)
    src = torch.where(m < in_len, m, 2 * in_len - 1 - m)
    mat = torch.zeros(out_len, in_len, dtype=torch.float64)
    mat.scatter_add_(1, src, weights)
    return mat


def resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """The ``(out_len, in_len)`` float64 matrix of MATLAB's bicubic resampling."""
    mat = _resize_matrix_cpu(int(in_len), int(out_len), float(scale), bool(antialias))
    return mat.to(device) if device is not None else mat


def output_size(in_size: tuple[int, int], scale: float) -> tuple[int, int]:
    """MATLAB's output size for a scale factor: ``ceil(scale * size)``."""
    return tuple(int(math.ceil(scale * n)) for n in in_size)  # type: ignore[return-value]


def _round_uint8(x: torch.Tensor) -> torch.Tensor:
    # MATLAB's conversion to uint8: round half away from zero, then saturate.
    return torch.floor(x.clamp(0.0, 255.0) + 0.5)


def imresize(img: torch.Tensor, scale: float | None = None, size: tuple[int, int] | None = None,
             antialias: bool = True) -> torch.Tensor:
    """Resize like MATLAB ``imresize(img, scale, 'bicubic')``.

    Args:
        img: ``(H, W)``, ``(C, H, W)`` or ``(N, C, H, W)``; ``uint8`` (values
            0-255, MATLAB's uint8 path) or floating point (MATLAB's double path).
        scale: the scale factor (``0.25`` for x4 downscaling, ``4`` for x4 upscaling).
        size: the output ``(height, width)`` instead of ``scale``.
        antialias: widen the kernel when downscaling (MATLAB's default).

    Returns:
        The resized image, same layout and dtype as ``img``.

    >>> x = torch.arange(16, dtype=torch.uint8).reshape(1, 1, 4, 4) * 16
    >>> imresize(x, 0.5).shape
    torch.Size([1, 1, 2, 2])
    """
    if (scale is None) == (size is None):
        raise ValueError("imresize: give exactly one of scale or size")
    if img.dim() < 2 or img.dim() > 4:
        raise ValueError(f"imresize: expected (H, W), (C, H, W) or (N, C, H, W), got shape {tuple(img.shape)}")
    in_h, in_w = img.shape[-2:]
    if size is not None:
        out_h, out_w = int(size[0]), int(size[1])
        scales = (out_h / in_h, out_w / in_w)
    else:
        if scale <= 0:
            raise ValueError(f"imresize: scale must be positive, got {scale}")
        out_h, out_w = output_size((in_h, in_w), scale)
        scales = (float(scale), float(scale))
    is_uint8 = img.dtype == torch.uint8
    if not is_uint8 and not img.is_floating_point():
        raise TypeError(f"imresize: unsupported dtype {img.dtype}; use uint8 or a floating type")
    x = img.to(torch.float64)
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    for dim in order:
        if dim == 0:
            mat = resize_matrix(in_h, out_h, scales[0], antialias, x.device)
            x = torch.matmul(mat, x)
        else:
            mat = resize_matrix(in_w, out_w, scales[1], antialias, x.device)
            x = torch.matmul(x, mat.T)
        if is_uint8:
            x = _round_uint8(x)
    if is_uint8:
        return x.to(torch.uint8)
    return x.to(img.dtype)
