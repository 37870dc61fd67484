"""The metric registry: one table of every metric, in the spirit of pyiqa's.

Each entry says what the metric needs (``full_reference``: SR and HR;
``lr_reference``: SR and LR; ``no_reference``: SR alone; ``distribution``:
sets of images), which way is better, how it is shown in tables (label,
decimals), which options it takes with their defaults, and a version string
recorded with every result row so that numbers from different definitions
never mix. An option that changes the numbers adds a tag to the version
(``ae_psnr`` the AE's hash, ``clipiqa`` its split threshold, ``fid`` its
feature mode).

The contract, one signature per kind. ``spec.make(ctx)`` builds a scorer for
a :class:`MetricContext` (protocol, device, resolved options); the scorer owns
whatever networks it needs and builds them on first use.

* per-image metrics: ``scorer(sr, hr, lr) -> float64 tensor (N,)``, on uint8
  ``(N, C, H, W)`` tensors (``hr``/``lr`` None where the kind does not use them);
* distribution metrics: ``scorer(imgs) -> [ndarray (k, d), ...]``, the features
  of each uint8 ``(C, H, W)`` image of a list; the set's value is
  :func:`set_distance` of the SR and HR features.

:class:`aesop_bench.metrics.metric.Metric` is the object users hold.

Length: the table of metrics sits beside the small scorer makers it names, so that an entry reads whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..errors import AesopBenchError

if TYPE_CHECKING:  # torch is imported where a metric is computed, not where the table is read
    from ..protocols import Protocol

KINDS = ("full_reference", "lr_reference", "no_reference", "distribution")


@dataclass(frozen=True)
class Option:
    """An option of a metric: its default, and (for options that change the numbers) its version tag."""

    name: str
    default: Any
    help: str
    tag: Callable[[Any], str] | None = None


@dataclass(frozen=True)
class MetricContext:
    """What a scorer is built for: the protocol, the device, and the metric's resolved options."""

    protocol: "Protocol"
    device: str = "cpu"
    options: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class MetricSpec:
    """One metric's entry in the table: every field by its name."""

    name: str
    kind: str
    lower_better: bool
    version: str
    make: Callable[[MetricContext], Callable]
    description: str
    label: str
    decimals: int
    weights: tuple[str, ...] = ()  # weights-manifest names
    options: tuple[Option, ...] = ()
    protocol_tag: Callable[["Protocol"], str] | None = None  # what of the protocol the version records

    def resolve_options(self, given: dict | None = None) -> dict:
        """Defaults overridden by ``given`` (None values keep the default); unknown options are refused."""
        given = {k: v for k, v in (given or {}).items() if v is not None}
        known = {o.name: o.default for o in self.options}
        unknown = set(given) - set(known)
        if unknown:
            raise AesopBenchError(f"metric {self.name!r} takes no option {', '.join(sorted(unknown))}; "
                                  f"its options: {', '.join(known) or 'none'}")
        return {**known, **given}

    def version_for(self, options: dict | None = None, protocol: "Protocol | None" = None) -> str:
        opts = self.resolve_options(options)
        tags = [o.tag(opts[o.name]) for o in self.options if o.tag is not None]
        # weights other than the published ones (a stand-in, a file added by hand for an entry with no published
        # hash) are named by their hash, so values computed with them never count for others; the AE of ae_psnr
        # is named by its option's tag
        weights = _unpublished_weights_tag([n for n in self.weights if not (n == "aesop_ae" and "ae" in opts)])
        if weights:
            tags.append(weights)
        if self.protocol_tag is not None:
            if protocol is None:
                from ..protocols import get_protocol

                protocol = get_protocol("paper")
            tags.append(self.protocol_tag(protocol))
        return "+".join([self.version, *(t for t in tags if t)])


class LazyNet:
    """A network built on first use and kept by the scorer that owns it."""

    def __init__(self, build: Callable[[], Any]):
        self._build, self._net = build, None

    def __call__(self):
        if self._net is None:
            self._net = self._build()
        return self._net


# -- scorers -----------------------------------------------------------------------------------------------

