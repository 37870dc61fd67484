"""The metric object: one metric, its options, protocol and device, and the networks it owns.

The evaluator and the public API (``aesop_bench.metric``) compute through the same object, so a value
computed in a training script equals the one ``aesop-bench eval`` stores for the same images.

>>> import torch
>>> from aesop_bench.metrics.metric import Metric
>>> hr = torch.full((1, 3, 32, 32), 128, dtype=torch.uint8)
>>> sr = hr + 1                       # every channel one level up: Y moves by 219/255 of a level
>>> round(Metric("psnr", "basicsr")(sr, hr).item(), 4)   # 20 log10(255 / (219 / 255)) = 49.45272
49.4527
>>> round(Metric("psnr", "paper")(sr, hr).item(), 4)     # -10 log10((219 / 255^2)^2 + 1e-8) = 49.44890
49.4489
"""

from __future__ import annotations

from functools import cached_property
from typing import Sequence

import numpy as np
import torch

from ..errors import InputError
from ..protocols import DEFAULT_PROTOCOL
from .registry import Kind, MetricContext, get_spec


def _protocol(protocol):
    from ..protocols import Protocol, get_protocol

    return protocol if isinstance(protocol, Protocol) else get_protocol(str(protocol))


class Metric:
    """``Metric(name, protocol=DEFAULT_PROTOCOL ("paper"), device="cpu", **options)``.

    Per-image metrics: ``m(sr, hr=None, lr=None)`` -> float64 tensor ``(N,)``. ``sr``/``hr``/``lr`` are
    ``(N, C, H, W)`` or ``(C, H, W)`` tensors, uint8 or float in [0, 1] (floats are quantised to 8 bits as
    the protocol does with SR outputs), C = 1 or 3. Full-reference metrics need ``hr``; ``lr_psnr`` takes
    ``lr`` or, without it, the LR the protocol makes from ``hr`` (MATLAB bicubic).

    Distribution metrics (``fid``, ``pfid``): ``m(sr_images, hr_images)`` -> float, where each argument is
    an ``(N, C, H, W)`` tensor or a sequence of ``(C, H, W)`` tensors (sizes may differ).

    Networks are built on the first call and kept by the object. Options are checked here, before any network
    loads (an unknown option or a value it refuses: ConfigError); inputs when called (InputError).

    >>> m = Metric("ssim", "basicsr")
    >>> hr = torch.arange(64 * 64 * 3).reshape(1, 3, 64, 64).remainder(251).to(torch.uint8)
    >>> float(m(hr, hr)), m.version
    (1.0, 'ssim-y-gauss11-v2')
    """

    def __init__(self, name: str, protocol=DEFAULT_PROTOCOL, device="cpu", **options):
        self.spec = get_spec(name)
        self.name = self.spec.name
        self.protocol = _protocol(protocol)
        self.device = str(device)
        self.options = self.spec.resolve_options(options)
        self._scorer = None

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"Metric({self.name!r}, protocol={self.protocol.name!r}, device={self.device!r}{opts})"

    @cached_property
    def version(self) -> str:
        """The version string stored with every value (the definition plus the options that change numbers)."""
        return self.spec.version_for(self.options, self.protocol)

    @property
    def scorer(self):
        """The raw scorer of the registry's contract (uint8 inputs, no checks); built once."""
        if self._scorer is None:
            from .scorers import build

            self._scorer = build(self.spec, MetricContext(self.protocol, self.device, self.options))
        return self._scorer

    def score(self, sr: torch.Tensor, hr: torch.Tensor | None, lr: torch.Tensor | None) -> torch.Tensor:
        """Per-image values of uint8 ``(N, C, H, W)`` batches already prepared by the protocol."""
        from ..determinism import deterministic

        with deterministic():
            try:
                return self.scorer(sr, hr, lr)
            except ValueError as exc:  # an input the metric is undefined for (e.g. too small for NIQE)
                raise InputError(f"{self.name}: {exc}") from None
            except RuntimeError as exc:  # a network's layers cannot shrink an image this small any further
                if not any(t in str(exc) for t in ("too small", "Kernel size", "kernel size", "Padding size")):
                    raise
                raise InputError(f"{self.name}: the image ({sr.shape[-1]}x{sr.shape[-2]}) is too small for "
                                 f"the metric's network ({str(exc).splitlines()[0]}); evaluate larger "
                                 "images, or leave this metric out") from None

    def features(self, imgs: "torch.Tensor | Sequence[torch.Tensor]") -> "np.ndarray | list[np.ndarray]":
        """Distribution metrics: the features of one uint8 ``(C, H, W)`` image, or a list of the features of
        each image of a list (those not cached go through the network together)."""
        from ..determinism import deterministic

        one = isinstance(imgs, torch.Tensor)
        with deterministic():
            out = self.scorer([imgs] if one else list(imgs))
        return out[0] if one else out

    def __call__(self, sr, hr=None, lr=None):
        if self.spec.kind == Kind.DISTRIBUTION:
            if lr is not None:
                raise InputError(f"{self.name} compares two sets of images: call it as m(sr_images, hr_images)")
            return self._distance(sr, hr)
        sr = self._prepare(sr, "sr")
        hr = None if hr is None else self._prepare(hr, "hr")
        lr = None if lr is None else self._prepare(lr, "lr")
        if self.spec.kind == Kind.FULL_REFERENCE:
            if hr is None:
                raise InputError(f"{self.name} is a full-reference metric: give hr, e.g. m(sr, hr)")
            if sr.shape != hr.shape:
                raise InputError(f"{self.name}: sr and hr shapes differ: {tuple(sr.shape)} vs {tuple(hr.shape)}"
                                 "; they must be the same size (crop the HR to the SR's area first)")
        if self.spec.kind == Kind.LR_REFERENCE:
            lr = self._lr_for(sr, hr, lr)
            self._check_lr(sr, lr)
        return self.score(sr, hr, lr)

    def _check_lr(self, sr, lr) -> None:
        """The LR must be the SR's size / scale (an SR up to scale - 1 pixels larger is compared on the LR's
        area), with as many images and channels."""
        s = self.protocol.scale
        fits = all(lr.shape[d] * s <= sr.shape[d] < (lr.shape[d] + 1) * s for d in (-2, -1))
        if not fits or lr.shape[:2] != sr.shape[:2]:
            raise InputError(
                f"{self.name}: lr {tuple(lr.shape)} does not match sr {tuple(sr.shape)} at x{s}: the LR must be "
                f"the SR's size / {s} ({sr.shape[-1] // s}x{sr.shape[-2] // s}), with as many images and channels; "
                "check the scale (ab.protocol(..., scale=N)) or give the LR of these images")

    # -- input checks ---------------------------------------------------------------------------------------
    def _prepare(self, x, what: str) -> torch.Tensor:
        from ..data.transforms import to_rgb
        from ..imageio import quantize

        if not isinstance(x, torch.Tensor):
            raise InputError(f"{self.name}: {what} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4:
            raise InputError(f"{self.name}: {what} must be (N, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
        if 0 in x.shape:
            raise InputError(f"{self.name}: {what} is empty (shape {tuple(x.shape)}); give at least one image "
                             "of at least one pixel")
        if x.shape[1] not in (1, 3):
            raise InputError(f"{self.name}: {what} has {x.shape[1]} channels (shape {tuple(x.shape)}); "
                             "images must be RGB or grayscale, channels first (N, C, H, W)")
        if x.dtype != torch.uint8:
            if not x.is_floating_point():
                raise InputError(f"{self.name}: {what} has dtype {x.dtype}; give uint8 (0-255) or float "
                                 "in [0, 1]")
            check_float_image(x, f"{self.name}: float {what}")
            x = quantize(x)
        x = x.detach().cpu()
        return to_rgb(x) if self.protocol.grayscale == "rgb" else x

    def _lr_for(self, sr, hr, lr):
        if lr is not None:
            return lr
        if hr is None:
            raise InputError(f"{self.name} compares the downscaled SR with the LR: give lr, or hr to make it "
                             "from (MATLAB bicubic, as the protocol does)")
        from ..data.transforms import protocol_lr

        return protocol_lr(hr, self.protocol)

    def _distance(self, sr, hr) -> float:
        from .distribution import set_distance

        if hr is None:
            raise InputError(f"{self.name} compares two sets of images: call it as m(sr_images, hr_images)")
        srs, hrs = self._images(sr, "sr"), self._images(hr, "hr")  # both checked before any network loads
        return set_distance(self.features(srs), self.features(hrs))

    def _images(self, xs, what: str) -> list[torch.Tensor]:
        """Every image of an ``(N, C, H, W)`` or ``(C, H, W)`` tensor, or of a list of such tensors."""
        if isinstance(xs, torch.Tensor):
            xs = [xs]
        if not isinstance(xs, Sequence) or not xs:
            raise InputError(f"{self.name}: {what} must be a non-empty (N, C, H, W) tensor or a list of "
                             "(C, H, W) or (N, C, H, W) tensors")
        return [img for x in xs for img in self._prepare(x, what)]


def check_float_image(x: torch.Tensor, what: str) -> None:
    """Refuse a float image with values outside [0, 1] or non-finite values (NaN would pass any range test and
    become 0 when quantised), naming ``what``."""
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise InputError(f"{what} holds {bad} non-finite value(s) (NaN or inf) of {x.numel()}; the image is "
                         "not defined there: check the network or the data that made it")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise InputError(f"{what} must lie in [0, 1], got values in [{lo:.9g}, {hi:.9g}]; divide 0-255 "
                         "floats by 255")


def metric(name: str, protocol=DEFAULT_PROTOCOL, device="cpu", **options) -> Metric:
    """Build a metric by name (``aesop-bench metrics list`` shows them all). See :class:`Metric`.

    >>> import torch
    >>> import aesop_bench as ab
    >>> hr = torch.rand(2, 3, 48, 48)
    >>> ab.metric("ssim")(hr, hr).tolist()                 # identical images
    [1.0, 1.0]
    >>> ab.metric("psnr", protocol=ab.protocol("matlab", crop_border=0)).protocol.effective_crop_border
    0
    >>> ab.metric("clipiqa", split_above=1_000_000).version   # + w=HASH unless the weights are the published ones
    'clipiqa-rn50-pyiqa0.1.16-v1+split>1000000+w=unavailable'
    """
    return Metric(name, protocol, device, **options)
