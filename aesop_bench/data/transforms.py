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


def protocol_lr(hr: torch.Tensor, protocol) -> torch.Tensor:
    """The LR a protocol makes from an HR image: MATLAB bicubic (``imresize``) of the HR cropped to the
    protocol's modcrop, by 1 / scale. The one definition the evaluator, result folders and metric objects use."""
    from .imresize import imresize

    return imresize(mod_crop(hr, protocol.effective_modcrop), 1.0 / protocol.scale)


def require_evaluable(hr: torch.Tensor, protocol, path) -> None:
    """Refuse an HR image too small for the protocol: after its modcrop and border crop nothing would be left
    (a 1x1 or 3x3 image), naming the file."""
    from ..errors import AesopBenchError

    h, w = hr.shape[-2:]
    m, c = max(protocol.effective_modcrop, protocol.scale), protocol.effective_crop_border
    hm, wm = h - h % m, w - w % m
    if hm <= 2 * c or wm <= 2 * c:
        raise AesopBenchError(f"{path}: {w}x{h} pixels is too small for the protocol (modcrop {m}, border crop "
                              f"{c} on each side leaves nothing to compare); remove it from the set")