def _psnr(ctx: MetricContext):
    from .fidelity import psnr

    p = ctx.protocol
    return lambda sr, hr, lr: psnr(sr, hr, p.effective_crop_border, True, p.y_round, p.psnr_eps)


def _ssim(ctx: MetricContext):
    from .fidelity import ssim

    p = ctx.protocol
    return lambda sr, hr, lr: ssim(sr, hr, p.effective_crop_border, True, p.y_round)


def _lr_psnr(ctx: MetricContext):
    from .fidelity import lr_psnr

    s = ctx.protocol.scale

    def fn(sr, hr, lr):
        # an SR larger than LR x scale (a result folder's image of the HR's size) is compared on the area the
        # LR covers, so that the downscaling is exactly 1/scale
        return lr_psnr(sr[..., : lr.shape[-2] * s, : lr.shape[-1] * s], lr, ctx.protocol.y_round, ctx.protocol.psnr_eps)
    return fn


def _perceptual(name: str):
    """The scorer maker of LPIPS or DISTS (``name``), whose HR side is kept by an HR cache on the CPU."""
    def make(ctx: MetricContext):
        from . import perceptual

        cls = {"lpips": perceptual.LPIPSAlex, "dists": perceptual.DISTS}[name]
        net = LazyNet(lambda: cls.from_manager().to(ctx.device))
        score = _with_hr_side(lambda hr: perceptual.hr_side(net(), hr),
                              lambda sr, fy: perceptual.from_hr_side(net(), sr, fy),
                              # on the CPU only: on a GPU the HR forward costs less than reading its feature maps
                              # back (a 2040x1356 image has 1.4 GB of DISTS features)
                              _hr_cache(name, ctx) if str(ctx.device) == "cpu" else None)
        return lambda sr, hr, lr: score(sr.to(ctx.device), hr.to(ctx.device)).cpu()
    return make


def _hr_cache(name: str, ctx: MetricContext):
    """The HR cache of LPIPS or DISTS, named after the metric's version and weights (None without the weights);
    written from an image's second model on (large feature maps of a cheap network: see hrcache)."""
    from .hrcache import HRCache

    tag = _weights_tag(METRICS[name].weights)
    return HRCache(f"{METRICS[name].version}-{tag}", ctx.device, second_sight=True) if tag else None


def _with_hr_side(hr_side, from_hr_side, cache):
    """A metric given as its pure HR side and comparison, with the HR side kept by ``cache`` (None: computed)."""
    if cache is None:
        return lambda sr, hr: from_hr_side(sr, hr_side(hr))
    return cache.around(hr_side, from_hr_side)


def _ae_psnr(ctx: MetricContext):
    from .ae import ae_hr_side, ae_psnr_from_hr_side, build_ae
    from .hrcache import HRCache

    p = ctx.protocol
    net = LazyNet(lambda: build_ae(ctx.options["ae"]).to(ctx.device).eval().requires_grad_(False))
    # AE(HR) is the same for every model evaluated on a set: kept on disk under the AE's hash
    tag = _ae_tag(ctx.options["ae"])
    cache = None if tag.endswith("unavailable") else HRCache(f"ae_psnr-{tag}", ctx.device)
    # the AE's outputs are floats: their Y is never rounded (the authors' calculate_aepsnr_pytorch), whatever the
    # protocol does with 8-bit images
    score = _with_hr_side(lambda hr: ae_hr_side(net(), hr),
                          lambda sr, ae_hr: ae_psnr_from_hr_side(sr, ae_hr, net(), p.effective_crop_border, False,
                                                                 p.psnr_eps), cache)
    return lambda sr, hr, lr: score(sr, hr)


def _file_hash(spec: str) -> str | None:
    """A short hash of a checkpoint path or a weights-manifest file, without torch; None where it is absent."""
    import os
    from pathlib import Path

    from .. import weights as wm
    from ..fileutil import sha256_cached

    path = Path(spec)
    if not os.path.isfile(spec):
        try:
            path = wm.cache_path(wm.entry(spec))
        except AesopBenchError:
            return None
        if not path.is_file():
            return None
    return sha256_cached(path, persist=True)[:12]


