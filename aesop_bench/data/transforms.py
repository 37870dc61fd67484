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
