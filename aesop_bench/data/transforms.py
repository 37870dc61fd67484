"""Deterministic image transforms shared by evaluation and training."""

from __future__ import annotations

import torch


def mod_crop(img: torch.Tensor, multiple: int) -> torch.Tensor:
    """Crop ``(..., H, W)`` at the bottom and right to a multiple of ``multiple`` (BasicSR's ``mod_crop``)."""
    if multiple <= 1:
        return img
    h, w = img.shape[-2:]
    return img[..., : h - h % multiple, : w - w % multiple]


def to_rgb(img: torch.Tensor) -> torch.Tensor:
    """Replicate a single channel to three (as reading with OpenCV's IMREAD_COLOR does)."""
    return img.expand(*img.shape[:-3], 3, *img.shape[-2:]).contiguous() if img.shape[-3] == 1 else img


def matlab_lr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB bicubic by 1 / ``scale`` of a uint8 image in double precision, rounded once to 8 bits: MATLAB's
    ``im2uint8(imresize(im2double(hr), 1/scale, 'bicubic'))`` (clamped to [0, 1], then ``x * 255`` rounded half
    up). The LR of the authors' training data and of their ``sr_dataset_fp64mod12`` test sets; MATLAB's uint8
    path (``imresize`` of ``hr`` itself) rounds after each pass instead and differs on 10.5% of BSD100's LR values.

    >>> hr = torch.arange(64, dtype=torch.uint8).reshape(1, 8, 8) * 4
    >>> matlab_lr(hr, 4).dtype, tuple(matlab_lr(hr, 4).shape)
    (torch.uint8, (1, 2, 2))
    """
    from .imresize import imresize

    if hr.dtype != torch.uint8:
        raise TypeError(f"matlab_lr: expected a uint8 image (0-255), got {hr.dtype}; quantise it to 8 bits first")
    return torch.floor(imresize(hr.double() / 255, 1 / scale).clamp_(0, 1) * 255 + 0.5).to(torch.uint8)


def protocol_lr(hr: torch.Tensor, protocol) -> torch.Tensor:
    """The LR a protocol makes from a uint8 HR image: MATLAB bicubic (``imresize``) of the HR cropped to the
    protocol's modcrop, by 1 / scale, in the protocol's ``lr_precision`` (``double``: :func:`matlab_lr`, rounded
    once; ``uint8``: MATLAB's uint8 path, rounded after each pass). The one definition the evaluator, result
    folders and metric objects use."""
    from .imresize import imresize

    hr = mod_crop(hr, protocol.effective_modcrop)
    if protocol.lr_precision == "double":
        return matlab_lr(hr, protocol.scale)
    return imresize(hr, 1.0 / protocol.scale)


def require_evaluable(hr: torch.Tensor, protocol, path) -> None:
    """Refuse an HR image too small for the protocol: after its modcrop and border crop nothing would be left
    (a 1x1 or 3x3 image), naming the file."""
    from ..errors import InputError

    h, w = hr.shape[-2:]
    m, c = max(protocol.effective_modcrop, protocol.scale), protocol.effective_crop_border
    hm, wm = h - h % m, w - w % m
    if hm <= 2 * c or wm <= 2 * c:
        raise InputError(f"{path}: {w}x{h} pixels is too small for the protocol (modcrop {m}, border crop "
                              f"{c} on each side leaves nothing to compare); remove it from the set")