def _weights_tag(names) -> str | None:
    hashes = [_file_hash(n) for n in names]
    return None if None in hashes else "-".join(hashes)


def _unpublished_weights_tag(names) -> str:
    """``w=HASH-HASH`` of the weight files when one is not the file its packaged entry publishes (a stand-in, a
    file of another manifest, a file added by hand for an entry with no published hash); "" when every file is
    the published one, ``w=unavailable`` where one is absent. Without torch."""
    from .. import weights as wm
    from ..fileutil import sha256_cached

    tags, published = [], True
    for n in names:
        path = wm.cache_path(wm.entry(n))
        if not path.is_file():
            return "w=unavailable"
        digest = sha256_cached(path, persist=True)
        published = published and wm.is_published(n, digest)
        tags.append(digest[:12])
    return "" if published else "w=" + "-".join(tags)


def _ae_tag(spec: str) -> str:
    """The AE's file name and a short hash of it, without torch (a rerun whose rows are stored imports none)."""
    from pathlib import Path

    digest = _file_hash(spec)
    return f"ae={spec}:unavailable" if digest is None else f"ae={Path(spec).name}:{digest}"


def _niqe(ctx: MetricContext):
    from .. import weights as wm
    from .niqe import load_pristine, niqe

    model = LazyNet(lambda: load_pristine(wm.get("niqe_pristine", download_missing=False)))
    return lambda sr, hr, lr: niqe(sr, crop_border=ctx.protocol.effective_niqe_crop, color_space="yiq",
                                   pristine=model())


def _iqa(name: str):
    def make(ctx: MetricContext):
        from .iqa import build, score

        net = LazyNet(lambda: build(name).to(ctx.device))
        split = ctx.options.get("split_above")
        return lambda sr, hr, lr: score(name, sr, ctx.device, split_above=split, net=net())
    return make


def _features(view: str):
    def make(ctx: MetricContext):
        from .distribution import extractor, images_features

        mode = ctx.options["fid_mode"]
        net = LazyNet(lambda: extractor(ctx.device, mode))
        return lambda imgs: images_features(imgs, view, ctx.device, mode, net=net)
    return make


_AE = Option("ae", "aesop_ae", "the auto-encoder: a weights name or a checkpoint path", _ae_tag)
_SPLIT = Option("split_above", None, "score images with more pixels than this by quadrants (the paper: DRealSR)",
                lambda v: f"split>{v}")
_FID_MODE = Option("fid_mode", "legacy_pytorch", "features: legacy_pytorch (pytorch-fid) or clean (clean-fid)",
                   lambda v: v)

