"""MSRResNet (BasicSR's modified SRResNet, Ledig et al. 2017 without BatchNorm) with BasicSR's module names.

x4: ``conv_first`` + LeakyReLU 0.1 -> 16 residual blocks of 64 features (``body``: conv, ReLU, conv, identity
skip, no BatchNorm) -> two (conv to 4x the features, pixel shuffle by 2, LeakyReLU 0.1) stages (``upconv1``,
``upconv2``) -> ``conv_hr`` + LeakyReLU 0.1 -> ``conv_last``, plus the bilinear x4 upsampling of the input
(align_corners False). 1,517,571 parameters at x4 with 64 features and 16 blocks.

Initialisation as BasicSR: every convolution starts from :func:`default_init_weights` (Kaiming normal scaled by
0.1, zero bias); modules are created in BasicSR's order, so a seed gives BasicSR's initial weights. It is the
decoder of the SRResNet-based auto-encoder of the AESOP paper's Table 5 (a).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .rrdbnet_arch import default_init_weights


class ResidualBlockNoBN(nn.Module):
    """conv 3x3 -> ReLU -> conv 3x3, added to the input (no BatchNorm, residual scale 1)."""

    def __init__(self, num_feat: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        default_init_weights([self.conv1, self.conv2], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


class MSRResNet(nn.Module):
    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 16,
                 upscale: int = 4):
        super().__init__()
        if upscale not in (2, 3, 4):
            raise ValueError(f"MSRResNet supports scales 2, 3 and 4, got {upscale}")
        self.upscale = upscale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[ResidualBlockNoBN(num_feat) for _ in range(num_block)])
        if upscale == 4:  # two x2 pixel-shuffle stages
            self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(2)
        else:
            self.upconv1 = nn.Conv2d(num_feat, num_feat * upscale * upscale, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(upscale)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        default_init_weights([self.conv_first, self.upconv1, self.conv_hr, self.conv_last], 0.1)
        if upscale == 4:
            default_init_weights(self.upconv2, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(self.lrelu(self.conv_first(x)))
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.upscale == 4:
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        return out + F.interpolate(x, scale_factor=self.upscale, mode="bilinear", align_corners=False)
