"""The metric registry: one table of every metric, in the spirit of pyiqa's.

Each entry says what the metric needs (``full_reference``: SR and HR;
``lr_reference``: SR and LR; ``no_reference``: SR alone; ``distribution``:
sets of images), which way is better, and a version string recorded with
every result row so that numbers from different definitions never mix.

Entry functions take a :class:`MetricInputs` batch and return one float64
value per image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from typing import TYPE_CHECKING, Any

from ..errors import AesopBenchError
from ..evaluate.protocol import Protocol

if TYPE_CHECKING:  # torch is imported where a metric is computed, not where the table is read
    import torch


@dataclass
class MetricInputs:
    """One batch: uint8 ``(N, C, H, W)`` tensors and the protocol they were made under."""

    sr: "torch.Tensor"
    hr: "torch.Tensor | None"
    lr: "torch.Tensor | None"
    protocol: Protocol
    device: str = "cpu"
    options: dict = field(default_factory=dict)  # e.g. {"ae": name or path} for ae_psnr


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # full_reference | lr_reference | no_reference | distribution
    lower_better: bool
    version: str
    fn: Callable[[MetricInputs], Any]
    description: str
    needs: tuple[str, ...] = ()
    variant: Callable[[dict], str] | None = None  # what of the run's options enters the version

    def version_for(self, options: dict) -> str:
        return self.version if self.variant is None else f"{self.version}+{self.variant(options)}"


def _psnr(x: MetricInputs):
    from .fidelity import psnr

    p = x.protocol
    return psnr(x.sr, x.hr, p.effective_crop_border, True, p.y_round)


def _ssim(x: MetricInputs):
    from .fidelity import ssim

    p = x.protocol
    return ssim(x.sr, x.hr, p.effective_crop_border, True, p.y_round)


def _lr_psnr(x: MetricInputs):
    from .fidelity import lr_psnr

    return lr_psnr(x.sr, x.lr, x.protocol.y_round)


def _lpips(x: MetricInputs):
    from .perceptual import lpips

    return lpips(x.sr.to(x.device), x.hr.to(x.device)).cpu()


def _dists(x: MetricInputs):
    from .perceptual import dists

    return dists(x.sr.to(x.device), x.hr.to(x.device)).cpu()


def _niqe(x: MetricInputs):
    from .niqe import niqe

    return niqe(x.sr, crop_border=x.protocol.effective_crop_border, color_space="yiq")


def _ae_psnr(x: MetricInputs):
    from .ae import DEFAULT_AE, ae_psnr, load_ae

    p = x.protocol
    ae = load_ae(x.options.get("ae") or DEFAULT_AE, x.device)
    return ae_psnr(x.sr, x.hr, ae, p.effective_crop_border, p.y_round)


def _ae_variant(options: dict) -> str:
    from .ae import DEFAULT_AE, ae_identity

    return "ae=" + ae_identity(options.get("ae") or DEFAULT_AE)


def _iqa(name: str):
    def fn(x: MetricInputs):
        from .iqa import score

        split = x.options.get("clipiqa_split_above") if name == "clipiqa" else None
        return score(name, x.sr, x.device, split_above=split)
    return fn


def _split_variant(options: dict) -> str:
    return f"split>{options.get('clipiqa_split_above')}"


def _fid_features(img, device, options):
    from .distribution import image_features

    return image_features(img, "whole", device, options.get("fid_mode") or "legacy_pytorch")


def _pfid_features(img, device, options):
    from .distribution import image_features

    return image_features(img, "patch", device, options.get("fid_mode") or "legacy_pytorch")


def _fid_variant(options: dict) -> str:
    return options.get("fid_mode") or "legacy_pytorch"


METRICS: dict[str, MetricSpec] = {m.name: m for m in [
    MetricSpec("psnr", "full_reference", False, "psnr-y-v1", _psnr,
               "PSNR on the Y channel (BT.601), border crop = protocol, float64"),
    MetricSpec("ssim", "full_reference", False, "ssim-y-gauss11-v1", _ssim,
               "SSIM on the Y channel, 11x11 Gaussian sigma 1.5, valid window, float64"),
    MetricSpec("lr_psnr", "lr_reference", False, "lr-psnr-y-matlabbicubic-nocrop-v1", _lr_psnr,
               "PSNR(MATLAB-bicubic-downscaled SR, LR) on Y, no crop"),
    MetricSpec("lpips", "full_reference", True, "lpips-alex-v0.1-whole-v1", _lpips,
               "LPIPS v0.1, AlexNet, inputs in [-1, 1], whole image, float32", ("alexnet", "lpips_alex_v0.1")),
    MetricSpec("dists", "full_reference", True, "dists-vgg16-whole-v1", _dists,
               "DISTS, VGG16, inputs in [0, 1], whole image, no resize, float32", ("vgg16", "dists_alpha_beta")),
    MetricSpec("ae_psnr", "full_reference", False, "ae-psnr-y-quantised-v1", _ae_psnr,
               "PSNR(AE(SR), AE(HR)) with the protocol's PSNR settings; AE outputs quantised to 8 bits",
               ("aesop_ae",), variant=_ae_variant),
    MetricSpec("niqe", "no_reference", True, "niqe-live-yiq-round-v1", _niqe,
               "NIQE, LIVE pristine model, Y of YIQ rounded (IQA-PyTorch's default), border crop = protocol",
               ("niqe_pristine",)),
    MetricSpec("maniqa", "no_reference", False, "maniqa-koniq-pyiqa0.1.16-v1", _iqa("maniqa"),
               "MANIQA (KonIQ-10k), IQA-PyTorch, 20 uniform 224 crops", ("maniqa_koniq",)),
    MetricSpec("musiq", "no_reference", False, "musiq-koniq-pyiqa0.1.16-v1", _iqa("musiq"),
               "MUSIQ (KonIQ-10k), IQA-PyTorch", ("musiq_koniq",)),
    MetricSpec("clipiqa", "no_reference", False, "clipiqa-rn50-pyiqa0.1.16-v1", _iqa("clipiqa"),
               "CLIP-IQA, CLIP RN50, IQA-PyTorch prompts; quadrant split above a pixel count", ("clip_rn50",),
               variant=_split_variant),
    MetricSpec("fid", "distribution", True, "fid-whole299-v1", _fid_features,
               "FID, one Inception feature per whole image resized to 299, SR set vs HR set; --fid-mode "
               "legacy_pytorch (pytorch-fid, bilinear) or clean (clean-fid)", ("pt_inception",),
               variant=_fid_variant),
    MetricSpec("pfid", "distribution", True, "pfid-299patches-zeropad-v1", _pfid_features,
               "patch-FID: non-overlapping 299x299 patches (zero-padded if smaller), SR vs HR patches",
               ("pt_inception",), variant=_fid_variant),
]}


def expand_metrics(spec: str | list[str]) -> list[str]:
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in (i.strip().lower() for i in items):
        if not item:
            continue
        names = list(METRICS) if item == "all" else [item]
        for n in names:
            if n not in METRICS:
                raise AesopBenchError(f"unknown metric {n!r}; choose from {', '.join(METRICS)} or 'all'")
            if n not in out:
                out.append(n)
    if not out:
        raise AesopBenchError("no metric given; use e.g. --metrics psnr,ssim")
    return out