METRICS: dict[str, MetricSpec] = {m.name: m for m in [
    # psnr v2, ssim v2, lr_psnr v3, lpips v2, ae_psnr v3, niqe v2, musiq v2, fid v2, pfid v2: every sum in an
    # order independent of the CPU thread count (values moved by a few ulp at most; earlier rows are recomputed)
    MetricSpec(
        name="psnr", kind="full_reference", lower_better=False, version="psnr-y-v2", make=_psnr,
        description="PSNR on the Y channel (BT.601), border crop = protocol, float64", label="PSNR", decimals=3),
    MetricSpec(
        name="ssim", kind="full_reference", lower_better=False, version="ssim-y-gauss11-v2", make=_ssim,
        description="SSIM on the Y channel, 11x11 Gaussian sigma 1.5, valid window, float64", label="SSIM",
        decimals=4),
    # v2: a result folder's LR is made from the SR files' area (v1: from the HR cropped to the protocol's modcrop)
    MetricSpec(
        name="lr_psnr", kind="lr_reference", lower_better=False, version="lr-psnr-y-matlabbicubic-nocrop-v3",
        make=_lr_psnr, description="PSNR(MATLAB-bicubic-downscaled SR, LR) on Y, no crop", label="LR-PSNR",
        decimals=3,
        # under a rounding protocol a grayscale image's Y is rounded too (it was not before this tag)
        protocol_tag=lambda p: "grayround" if p.y_round else ""),
    MetricSpec(
        name="lpips", kind="full_reference", lower_better=True, version="lpips-alex-v0.1-whole-v2",
        make=_perceptual("lpips"), description="LPIPS v0.1, AlexNet, inputs in [-1, 1], whole image, float32",
        label="LPIPS", decimals=4, weights=("alexnet", "lpips_alex_v0.1")),
    MetricSpec(
        name="dists", kind="full_reference", lower_better=True, version="dists-vgg16-whole-v1",
        make=_perceptual("dists"), description="DISTS, VGG16, inputs in [0, 1], whole image, no resize, float32",
        label="DISTS", decimals=4, weights=("vgg16", "dists_alpha_beta")),
    MetricSpec(
        name="ae_psnr", kind="full_reference", lower_better=False, version="ae-psnr-y-float-v3", make=_ae_psnr,
        description="PSNR(AE(SR), AE(HR)) with the protocol's PSNR settings; AE outputs compared unquantised",
        label="AE-PSNR", decimals=3, weights=("aesop_ae",), options=(_AE,),
        # under a rounding protocol the AE outputs' Y stays unrounded (it was rounded before this tag)
        protocol_tag=lambda p: "yfloat" if p.y_round else ""),
    MetricSpec(
        name="niqe", kind="no_reference", lower_better=True, version="niqe-live-yiq-round-v2", make=_niqe,
        description="NIQE, LIVE pristine model, Y of YIQ rounded (IQA-PyTorch's default), the protocol's NIQE crop",
        label="NIQE", decimals=4, weights=("niqe_pristine",), protocol_tag=lambda p: f"crop{p.effective_niqe_crop}"),
    MetricSpec(
        name="maniqa", kind="no_reference", lower_better=False, version="maniqa-koniq-pyiqa0.1.16-v1",
        make=_iqa("maniqa"), description="MANIQA (KonIQ-10k), IQA-PyTorch, 20 uniform 224 crops", label="MANIQA",
        decimals=4, weights=("maniqa_koniq",)),
    MetricSpec(
        name="musiq", kind="no_reference", lower_better=False, version="musiq-koniq-pyiqa0.1.16-v2",
        make=_iqa("musiq"), description="MUSIQ (KonIQ-10k), IQA-PyTorch", label="MUSIQ", decimals=4,
        weights=("musiq_koniq",)),
    MetricSpec(
        name="clipiqa", kind="no_reference", lower_better=False, version="clipiqa-rn50-pyiqa0.1.16-v1",
        make=_iqa("clipiqa"),
        description="CLIP-IQA, CLIP RN50, IQA-PyTorch prompts; quadrant split above a pixel count",
        label="CLIP-IQA", decimals=4, weights=("clip_rn50",), options=(_SPLIT,)),
    MetricSpec(
        name="fid", kind="distribution", lower_better=True, version="fid-whole299-v2", make=_features("whole"),
        description="FID, one Inception feature per whole image resized to 299, SR set vs HR set", label="FID",
        decimals=3, weights=("pt_inception",), options=(_FID_MODE,)),
    MetricSpec(
        name="pfid", kind="distribution", lower_better=True, version="pfid-299patches-zeropad-v2",
        make=_features("patch"),
        description="patch-FID: non-overlapping 299x299 patches (zero-padded if smaller), SR vs HR patches",
        label="pFID", decimals=3, weights=("pt_inception",), options=(_FID_MODE,)),
]}


# flat names that set an option of every metric declaring it (``eval --ae``, ``--clipiqa-split-above``,
# ``--fid-mode``; the same keywords of ``aesop_bench.evaluate`` and flat names in recipes)
SHORTHANDS = {"ae": "ae", "clipiqa_split_above": "split_above", "fid_mode": "fid_mode"}


