"""Full-reference perceptual metrics: LPIPS (AlexNet, v0.1) and DISTS.

Both are re-implemented here in a few lines so that every weight comes through
the weights manager (the reference packages would download ImageNet weights
themselves); tests check them against the ``lpips`` and ``DISTS_pytorch``
packages given the same weights.

* LPIPS (Zhang et al. 2018), ``lpips.LPIPS(net='alex', version='0.1')``:
  inputs scaled to [-1, 1], the package's scaling layer, AlexNet ReLU outputs
  1-5, unit-normalised over channels, squared differences weighted by the
  linear heads, spatially averaged, summed. Whole image, no crop.
* DISTS (Ding et al. 2020), ``DISTS_pytorch.DISTS``: inputs in [0, 1],
  ImageNet normalisation, VGG16 stages with L2 pooling, structure and texture
  similarities weighted by alpha/beta. Whole image, no resize.

What a metric compares SR images with is the HR's ``reference`` (what an HR cache keeps): LPIPS's unit-normalised
features; DISTS's six levels (the image and five VGG16 stages) and each level's channel means and variances,
computed once. Of the HR, DISTS's texture term takes only the means and its structure term's denominator only the
variances (1475 numbers each); the structure term's covariance, the mean over the positions of ``f_sr * f_hr``, takes
every position of every HR level: a linear function of the SR's features that is a different one for every HR, so
nothing smaller than the HR's levels gives it exactly for every SR. How they are stored can be smaller: the five
stages end in a ReLU, and their zeros (half the values with random weights) take a bit each
(:data:`aesop_bench.metrics.hrcache.SPARSE_TENSORS`).

Computed in float32 with TF32 off; never fp16. Every value has the same last bit whatever the CPU thread
count: torch reduces each output of a reduction with one output per channel or pixel on one thread, in an order
set by the shape alone, and the AlexNet and VGG16 convolutions (oneDNN) measure the same for 1 to 4 threads;
a 1x1 convolution to one channel does not, so LPIPS's heads are applied after the spatial mean
(:meth:`LPIPSAlex.distance`).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from .. import weights as wm
from ..imageio import to_unit_rgb
from ..models.loading import load_features

LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
ALEX_SLICES = ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12))
ALEX_CHANNELS = (64, 192, 384, 256, 256)


def _backbone_state(name: str) -> dict:
    return wm.load_state_dict(wm.get(name, download_missing=False))


class LPIPSAlex(nn.Module):
    """LPIPS v0.1 with AlexNet; ``forward(x, y)`` takes [0, 1] images and returns one value per image."""

    def __init__(self, alexnet_state: dict | None = None, lin_state: dict | None = None):
        super().__init__()
        feats = torchvision.models.alexnet(weights=None).features
        if alexnet_state is not None:
            load_features(feats, alexnet_state, "alexnet")
        self.slices = nn.ModuleList(nn.Sequential(*[feats[i] for i in range(a, b)]) for a, b in ALEX_SLICES)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in ALEX_CHANNELS)
        if lin_state is not None:
            for k, lin in enumerate(self.lins):
                lin.weight.data.copy_(lin_state[f"lin{k}.model.1.weight"])
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    @classmethod
    def from_manager(cls) -> "LPIPSAlex":
        return cls(_backbone_state("alexnet"), wm.load_state_dict(wm.get("lpips_alex_v0.1", download_missing=False)))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The unit-normalised AlexNet features of [0, 1] images (the HR side is cached from these)."""
        h = ((x * 2 - 1) - self.shift) / self.scale
        out = []
        for s in self.slices:
            h = s(h)
            out.append(h / (torch.sqrt((h * h).sum(dim=1, keepdim=True)) + 1e-10))
        return out

    def reference(self, y: torch.Tensor) -> list[torch.Tensor]:
        """What :meth:`distance` compares with: the :meth:`features` of the [0, 1] images ``y``."""
        return self.features(y)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.distance(x, self.reference(y))

    def distance(self, x: torch.Tensor, fy: list[torch.Tensor]) -> torch.Tensor:
        """LPIPS between the images ``x`` and the images whose :meth:`reference` is ``fy``.

        Each layer's term, the spatial mean of the head's weighted sum over channels, is taken as the weighted
        sum (in float64) of the channels' spatial means, the same number by linearity: the head as a 1x1
        convolution to one channel adds the channels in an order that changes with the CPU thread count.
        """
        total = 0
        for lin, fx, fy in zip(self.lins, self.features(x), fy):
            means = ((fx - fy) ** 2).mean(dim=(2, 3)).double()
            total = total + (means * lin.weight.flatten().double()).sum(dim=1).to(fx.dtype)
        return total.flatten()


class L2Pooling(nn.Module):
    """DISTS' L2 pooling: sqrt(conv(x^2, hanning 3x3, stride 2) + 1e-12)."""

    def __init__(self, channels: int, filter_size: int = 5, stride: int = 2):
        super().__init__()
        self.padding = (filter_size - 2) // 2
        self.stride = stride
        a = np.hanning(filter_size)[1:-1]
        g = torch.tensor(a[:, None] * a[None, :], dtype=torch.float32)
        g = g / g.sum()
        self.register_buffer("filter", g[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x ** 2, self.filter, stride=self.stride, padding=self.padding, groups=x.shape[1])
        return (out + 1e-12).sqrt()


DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)
_VGG_STAGES = ((0, 4, None), (5, 9, 64), (10, 16, 128), (17, 23, 256), (24, 30, 512))


