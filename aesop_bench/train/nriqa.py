"""The no-reference IQA loss term of Zhang et al. (CVPR 2025), "Augmenting Perceptual Super-Resolution via Image
Quality Predictors": ``weight * (-Q(SR))`` for a higher-is-better predictor Q (``weight * Q(SR)`` for a
lower-is-better one), Q's score averaged over the batch; the paper found MUSIQ best.

Q is one of our own metric networks (:func:`aesop_bench.metrics.iqa.build`, by name, with the weights manager's
weights), frozen (no parameter requires grad) and always in eval mode whatever ``train()`` is called with: in train
mode pyiqa's MUSIQ skips its multi-scale preprocessing (and then fails on an image), MANIQA takes one random crop.
Gradients reach the SR image through the network.

Differentiable here (:data:`DIFFERENTIABLE`), each forward path read in pyiqa 0.1.16 for anything that would
detach, round or leave torch:

* ``musiq``: eval-mode preprocessing ``(x - 0.5) * 2`` then ``get_multiscale_patches``: for each longer side
  (224, 384) an aspect-preserving ``F.interpolate(mode='bicubic', align_corners=False)`` resize, TF-'SAME' zero
  padding and ``F.unfold`` into 32x32 patches, concatenated with the (constant) position, scale and mask channels.
  All torch operations, differentiable in the pixels; numpy only computes the sequence length from the sizes. The
  rest is convolutions, GroupNorm, max-pool, attention and ``dist_to_mos``, all differentiable.
* ``clipiqa``: ImageNet-CLIP normalisation, the CLIP RN50 image tower with pyiqa's interpolated position embedding,
  cosine logits against the two prompt pairs' text features, softmax. The text features are a constant: encoded
  once per device by :class:`~aesop_bench.metrics.iqa.PromptsOnce`, whose forward this module runs with autograd.

Refused as a loss: ``maniqa`` (20 uniform 224x224 crops per image at test time, one random crop in train mode: the
20-crop forward and backward of a 256x256 patch counts 11.6 TFLOP, 290x MUSIQ's 39 GFLOP and 26x an RRDB generator
step's 441 GFLOP; 79 s against MUSIQ's 6.8 s on a loaded 2-core CPU, benchmarks/bench_nriqa_loss.py), and its
crops are not the training patch (20 overlapping 224x224 windows of it, the patch's pixels weighted unevenly);
``niqe``, ``brisque``, ``pi`` and every other name (hand-crafted statistics with rounding, or not a network of
ours), with an error that names the differentiable ones.

The input is the SR batch as the generator gives it, float in [0, 1], NCHW RGB, not clamped and not quantised (the
gradient would vanish where a clamp is active and a rounding has none).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConfigError, InputError
from ..metrics import iqa
from ..metrics.registry import get_spec

# metric name -> what its forward is (checked differentiable in the SR pixels; module docstring)
DIFFERENTIABLE: dict[str, str] = {
    "musiq": "MUSIQ (KonIQ-10k): multi-scale patches at longer sides 224 and 384, all torch operations",
    "clipiqa": "CLIP-IQA (CLIP RN50): the image tower against fixed prompt features",
    "topiq_nr": "TOPIQ-NR (CFANet, ResNet-50, KonIQ-10k): ImageNet normalisation, ResNet-50 features and the "
                "top-down attention head on the whole patch, all torch operations",
}
REFUSED: dict[str, str] = {
    "maniqa": "MANIQA scores 20 uniform 224x224 crops per image (one random crop in train mode): its forward and "
              "backward count 11.6 TFLOP per 256x256 patch, 290x MUSIQ's and 26x an RRDB generator step's "
              "(benchmarks/bench_nriqa_loss.py), and its crops are not the training patch; use musiq or clipiqa",
}


def _forward_with_grad(net: nn.Module):
    """The network's forward with autograd on: CLIP-IQA's :class:`iqa.PromptsOnce` forward is written for scoring
    (under ``torch.no_grad``); its undecorated function is the same operations."""
    if isinstance(net, iqa.PromptsOnce):
        fn = getattr(iqa.PromptsOnce.forward, "__wrapped__", iqa.PromptsOnce.forward)
        return lambda x: fn(net, x)
    return net


def _unregistered_modules(net: nn.Module) -> list[nn.Module]:
    """Networks a module holds in a plain list or tuple attribute, out of reach of ``parameters()``, ``eval()`` and
    ``requires_grad_()``: pyiqa's CLIP-IQA keeps its CLIP model as ``clip_model = [model]`` (so that its weights
    stay out of CLIP-IQA's state dict); freezing only the registered modules would leave CLIP trainable."""
    out: list[nn.Module] = []
    for m in net.modules():
        for v in vars(m).values():
            if isinstance(v, (list, tuple)):
                out += [x for x in v if isinstance(x, nn.Module) and all(x is not y for y in out)]
    return out


