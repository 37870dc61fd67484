"""The metric registry: one table of every metric, in the spirit of pyiqa's, and nothing but data.

Each entry says what the metric needs (its :class:`Kind`), which way is better, how it is shown in tables
(label, decimals), which options it takes (:class:`~aesop_bench.metrics.options.Option`: type, default, valid
values, version tag), which weight files, about what it costs on a CPU, and a version string recorded with every
result row so that numbers from different definitions never mix. An option that changes the numbers adds a tag
to the version (``ae_psnr`` the AE's hash, ``clipiqa`` its split threshold, ``fid`` its feature mode); how the
whole string is built is :mod:`.version`'s.

The contract, one signature per kind; the scorer of each metric (:mod:`.scorers`) is built for a
:class:`MetricContext` (protocol, device, resolved options) and owns whatever networks it needs:

* per-image metrics: ``scorer(sr, hr, lr) -> float64 tensor (N,)``, on uint8 ``(N, C, H, W)`` tensors
  (``hr``/``lr`` None where the kind does not use them);
* distribution metrics: ``scorer(imgs) -> [ndarray (k, d), ...]``, the features of each uint8 ``(C, H, W)``
  image of a list; the set's value is :func:`~aesop_bench.metrics.distribution.set_distance` of the SR and HR
  features.

:class:`aesop_bench.metrics.metric.Metric` is the object users hold; ``aesop-bench metrics list`` shows the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Callable

from ..errors import ConfigError
from .options import SHORTHANDS, Option, names, parse, resolve
from .version import ae_tag, version_of

if TYPE_CHECKING:  # torch is imported where a metric is computed, not where the table is read
    from ..protocols import Protocol


class Kind(str, Enum):
    """What a metric compares; its value is the text stored in summaries and compared with strings."""

    FULL_REFERENCE = "full_reference"  # SR and HR
    LR_REFERENCE = "lr_reference"  # SR and LR
    NO_REFERENCE = "no_reference"  # SR alone
    DISTRIBUTION = "distribution"  # a set of SR images and its set of HR images

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class MetricContext:
    """What a scorer is built for: the protocol, the device, and the metric's resolved options."""

    protocol: "Protocol"
    device: str = "cpu"
    options: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class MetricSpec:
    """One metric's entry in the table: every field by its name. ``cpu_s_per_mpix``: rough seconds per HR
    megapixel on a 2-core x86 CPU (this project's CI class), for ``reproduce --dry-run``'s estimate."""

    name: str
    kind: Kind
    lower_better: bool
    version: str
    description: str
    label: str
    decimals: int
    cpu_s_per_mpix: float
    # a network metric's forward FLOPs, SR and HR sides together: (GFLOP per HR megapixel, GFLOP per image, for a
    # network that sees a fixed size), counted by benchmarks/bench_costs.py; None: no network (the GPU estimate
    # takes its CPU cost instead)
    gflop: tuple[float, float] | None = None
    weights: tuple[str, ...] = ()  # weights-manifest names
    options: tuple[Option, ...] = ()
    protocol_tag: Callable[["Protocol"], str] | None = None  # what of the protocol the version records

    def resolve_options(self, given: dict | None = None) -> dict:
        """Every option's canonical value: defaults overridden by ``given`` (None values keep the default); an
        unknown option or a value it refuses is a ConfigError naming the valid ones."""
        return resolve(self.name, self.options, given)

    def version_for(self, options: dict | None = None, protocol: "Protocol | None" = None) -> str:
        """The version string of values computed with ``options`` under ``protocol`` (:mod:`.version`)."""
        return version_of(self, options, protocol)


AE = Option("ae", str, "aesop_ae", "the auto-encoder", names="a weights name or a checkpoint path", tag=ae_tag)
SPLIT_ABOVE = Option("split_above", int, None, "score images with more pixels than this by quadrants (the paper: "
                     "DRealSR)", low=0, tag=lambda v: f"split>{v}")
FID_MODE = Option("fid_mode", str, "legacy_pytorch", "features: legacy_pytorch (pytorch-fid) or clean (clean-fid)",
                  choices=("legacy_pytorch", "clean"), tag=lambda v: v)

FR, LR, NR, DIST = Kind.FULL_REFERENCE, Kind.LR_REFERENCE, Kind.NO_REFERENCE, Kind.DISTRIBUTION

