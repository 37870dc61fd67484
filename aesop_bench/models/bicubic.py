"""MATLAB bicubic upsampling as a model: the lower bound of every table."""

from __future__ import annotations

import torch

from ..data.imresize import imresize
from ..imageio import quantize, to_float
from .identity import BICUBIC_IDENTITY


class Bicubic:
    """``imresize(LR, scale, 'bicubic')`` on the 8-bit LR, MATLAB's uint8 path.

    The LR batch is 8-bit by construction, so converting it back to uint8 is
    exact; MATLAB rounds between its two passes on uint8 images, and this
    model does the same, which is how the published bicubic numbers were made.
    """

    def __init__(self, scale: int = 4):
        self.name = "bicubic"
        self.scale = scale
        self.identity = BICUBIC_IDENTITY

    def to(self, device):
        return self

    @torch.no_grad()
    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        return to_float(imresize(quantize(lr), float(self.scale)))
