"""MATLAB-exact bicubic resizing: ``imresize(img, scale, 'bicubic')``.

MATLAB resizes one dimension at a time. For each output pixel ``x`` (1-based)
the source coordinate is ``u = x / s + 0.5 * (1 - 1 / s)``; the cubic kernel
(``a = -0.5``) is widened to ``4 / s`` taps and scaled by ``s`` when
downscaling (antialiasing); weights are normalised to sum to one and indices
outside the image are mirrored (symmetric padding, edge pixel repeated).

Here each dimension is resampled as MATLAB's ``resizeAlongDim`` does: every
output pixel is the weighted sum of its taps (zero-weight taps dropped),
added in tap order, for a whole batch at once (taps read as strided slices
away from the borders, gathered near them): vectorised, batched, linear in
the image size, and the same code on CPU and CUDA. (:func:`resize_matrix`
gives the same resampling as a dense matrix.)

MATLAB's dtype behaviour is kept:

* ``uint8`` input: each pass is computed in double precision and rounded
  (half away from zero) and clamped to ``[0, 255]`` before the next pass,
  because MATLAB returns ``uint8`` from each pass; the output is ``uint8``.
* floating input: computed in float64 with no rounding or clamping (MATLAB's
  ``double`` path), returned in the input's dtype. The double path of an
  8-bit image rounded once at the end (the ``paper`` protocol's LR and the
  paper's training LR) is :func:`aesop_bench.data.transforms.matlab_lr`.

The dimension with the smaller scale factor is resized first (MATLAB sorts
the scale factors; height first on ties).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

__all__ = ["imresize", "contributions", "resize_matrix", "output_size"]


def _cubic(x: torch.Tensor) -> torch.Tensor:
    absx = x.abs()
    absx2 = absx * absx
    absx3 = absx2 * absx
    inner = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1)
    outer = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1) & (absx <= 2))
    return inner + outer


@lru_cache(maxsize=256)
def _contributions_cpu(in_len: int, out_len: int, scale: float, antialias: bool) -> tuple[torch.Tensor, ...]:
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
    keep = (weights != 0).any(dim=0)  # MATLAB drops the taps that are zero for every output
    return weights[:, keep].contiguous(), src[:, keep].contiguous(), (idx[:, keep].long() - 1).contiguous()


def contributions(in_len: int, out_len: int, scale: float, antialias: bool = True,
                  device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MATLAB's ``contributions``: the ``(out_len, taps)`` float64 weights and 0-based source indices."""
    w, src, _ = _contributions_cpu(int(in_len), int(out_len), float(scale), bool(antialias))
    return (w.to(device), src.to(device)) if device is not None else (w, src)


def resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """The same resampling as a dense ``(out_len, in_len)`` float64 matrix (mirrored taps added together)."""
    w, src = contributions(in_len, out_len, scale, antialias)
    mat = torch.zeros(int(out_len), int(in_len), dtype=torch.float64).scatter_add_(1, src, w)
    return mat.to(device) if device is not None else mat


@lru_cache(maxsize=256)
def _plan(in_len: int, out_len: int, scale: float, antialias: bool):
    """The period ``p`` after which the first tap moves by ``d`` source rows (x1/4: p 1, d 4; x4: p 4, d 1) and
    each phase's first tap (0-based, before mirroring), so that an output's taps are a strided slice of the
    input away from the borders; None where the taps are not consecutive or there is no short period."""
    w, _, idx = _contributions_cpu(in_len, out_len, scale, antialias)
    if not bool((idx[:, 1:] - idx[:, :-1] == 1).all()):
        return None
    start = idx[:, 0]
    for p in range(1, min(out_len, 64) + 1):
        d = start[p:] - start[:-p]
        if len(d) == 0 or (bool((d == d[0]).all()) and int(d[0]) > 0):
            return p, int(d[0]) if len(d) else 1, [int(start[k]) for k in range(min(p, out_len))]
    return None


def _resize_dim(x: torch.Tensor, dim: int, out_len: int, scale: float, antialias: bool) -> torch.Tensor:
    # MATLAB's resizeAlongDim: each output is the weighted sum of its taps, multiplied and added in tap order.
    # Only the taps are touched, so the cost grows with the image, not with the square of its side as a dense
    # matrix's does. Away from the borders an output's taps are a strided slice of the input (no copy); the
    # outputs whose taps are mirrored, and resamplings with no short period, gather their taps.
    in_len = x.shape[dim]
    w, src = contributions(in_len, out_len, scale, antialias, x.device)
    taps = w.shape[1]
    rows = x.movedim(dim, 0)
    if dim != x.dim() - 2 and rows.dim() > 1:
        rows = rows.contiguous()  # rows of the resampled dimension, each one contiguous
    shape = (1,) * (rows.dim() - 1)
    wt = w.t().contiguous().view(taps, out_len, *shape)  # wt[j]: tap j's weight of every output, broadcastable
    out = torch.empty((out_len,) + rows.shape[1:], dtype=rows.dtype, device=rows.device)
    plan = _plan(int(in_len), int(out_len), float(scale), bool(antialias))
    gathered = torch.ones(out_len, dtype=torch.bool)
    if plan is not None:
        period, step, firsts = plan
        block = max(1, (1 << 20) // max(1, rows[0].numel() * rows.element_size()))  # a block's terms stay in cache
        for phase, first in enumerate(firsts):
            n = len(range(phase, out_len, period))
            m_lo = max(0, -(first // step))
            m_hi = min(n, (in_len - taps - first) // step + 1)
            if m_hi <= m_lo:
                continue
            gathered[phase + period * m_lo: phase + period * (m_hi - 1) + 1: period] = False
            for m0 in range(m_lo, m_hi, block):
                m1 = min(m_hi, m0 + block)
                outs = slice(phase + period * m0, phase + period * (m1 - 1) + 1, period)
                acc = out[outs]
                term = torch.empty_like(acc)
                for j in range(taps):
                    s0 = first + j + step * m0
                    torch.mul(rows[s0: s0 + step * (m1 - m0 - 1) + 1: step], wt[j, outs], out=acc if j == 0 else term)
                    if j:
                        acc.add_(term)
    edge = gathered.nonzero().flatten().to(x.device)
    if len(edge):
        ws, ss = wt[:, edge], src[edge].t().contiguous()
        acc = torch.index_select(rows, 0, ss[0]).mul_(ws[0])
        term = torch.empty_like(acc)
        for j in range(1, taps):
            acc.add_(torch.index_select(rows, 0, ss[j], out=term).mul_(ws[j]))
        out[edge] = acc
    return out.movedim(0, dim)


def output_size(in_size: tuple[int, int], scale: float) -> tuple[int, int]:
    """MATLAB's output size for a scale factor: ``ceil(scale * size)``."""
    return tuple(int(math.ceil(scale * n)) for n in in_size)  # type: ignore[return-value]


def _round_uint8(x: torch.Tensor) -> torch.Tensor:
    # MATLAB's conversion to uint8: round half away from zero, then saturate (in place: x is a fresh result).
    return x.clamp_(0.0, 255.0).add_(0.5).floor_()


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
        x = _resize_dim(x, x.dim() - 2 + dim, (out_h, out_w)[dim], scales[dim], antialias)
        if is_uint8:
            x = _round_uint8(x)
    return x.to(torch.uint8 if is_uint8 else img.dtype).contiguous()