# cpu_s_per_mpix: what the evaluator's timings record on the CI machine class (2 cores) for Set14's first five
# images (0.22 HR megapixels each; MANIQA, NIMA, LIQE and FID see a fixed size per image: per image they cost this
# times 0.22), stand-in weights, the harness's default threads (one, at a load average of 3.3 to 4.3 from other
# processes): benchmarks/bench_costs.py; TOPIQ-NR, NIMA, PaQ-2-PiQ, LIQE and ARNIQA the same way with one thread set
# (the lower of two runs, load average 1.2 to 1.6). gflop: counted with torch's FlopCounterMode as bench_costs.py
# counts (one image at 512x512 and at 512x768, solved for a part per megapixel and a part per image).
METRICS: dict[str, MetricSpec] = {m.name: m for m in [
    # psnr v2, ssim v2, lr_psnr v3, lpips v2, ae_psnr v3, niqe v2, musiq v2, fid v2, pfid v2: every sum in an
    # order independent of the CPU thread count (values moved by a few ulp at most; earlier rows are recomputed)
    MetricSpec(
        name="psnr", kind=FR, lower_better=False, version="psnr-y-v2", cpu_s_per_mpix=0.03,
        description="PSNR on the Y channel (BT.601), border crop = protocol, float64", label="PSNR", decimals=3),
    MetricSpec(
        name="ssim", kind=FR, lower_better=False, version="ssim-y-gauss11-v2", cpu_s_per_mpix=0.1,
        description="SSIM on the Y channel, 11x11 Gaussian sigma 1.5, valid window, float64", label="SSIM",
        decimals=4),
    # v2: a result folder's LR is made from the SR files' area (v1: from the HR cropped to the protocol's modcrop)
    MetricSpec(
        name="lr_psnr", kind=LR, lower_better=False, version="lr-psnr-y-matlabbicubic-nocrop-v3", cpu_s_per_mpix=0.06,
        description="PSNR(MATLAB-bicubic-downscaled SR, LR) on Y, no crop", label="LR-PSNR", decimals=3,
        # under a rounding protocol a grayscale image's Y is rounded too (it was not before this tag)
        protocol_tag=lambda p: "grayround" if p.y_round else ""),
    MetricSpec(
        name="lpips", kind=FR, lower_better=True, version="lpips-alex-v0.1-whole-v2", cpu_s_per_mpix=0.8,
        gflop=(57.0, 0.0),
        description="LPIPS v0.1, AlexNet, inputs in [-1, 1], whole image, float32", label="LPIPS", decimals=4,
        weights=("alexnet", "lpips_alex_v0.1")),
    MetricSpec(
        name="dists", kind=FR, lower_better=True, version="dists-vgg16-whole-v1", cpu_s_per_mpix=14.0,
        gflop=(1224.5, 0.0),
        description="DISTS, VGG16, inputs in [0, 1], whole image, no resize, float32", label="DISTS", decimals=4,
        weights=("vgg16", "dists_alpha_beta")),
    MetricSpec(
        name="ae_psnr", kind=FR, lower_better=False, version="ae-psnr-y-float-v3", cpu_s_per_mpix=58.0,
        gflop=(4852.0, 0.0),
        description="PSNR(AE(SR), AE(HR)) with the protocol's PSNR settings; AE outputs compared unquantised",
        label="AE-PSNR", decimals=3, weights=("aesop_ae",), options=(AE,),
        # under a rounding protocol the AE outputs' Y stays unrounded (it was rounded before this tag)
        protocol_tag=lambda p: "yfloat" if p.y_round else ""),
    MetricSpec(
        name="niqe", kind=NR, lower_better=True, version="niqe-live-yiq-round-v2", cpu_s_per_mpix=0.37,
        description="NIQE, LIVE pristine model, Y of YIQ rounded (IQA-PyTorch's default), the protocol's NIQE crop",
        label="NIQE", decimals=4, weights=("niqe_pristine",), protocol_tag=lambda p: f"crop{p.effective_niqe_crop}"),
    MetricSpec(
        name="maniqa", kind=NR, lower_better=False, version="maniqa-koniq-pyiqa0.1.16-v1", cpu_s_per_mpix=381.0,
        gflop=(0.0, 5156.5),
        description="MANIQA (KonIQ-10k), IQA-PyTorch, 20 uniform 224 crops", label="MANIQA", decimals=4,
        weights=("maniqa_koniq",)),
    MetricSpec(
        name="musiq", kind=NR, lower_better=False, version="musiq-koniq-pyiqa0.1.16-v2", cpu_s_per_mpix=3.8,
        gflop=(88.1, 11.9),
        description="MUSIQ (KonIQ-10k), IQA-PyTorch", label="MUSIQ", decimals=4, weights=("musiq_koniq",)),
    MetricSpec(
        name="clipiqa", kind=NR, lower_better=False, version="clipiqa-rn50-pyiqa0.1.16-v1", cpu_s_per_mpix=3.2,
        gflop=(242.6, 0.0),
        description="CLIP-IQA, CLIP RN50, IQA-PyTorch prompts; quadrant split above a pixel count",
        label="CLIP-IQA", decimals=4, weights=("clip_rn50",), options=(SPLIT_ABOVE,)),
    # IQA-PyTorch's default variants of these names, as its networks compute them (pyiqa 0.1.16's table says
    # higher is better for each)
    MetricSpec(
        name="topiq_nr", kind=NR, lower_better=False, version="topiq-nr-koniq-res50-pyiqa0.1.16-v1",
        cpu_s_per_mpix=4.2, gflop=(287.1, 0.0),
        description="TOPIQ-NR (CFANet, ResNet-50, KonIQ-10k), IQA-PyTorch, whole image", label="TOPIQ-NR",
        decimals=4, weights=("topiq_nr_koniq",)),
    MetricSpec(
        name="nima", kind=NR, lower_better=False, version="nima-ava-inceptionresnetv2-pyiqa0.1.16-v1",
        cpu_s_per_mpix=2.0, gflop=(0.0, 26.3),
        description="NIMA (InceptionResNetV2, AVA), IQA-PyTorch, resized and centre-cropped to 299, mean score 1-10",
        label="NIMA", decimals=4, weights=("nima_ava",)),
    MetricSpec(
        name="paq2piq", kind=NR, lower_better=False, version="paq2piq-res18-pyiqa0.1.16-v1",
        cpu_s_per_mpix=0.9, gflop=(72.3, 0.0),
        description="PaQ-2-PiQ (ResNet-18, whole-image RoI pool), IQA-PyTorch, whole image", label="PaQ-2-PiQ",
        decimals=4, weights=("paq2piq",)),
    MetricSpec(
        name="liqe", kind=NR, lower_better=False, version="liqe-koniq-vitb32-pyiqa0.1.16-v1",
        cpu_s_per_mpix=4.6, gflop=(0.0, 130.9),
        description="LIQE (CLIP ViT-B/32, KonIQ-10k), IQA-PyTorch, 15 224-pixel patches, score 1-5; a side under "
                    "224 enlarged first", label="LIQE", decimals=4, weights=("liqe_koniq",)),
    MetricSpec(
        name="arniqa", kind=NR, lower_better=False, version="arniqa-koniq-pyiqa0.1.16-v1",
        cpu_s_per_mpix=2.7, gflop=(203.6, 0.0),
        description="ARNIQA (ResNet-50 encoder at full and half size, KonIQ-10k regressor), IQA-PyTorch, 0-1",
        label="ARNIQA", decimals=4, weights=("arniqa_encoder", "arniqa_regressor_koniq")),
    MetricSpec(
        name="fid", kind=DIST, lower_better=True, version="fid-whole299-v2", cpu_s_per_mpix=2.6, gflop=(0.0, 22.8),
        description="FID, one Inception feature per whole image resized to 299, SR set vs HR set", label="FID",
        decimals=3, weights=("pt_inception",), options=(FID_MODE,)),
    MetricSpec(
        name="pfid", kind=DIST, lower_better=True, version="pfid-299patches-zeropad-v2", cpu_s_per_mpix=3.2,
        gflop=(255.5, 0.0),
        description="patch-FID: non-overlapping 299x299 patches (zero-padded if smaller), SR vs HR patches",
        label="pFID", decimals=3, weights=("pt_inception",), options=(FID_MODE,)),
]}


