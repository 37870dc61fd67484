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