class NRIQALoss(nn.Module):
    """``weight * (-mean Q(SR))`` (higher-is-better Q) or ``weight * mean Q(SR)`` (lower-is-better), Q the named
    no-reference metric's network built by :func:`iqa.build` (``weights``: a weights-manifest name or file path;
    None: the metric's default) on ``device``. A metric that is not differentiable here is a ConfigError naming
    the ones that are, before any network is built."""

    def __init__(self, metric: str, weight: float = 1.0, device="cpu", weights: str | None = None):
        super().__init__()
        name = str(metric).strip().lower()
        if name in REFUSED:
            raise ConfigError(f"nriqa metric {metric!r} is refused as a loss: {REFUSED[name]}")
        if name not in DIFFERENTIABLE:
            raise ConfigError(f"nriqa metric {metric!r} cannot be a loss: it is not a differentiable network metric "
                              f"here; choose one of {', '.join(DIFFERENTIABLE)}")
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            raise ConfigError(f"nriqa weight must be a number, got {weight!r}") from None
        if not torch.isfinite(torch.tensor(weight)):
            raise ConfigError(f"nriqa weight must be finite, got {weight!r}")
        self.metric, self.weight = name, weight
        self.lower_better = get_spec(name).lower_better
        self.net = iqa.build(name, weights).to(device)
        self._forward = _forward_with_grad(self.net)
        for m in (self.net, *_unregistered_modules(self.net)):
            m.eval().requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in (self.net, *_unregistered_modules(self.net)):
            m.eval()
        return self

    def metric_parameters(self) -> list[nn.Parameter]:
        """Every parameter of the metric's network, those it keeps out of ``parameters()`` included."""
        return [p for m in (self.net, *_unregistered_modules(self.net)) for p in m.parameters()]

    def score(self, sr: torch.Tensor) -> torch.Tensor:
        """The metric's per-image scores ``(N,)`` of an ``(N, 3, H, W)`` float batch, with autograd."""
        if sr.dim() != 4 or sr.shape[1] != 3 or not sr.is_floating_point():
            raise InputError(f"nriqa {self.metric}: give a float (N, 3, H, W) RGB batch, got {sr.dtype} "
                             f"{tuple(sr.shape)}")
        out = self._forward(sr).reshape(sr.shape[0], -1)[:, 0]
        if sr.requires_grad and torch.is_grad_enabled() and not out.requires_grad:
            raise ConfigError(f"nriqa {self.metric}: the metric's forward detached its input; it cannot be a loss")
        return out

    def forward(self, sr: torch.Tensor) -> torch.Tensor:
        s = self.score(sr).mean()
        return self.weight * (s if self.lower_better else -s)

    def extra_repr(self) -> str:
        return f"metric={self.metric}, weight={self.weight:g}, lower_better={self.lower_better}"


__all__ = ["DIFFERENTIABLE", "REFUSED", "NRIQALoss"]