def metric_options(nested: dict | None = None, **shorthands) -> dict:
    """``{metric: {option: canonical value}}`` of this table (:func:`.options.parse`): ``nested`` in the metrics'
    own option names, completed by :data:`SHORTHANDS`; an unknown metric, option or shorthand, or a refused
    value, is a ConfigError naming the valid ones.

    >>> metric_options({"clipiqa": {"split_above": "1e6"}}, fid_mode="clean")
    {'fid': {'fid_mode': 'clean'}, 'pfid': {'fid_mode': 'clean'}, 'clipiqa': {'split_above': 1000000}}
    """
    return parse(METRICS, nested, **shorthands)


def option_names() -> str:
    """Every metric's options, as ``metric: option, option; ...``."""
    return names(METRICS)


def get_spec(name: str) -> MetricSpec:
    """A metric's registry entry by name (any case).

    >>> get_spec("LPIPS").lower_better, get_spec("psnr").label
    (True, 'PSNR')
    """
    try:
        return METRICS[name.strip().lower()]
    except KeyError:
        raise ConfigError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}") from None


def expand_metrics(spec: str | list[str]) -> list[str]:
    """Metric names from ``a,b`` or a list (``all``: every metric), checked, each once, in the order given.

    >>> expand_metrics("psnr, SSIM,psnr")
    ['psnr', 'ssim']
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in (i.strip().lower() for i in items):
        if not item:
            continue
        for n in list(METRICS) if item == "all" else [item]:
            if n not in METRICS:
                raise ConfigError(f"unknown metric {n!r}; choose from {', '.join(METRICS)} or 'all'")
            if n not in out:
                out.append(n)
    if not out:
        raise ConfigError("no metric given; use e.g. --metrics psnr,ssim")
    return out


__all__ = ["Kind", "MetricContext", "MetricSpec", "METRICS", "SHORTHANDS", "get_spec", "expand_metrics",
           "metric_options", "option_names"]