class DISTS(nn.Module):
    """DISTS; ``forward(x, y)`` takes [0, 1] images and returns one value per image."""

    def __init__(self, vgg16_state: dict | None = None, alpha_beta: dict | None = None):
        super().__init__()
        if vgg16_state is not None:  # the feature layers alone: VGG16's classifier takes 1.6 s to initialise
            feats = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
            load_features(feats, vgg16_state, "vgg16")
        else:
            feats = torchvision.models.vgg16(weights=None).features
        stages = []
        for a, b, pool in _VGG_STAGES:
            layers = ([L2Pooling(pool)] if pool else []) + [feats[i] for i in range(a, b)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, -1, 1, 1))
        n = sum(DISTS_CHANNELS)
        self.register_buffer("alpha", torch.full((1, n, 1, 1), 0.1))
        self.register_buffer("beta", torch.full((1, n, 1, 1), 0.1))
        if alpha_beta is not None:
            self.alpha.copy_(alpha_beta["alpha"].reshape(1, n, 1, 1))
            self.beta.copy_(alpha_beta["beta"].reshape(1, n, 1, 1))
        self.eval().requires_grad_(False)

    @classmethod
    def from_manager(cls) -> "DISTS":
        return cls(_backbone_state("vgg16"), wm.load_state_dict(wm.get("dists_alpha_beta", download_missing=False)))

    def levels(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        """The image and its five VGG16 stages, one by one (a level is dropped once the next is computed)."""
        yield x
        h = (x - self.mean) / self.std
        for s in self.stages:
            h = s(h)
            yield h

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The image and its five VGG16 stages."""
        return list(self.levels(x))

    @staticmethod
    def moments(f: torch.Tensor, scratch: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Each channel's spatial mean and variance of a level ``f`` (``(N, C, 1, 1)`` each), in float32 as
        DISTS_pytorch computes them (the mean of the squared deviations). ``scratch``: a tensor of ``f``'s shape
        to hold the deviations (a new one where None)."""
        m = f.mean(dim=(2, 3), keepdim=True)
        d = torch.sub(f, m, out=scratch) if scratch is not None else f - m
        return m, d.mul_(d).mean(dim=(2, 3), keepdim=True)

    def reference(self, y: torch.Tensor) -> list[torch.Tensor]:
        """What :meth:`distance` compares with, for the [0, 1] images ``y``: their six levels, then each
        level's channel means, then its channel variances (18 tensors, one row per image)."""
        fys = self.features(y)
        stats = [self.moments(f) for f in fys]
        return fys + [m for m, _ in stats] + [v for _, v in stats]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.distance(x, self.reference(y))

    def distance(self, x: torch.Tensor, ref: list[torch.Tensor]) -> torch.Tensor:
        """DISTS between the images ``x`` and the images whose :meth:`reference` is ``ref``.

        Each value is DISTS_pytorch's, operation for operation: the HR's means and variances are those it
        computes, computed once (in :meth:`reference`); each SR level's deviations and its product with the HR
        level share one buffer, freed with the level.
        """
        c1 = c2 = 1e-6
        n = len(DISTS_CHANNELS)
        fys, mys, vys = ref[:n], ref[n:2 * n], ref[2 * n:]
        w_sum = self.alpha.sum() + self.beta.sum()
        alpha = torch.split(self.alpha / w_sum, list(DISTS_CHANNELS), dim=1)
        beta = torch.split(self.beta / w_sum, list(DISTS_CHANNELS), dim=1)
        d1 = d2 = 0
        for k, (fx, fy, my, vy) in enumerate(zip(self.levels(x), fys, mys, vys)):
            buf = torch.empty_like(fx)
            mx, vx = self.moments(fx, buf)
            s1 = (2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1)
            d1 = d1 + (alpha[k] * s1).sum(1, keepdim=True)
            cov = torch.mul(fx, fy, out=buf).mean(dim=(2, 3), keepdim=True) - mx * my
            s2 = (2 * cov + c2) / (vx + vy + c2)
            d2 = d2 + (beta[k] * s2).sum(1, keepdim=True)
        return (1 - (d1 + d2)).flatten()


@torch.no_grad()
def hr_side(net: "LPIPSAlex | DISTS", hr: torch.Tensor) -> list[torch.Tensor]:
    """The HR images' :meth:`~DISTS.reference`: what a metric compares SR images with (and what a cache may
    keep)."""
    from ..determinism import deterministic

    with deterministic():
        return net.reference(to_unit_rgb(hr))


@torch.no_grad()
def from_hr_side(net: "LPIPSAlex | DISTS", sr: torch.Tensor, fy: list[torch.Tensor]) -> torch.Tensor:
    """The metric per image between ``sr`` and the HR images whose :func:`hr_side` is ``fy``."""
    from ..determinism import deterministic

    x = to_unit_rgb(sr)
    with deterministic():
        return net.distance(x, [f.to(x.device) for f in fy]).double()


def lpips(sr: torch.Tensor, hr: torch.Tensor, net: LPIPSAlex | None = None) -> torch.Tensor:
    """LPIPS per image for uint8 or [0, 1] float ``(N, 3, H, W)`` tensors (lower is better).

    ``net``: the network to use (default: one built from the weights manager for this call).
    """
    net = net if net is not None else LPIPSAlex.from_manager().to(sr.device)
    return from_hr_side(net, sr, hr_side(net, hr.to(sr.device)))


def dists(sr: torch.Tensor, hr: torch.Tensor, net: DISTS | None = None) -> torch.Tensor:
    """DISTS per image for uint8 or [0, 1] float ``(N, 3, H, W)`` tensors (lower is better); ``net`` as
    :func:`lpips`."""
    net = net if net is not None else DISTS.from_manager().to(sr.device)
    return from_hr_side(net, sr, hr_side(net, hr.to(sr.device)))