def metric_options(nested: dict | None = None, **shorthands) -> dict:
    """``{metric: {option: value}}``, checked by each metric's spec: ``nested`` in the metrics' own option names,
    completed by :data:`SHORTHANDS` (None: not given; ``nested`` wins where both set an option). An unknown metric,
    option or shorthand is an error naming the valid ones.

    >>> metric_options({"clipiqa": {"split_above": 10}}, fid_mode="clean")
    {'fid': {'fid_mode': 'clean'}, 'pfid': {'fid_mode': 'clean'}, 'clipiqa': {'split_above': 10}}
    """
    nested = {} if nested is None else nested
    if not isinstance(nested, dict) or not all(isinstance(v, dict) for v in nested.values()):
        raise AesopBenchError(f"metric options {nested!r}: give {{metric: {{option: value}}}}, e.g. "
                              "{'clipiqa': {'split_above': 1000000}}")
    unknown = sorted(set(shorthands) - set(SHORTHANDS))
    if unknown:
        raise AesopBenchError(f"unknown option(s) {', '.join(unknown)}. Give {{metric: {{option: value}}}} with a "
                              f"metric's own options ({option_names()}), or one of {', '.join(SHORTHANDS)}")
    out: dict[str, dict] = {}
    for flat, value in shorthands.items():
        if value is not None:
            for spec in METRICS.values():
                if any(o.name == SHORTHANDS[flat] for o in spec.options):
                    out.setdefault(spec.name, {})[SHORTHANDS[flat]] = value
    for name, opts in nested.items():
        if name not in METRICS:
            raise AesopBenchError(f"metric options for {name!r}: no such metric; the metrics: {', '.join(METRICS)}")
        METRICS[name].resolve_options(opts)  # names the metric's options when one is unknown
        out.setdefault(name, {}).update(opts)
    return out


def option_names() -> str:
    """Every metric's options, as ``metric: option, option; ...``."""
    return "; ".join(f"{m}: {', '.join(o.name for o in spec.options)}" for m, spec in METRICS.items() if spec.options)


def get_spec(name: str) -> MetricSpec:
    """A metric's registry entry by name (any case).

    >>> get_spec("LPIPS").lower_better, get_spec("psnr").label
    (True, 'PSNR')
    """
    try:
        return METRICS[name.strip().lower()]
    except KeyError:
        raise AesopBenchError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}") from None


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
        names = list(METRICS) if item == "all" else [item]
        for n in names:
            if n not in METRICS:
                raise AesopBenchError(f"unknown metric {n!r}; choose from {', '.join(METRICS)} or 'all'")
            if n not in out:
                out.append(n)
    if not out:
        raise AesopBenchError("no metric given; use e.g. --metrics psnr,ssim")
    return out


def weights_validator(name: str):
    """How to check that a file is what the weights entry ``name`` says it is, before its hash is trusted:
    the zoo network it belongs to with strict keys, the AESOP auto-encoder, or (None) a readable file of
    tensors."""
    from ..models.zoo import model_weights_validator as zoo_validator

    if name == "aesop_ae":
        from ..models.ae import build_ae

        return lambda path: build_ae(str(path))
    if name == "niqe_pristine":
        from .niqe import load_pristine

        return load_pristine
    return zoo_validator(name)


def describe_metrics(fmt: str = "table") -> str:
    """The registry as a table (or JSON): name, kind, direction, version with its option tags, the status of
    the weights it needs, description; then each option with its default."""
    import json

    from .. import weights as wm

    rows = []
    for name, spec in METRICS.items():
        status = []
        for n in spec.weights:
            try:
                status.append(f"{n}:{wm.check(wm.entry(n)).status}")
            except AesopBenchError:
                status.append(f"{n}:unknown")
        version = spec.version + "".join(f"+<{o.name}>" for o in spec.options if o.tag) + \
            ("+<protocol>" if spec.protocol_tag else "")
        rows.append({"name": name, "kind": spec.kind, "better": "lower" if spec.lower_better else "higher",
                     "version": version, "weights": " ".join(status) or "-", "description": spec.description})
    if fmt == "json":
        return json.dumps(rows, indent=2)
    cols = ["name", "kind", "better", "version", "weights"]
    head = dict(zip(cols, ["name", "kind", "better", "version (default options)", "weights"]))
    widths = {c: max(len(r[c]) for r in [head, *rows]) for c in cols}
    lines = ["  ".join(r[c].ljust(widths[c]) for c in cols) + "  " + r.get("description", "description")
             for r in [head, *rows]]
    lines += [f"option of {name}: {o.name} (default {o.default!r}) {o.help}"
              for name, spec in METRICS.items() for o in spec.options]
    return "\n".join(lines)
