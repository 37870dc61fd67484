"""Real-ESRGAN's second-order degradation: the LQ images the AESOP authors train their real-world models on.

Real-ESRGAN (Wang et al., ICCVW 2021) makes each training LQ from its GT patch on the fly, in two rounds of
blur -> resize -> noise -> JPEG, then a final resize to GT / scale with a sinc filter, in a random order with
the last JPEG. The AESOP authors' ``train_RealWorld_AESOP.yml`` runs it unchanged (its dataset
``RealESRGANDataset`` draws three kernels per image; its model's ``feed_data`` does the rest on the GPU, and
keeps a pool of 144 pairs). Here the whole of it is one batched call, :class:`RealDegradation`, every draw from
one ``torch.Generator``, so that a run's LQ stream is reproducible and its state can be checkpointed.

Order of operations, for a batch of GT patches ``gt`` (N, 3, H, W):

1. ``usm_sharp(gt)`` (the first blur is applied to the USM-sharpened GT, as in ``feed_data``);
2. first round: blur with each image's ``kernel1``; resize the batch up / down / keep (``resize_prob``) by a
   factor from ``resize_range`` (up: U(1, high), down: U(low, 1)) with area / bilinear / bicubic (each 1/3);
   Gaussian noise with probability ``gaussian_noise_prob`` (sigma U(noise_range) / 255 per image), else Poisson
   noise (scale U(poisson_scale_range) per image), either grey (one field for all channels) with probability
   ``gray_noise_prob`` per image; clamp to [0, 1]; JPEG at a quality U(jpeg_range) per image (:mod:`.jpeg`);
3. second round: blur with ``kernel2`` with probability ``second_blur_prob``; resize to
   ``int(H / scale * f)`` with ``f`` from ``resize_prob2`` / ``resize_range2``; noise as above with the ``2``
   settings;
4. with probability 1/2: resize to (H // scale, W // scale) and filter with the final sinc kernel, then JPEG
   (``jpeg_range2``); else JPEG first, then resize and sinc;
5. clamp and round to 1/255.

Each image's kernels (Real-ESRGAN draws them in the dataset): a size from ``kernel_range`` (7..21, each equally
likely); with probability ``sinc_prob`` a 2-D sinc (circular low-pass) with cutoff U(pi/3, pi) for sizes below 13
and U(pi/5, pi) from 13; else a kernel of the type drawn from ``kernel_list`` by ``kernel_prob``: isotropic or
anisotropic Gaussian (sigma_x, sigma_y U(blur_sigma), angle U(-pi, pi)), generalized Gaussian
``exp(-0.5 q^beta)``, plateau ``1 / (1 + q^beta)`` (q the Gaussian's quadratic form; beta U(low, 1) or
U(1, high) with probability 1/2 each, from ``betag_range`` / ``betap_range``); zero-padded to
``blur_kernel_size``. The final sinc kernel: with probability ``final_sinc_prob`` a sinc of a size from
``kernel_range`` and cutoff U(pi/3, pi), else the identity.

Random draws. The torch RNG draws of ``feed_data`` (noise sigma / scale and grey choice per image, the noise
fields, the JPEG qualities) are made from the generator in the same order and with the same calls, so that they
are the same numbers as Real-ESRGAN's from a global RNG in the same state. The draws Real-ESRGAN makes with
Python's ``random`` and NumPy (kernels, resize choices, noise type, order) come first, as fixed blocks of
uniforms (9 per kernel, 3 kernels per image, then 11 per batch), mapped to choices as those libraries map their
uniforms: ``random.choices`` by bisection of the cumulative weights, ``np.random.uniform(a, b)`` as
``a + (b - a) u``, a choice among k equally likely items as ``floor(k u)``. The grey noise field of Gaussian noise
is one (H, W) draw shared by the batch (scaled by each image's sigma), as Real-ESRGAN's
``generate_gaussian_noise_pt`` makes it. On CUDA the draws are made on the CPU and moved.

Defaults (:class:`DegradationConfig`): the values of the authors' ``options/train/AESOP/train_RealWorld_AESOP.yml``
(top level for the model's settings, ``datasets.train`` for the kernels), which are Real-ESRGAN's
``train_realesrgan_x4plus.yml`` values:

===================== =========================================== ================================
key                   default                                     where
===================== =========================================== ================================
blur_kernel_size      21                                          datasets.train
kernel_list           iso, aniso, generalized_iso,                datasets.train
                      generalized_aniso, plateau_iso, plateau_aniso
kernel_prob           0.45, 0.25, 0.12, 0.03, 0.12, 0.03          datasets.train
sinc_prob             0.1                                         datasets.train
blur_sigma            0.2, 3                                      datasets.train
betag_range           0.5, 4                                      datasets.train
betap_range           1, 2                                        datasets.train
blur_kernel_size2     21                                          datasets.train
kernel_list2          as kernel_list                              datasets.train
kernel_prob2          as kernel_prob                              datasets.train
sinc_prob2            0.1                                         datasets.train
blur_sigma2           0.2, 1.5                                    datasets.train
betag_range2          0.5, 4                                      datasets.train
betap_range2          1, 2                                        datasets.train
final_sinc_prob       0.8                                         datasets.train
kernel_range          7, 9, 11, 13, 15, 17, 19, 21                hard-coded in RealESRGANDataset
resize_prob           0.2, 0.7, 0.1 (up, down, keep)              top level
resize_range          0.2, 1.5                                    top level
gaussian_noise_prob   0.5                                         top level
noise_range           1, 30                                       top level
poisson_scale_range   0.05, 2                                     top level
gray_noise_prob       0.4                                         top level
jpeg_range            50, 95                                      top level
second_blur_prob      0.8                                         top level
resize_prob2          0.3, 0.4, 0.3                               top level
resize_range2         0.3, 1.2                                    top level
gaussian_noise_prob2  0.5                                         top level
noise_range2          1, 20                                       top level
poisson_scale_range2  0.05, 2                                     top level
gray_noise_prob2      0.4                                         top level
jpeg_range2           50, 95                                      top level
===================== =========================================== ================================

Fixed, as in Real-ESRGAN's code: angle range (-pi, pi), the sinc cutoff ranges above, the resize modes, the 1/2
order probability, USM weight 0.5, radius 50, threshold 10.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from itertools import accumulate

import numpy as np
import torch
import torch.nn.functional as F
from scipy import special

from ..errors import ConfigError, InputError
from .jpeg import jpeg

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
RESIZE_MODES = ("area", "bilinear", "bicubic")
UPDOWN = ("up", "down", "keep")
ROTATION_RANGE = (-math.pi, math.pi)
SMALL_SINC = 13  # kernels below this size get a sinc cutoff from SINC_CUTOFF_SMALL, others SINC_CUTOFF_LARGE
SINC_CUTOFF_SMALL = (math.pi / 3, math.pi)
SINC_CUTOFF_LARGE = (math.pi / 5, math.pi)
FINAL_SINC_CUTOFF = (math.pi / 3, math.pi)
JPEG_LAST_PROB = 0.5  # [resize back + sinc] then JPEG; else JPEG then [resize back + sinc]
KERNEL_DRAWS = 9  # uniforms per kernel: size, sinc?, cutoff, type, sigma_x, sigma_y, angle, beta half, beta
BATCH_DRAWS = 11  # uniforms per batch, see DegradationDraws


@dataclass(frozen=True)
class DegradationConfig:
    """Every setting of Real-ESRGAN's second-order degradation; defaults and sources in the module's table."""

    blur_kernel_size: int = 21
    kernel_list: tuple = KERNEL_TYPES
    kernel_prob: tuple = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    blur_sigma: tuple = (0.2, 3.0)
    betag_range: tuple = (0.5, 4.0)
    betap_range: tuple = (1.0, 2.0)
    blur_kernel_size2: int = 21
    kernel_list2: tuple = KERNEL_TYPES
    kernel_prob2: tuple = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob2: float = 0.1
    blur_sigma2: tuple = (0.2, 1.5)
    betag_range2: tuple = (0.5, 4.0)
    betap_range2: tuple = (1.0, 2.0)
    final_sinc_prob: float = 0.8
    kernel_range: tuple = (7, 9, 11, 13, 15, 17, 19, 21)
    resize_prob: tuple = (0.2, 0.7, 0.1)
    resize_range: tuple = (0.2, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple = (1.0, 30.0)
    poisson_scale_range: tuple = (0.05, 2.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple = (50.0, 95.0)
    second_blur_prob: float = 0.8
    resize_prob2: tuple = (0.3, 0.4, 0.3)
    resize_range2: tuple = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple = (1.0, 20.0)
    poisson_scale_range2: tuple = (0.05, 2.0)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple = (50.0, 95.0)

    def __post_init__(self):
        _check(vars(self), "DegradationConfig")

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "degradation") -> DegradationConfig:
        """The settings in ``data`` (the YAML's keys; absent keys keep their defaults). An unknown key or a value
        out of range raises :class:`ConfigError` naming ``where.key``."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a mapping of degradation settings, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        values = {}
        for key, value in data.items():
            if key not in known:
                raise ConfigError(f"{where}.{key}: unknown key; the degradation settings are {', '.join(known)}")
            values[key] = _convert(value, known[key].default, f"{where}.{key}")
        _check({**{k: f.default for k, f in known.items()}, **values}, where)
        return cls(**values)


def _convert(value, default, name: str):
    """``value`` in the type of ``default`` (lists become tuples), or a ConfigError naming ``name``."""
    def number(v, integer=False):
        ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok:
            raise ConfigError(f"{name}: expected {'an integer' if integer else 'a number'}, got {v!r}")
        return v if integer else float(v)

    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        if isinstance(default[0], str):
            if not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{name}: expected a list of kernel names, got {value!r}")
            return tuple(value)
        return tuple(number(v, isinstance(default[0], int)) for v in value)
    return number(value, isinstance(default, int))


def _check(c: dict, where: str) -> None:
    """Raise a ConfigError naming the first setting of ``c`` out of range."""
    def fail(key, msg):
        raise ConfigError(f"{where}.{key}: {msg} (got {c[key]!r})")

    def pair(key, low_min=None, around_one=False, high_max=None):
        v = c[key]
        if len(v) != 2:
            fail(key, "expected a range [low, high]")
        if v[0] > v[1]:
            fail(key, "low is above high")
        if low_min is not None and not v[0] > low_min:
            fail(key, f"the range must lie above {low_min}")
        if low_min is None and v[0] < 0:
            fail(key, "the range must not be negative")
        if around_one and not v[0] <= 1 <= v[1]:
            fail(key, "the range must hold 1 (the factors are drawn from [low, 1] and [1, high])")
        if high_max is not None and v[1] > high_max:
            fail(key, f"the range must not exceed {high_max}")

    def probs(key, n):
        v = c[key]
        if len(v) != n or any(p < 0 for p in v) or abs(sum(v) - 1) > 1e-6:
            fail(key, f"expected {n} probabilities >= 0 that sum to 1")

    for s in ("", "2"):
        if c["blur_kernel_size" + s] % 2 == 0 or c["blur_kernel_size" + s] < 1:
            fail("blur_kernel_size" + s, "expected an odd kernel size")
        names = c["kernel_list" + s]
        if not names or any(k not in KERNEL_TYPES for k in names):
            fail("kernel_list" + s, f"expected names among {', '.join(KERNEL_TYPES)}")
        probs("kernel_prob" + s, len(names))
        pair("blur_sigma" + s, low_min=0)
        pair("betag_range" + s, low_min=0, around_one=True)
        pair("betap_range" + s, low_min=0, around_one=True)
        probs("resize_prob" + s, 3)
        pair("resize_range" + s, low_min=0, around_one=True)
        pair("noise_range" + s)
        pair("poisson_scale_range" + s)
        pair("jpeg_range" + s, low_min=0, high_max=100)
        for key in ("sinc_prob", "gaussian_noise_prob", "gray_noise_prob"):
            if not 0 <= c[key + s] <= 1:
                fail(key + s, "expected a probability in [0, 1]")
    for key in ("final_sinc_prob", "second_blur_prob"):
        if not 0 <= c[key] <= 1:
            fail(key, "expected a probability in [0, 1]")
    sizes = c["kernel_range"]
    if not sizes or any(k < 1 or k % 2 == 0 for k in sizes):
        fail("kernel_range", "expected odd kernel sizes")
    if max(sizes) > min(c["blur_kernel_size"], c["blur_kernel_size2"]):
        fail("kernel_range", "a kernel size exceeds blur_kernel_size / blur_kernel_size2")


# ---------------------------------------------------------------- kernels

def _grid(k: int):
    """x (column) and y (row) offsets from the centre of a k x k kernel, float64."""
    ax = torch.arange(-(k // 2), k // 2 + 1, dtype=torch.float64)
    y, x = torch.meshgrid(ax, ax, indexing="ij")
    return x, y


def _normalise(kernels: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Zero outside each kernel's centred size x size window, then sum to 1."""
    x, y = _grid(kernels.shape[-1])
    half = (size // 2).view(-1, 1, 1)
    kernels = torch.where((x.abs() <= half) & (y.abs() <= half), kernels, torch.zeros((), dtype=kernels.dtype))
    return kernels / kernels.sum(dim=(-2, -1), keepdim=True)


def _blur_kernels(family, sigma_x, sigma_y, theta, beta, size, pad_to: int) -> torch.Tensor:
    """(n, pad_to, pad_to) float64 kernels: ``family`` 0 Gaussian, 1 generalized Gaussian, 2 plateau, with the
    covariance R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T; each on its own size, zero-padded."""
    c, s = torch.cos(theta), torch.sin(theta)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    cov = rot @ torch.diag_embed(torch.stack([sigma_x ** 2, sigma_y ** 2], -1)) @ rot.transpose(-1, -2)
    x, y = _grid(pad_to)
    xy = torch.stack([x, y], -1)
    q = (torch.einsum("ijk,nkl->nijl", xy, torch.linalg.inv(cov)) * xy).sum(-1)
    b = beta.view(-1, 1, 1)
    fam = family.view(-1, 1, 1)
    k = torch.where(fam == 0, torch.exp(-0.5 * q),
                    torch.where(fam == 1, torch.exp(-0.5 * q.pow(b)), torch.reciprocal(q.pow(b) + 1)))
    return _normalise(k, size)


def _sinc_kernels(cutoff: torch.Tensor, size: torch.Tensor, pad_to: int) -> torch.Tensor:
    """(n, pad_to, pad_to) float64 circularly symmetric low-pass kernels: the ideal filter's impulse response
    ``w J1(w r) / (2 pi r)`` (``w^2 / (4 pi)`` at the centre) with cutoff ``w`` radians, on each size, padded."""
    x, y = _grid(pad_to)
    r = torch.sqrt(x ** 2 + y ** 2)
    w = cutoff.view(-1, 1, 1)
    j1 = torch.from_numpy(special.j1((w * r).numpy()))  # scipy's: torch's bessel_j1 is off by ~1e-9 relative
    k = torch.where(r == 0, w ** 2 / (4 * math.pi), w * j1 / (2 * math.pi * r))
    return _normalise(k, size)


def blur_kernel(kind: str, size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0,
                beta: float = 1.0) -> torch.Tensor:
    """One ``size`` x ``size`` float64 kernel of type ``kind`` (:data:`KERNEL_TYPES`; the ``iso`` types use
    ``sigma_x`` only, the Gaussian ones ignore ``beta``).

    >>> k = blur_kernel("iso", 7, 1.5)
    >>> round(float(k.sum()), 12), tuple(k.shape)
    (1.0, (7, 7))
    """
    if kind not in KERNEL_TYPES:
        raise ConfigError(f"blur_kernel: unknown kernel type {kind!r}; the types are {', '.join(KERNEL_TYPES)}")
    if size % 2 == 0:
        raise ConfigError(f"blur_kernel: kernel size must be odd, got {size}")
    aniso = kind.endswith("aniso")
    t = lambda v: torch.tensor([float(v)], dtype=torch.float64)
    return _blur_kernels(torch.tensor([_family(kind)]), t(sigma_x), t(sigma_y if aniso else sigma_x),
                         t(theta if aniso else 0.0), t(beta), torch.tensor([size]), size)[0]


def sinc_kernel(cutoff: float, size: int, pad_to: int = 0) -> torch.Tensor:
    """One 2-D sinc (circular low-pass) kernel, float64, ``size`` x ``size`` zero-padded to ``pad_to`` if larger."""
    if size % 2 == 0 or (pad_to > size and pad_to % 2 == 0):
        raise ConfigError(f"sinc_kernel: kernel sizes must be odd, got {size} (pad_to {pad_to})")
    return _sinc_kernels(torch.tensor([float(cutoff)], dtype=torch.float64), torch.tensor([size]),
                         max(size, pad_to))[0]


def _family(kind: str) -> int:
    return 1 if kind.startswith("generalized") else 2 if kind.startswith("plateau") else 0


def choice_index(weights, u: torch.Tensor) -> torch.Tensor:
    """The index ``random.choices(range(len(weights)), weights)`` picks when its uniform draw is ``u``: the first
    cumulative weight above ``u`` x the total (a tensor of indices for a tensor of draws)."""
    cum = torch.tensor(list(accumulate(weights)), dtype=torch.float64)
    return torch.searchsorted(cum, u * (cum[-1] + 0.0), right=True).clamp(max=len(cum) - 1)


def _uniform(low: float, high: float, u):
    return low + (high - low) * u


def stage_kernels(u: torch.Tensor, cfg: DegradationConfig, stage: int) -> torch.Tensor:
    """The kernels of ``stage`` (1: ``kernel1``, 2: ``kernel2``, 3: the final sinc) from uniforms ``u``
    (n, :data:`KERNEL_DRAWS`), float64 (n, K, K): K is ``blur_kernel_size`` for stage 1, ``blur_kernel_size2``
    for stages 2 and 3 (Real-ESRGAN pads all three to 21)."""
    s = "" if stage == 1 else "2"
    pad_to = cfg.blur_kernel_size if stage == 1 else cfg.blur_kernel_size2
    sizes = torch.tensor(cfg.kernel_range)
    size = sizes[(u[:, 0] * len(sizes)).long().clamp(max=len(sizes) - 1)]
    if stage == 3:
        sinc = _sinc_kernels(_uniform(*FINAL_SINC_CUTOFF, u[:, 2]), size, pad_to)
        pulse = _normalise(torch.ones(len(u), pad_to, pad_to, dtype=torch.float64), torch.ones_like(size))
        return torch.where((u[:, 1] < cfg.final_sinc_prob).view(-1, 1, 1), sinc, pulse)
    small = size < SMALL_SINC
    cutoff = torch.where(small, _uniform(*SINC_CUTOFF_SMALL, u[:, 2]), _uniform(*SINC_CUTOFF_LARGE, u[:, 2]))
    kinds = [getattr(cfg, "kernel_list" + s)[i] for i in choice_index(getattr(cfg, "kernel_prob" + s), u[:, 3])]
    family = torch.tensor([_family(k) for k in kinds])
    aniso = torch.tensor([k.endswith("aniso") for k in kinds])
    sigma = getattr(cfg, "blur_sigma" + s)
    sigma_x = _uniform(*sigma, u[:, 4])
    sigma_y = torch.where(aniso, _uniform(*sigma, u[:, 5]), sigma_x)
    theta = torch.where(aniso, _uniform(*ROTATION_RANGE, u[:, 6]), torch.zeros((), dtype=torch.float64))
    b_low, b_high = (torch.tensor([getattr(cfg, ("betag_range" if f == 1 else "betap_range") + s)[i]
                                   for f in family.tolist()], dtype=torch.float64) for i in (0, 1))
    beta = torch.where(u[:, 7] < 0.5, _uniform(b_low, 1.0, u[:, 8]), _uniform(1.0, b_high, u[:, 8]))
    blur = _blur_kernels(family, sigma_x, sigma_y, theta, beta, size, pad_to)
    sinc = _sinc_kernels(cutoff, size, pad_to)
    return torch.where((u[:, 1] < getattr(cfg, "sinc_prob" + s)).view(-1, 1, 1), sinc, blur)


# ---------------------------------------------------------------- filters and noise

def filter2d(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate each image of ``img`` (N, C, H, W) with its kernel (N, k, k), or all with one kernel (k, k) or
    (1, k, k), after reflect padding by k // 2 (Real-ESRGAN's ``filter2D``, cv2.filter2D's border rule)."""
    k = kernel.shape[-1]
    n, c, h, w = img.shape
    if k % 2 == 0:
        raise InputError(f"filter2d: kernel size must be odd, got {k}")
    if k // 2 >= min(h, w):
        raise InputError(f"filter2d: a {w}x{h} image is too small for a {k}x{k} kernel with reflect padding")
    x = F.pad(img, (k // 2,) * 4, mode="reflect")
    ph, pw = x.shape[-2:]
    if kernel.ndim == 2 or kernel.shape[0] == 1:
        return F.conv2d(x.reshape(n * c, 1, ph, pw), kernel.view(1, 1, k, k)).view(n, c, h, w)
    per_channel = kernel.view(n, 1, k, k).repeat(1, c, 1, 1).view(n * c, 1, k, k)
    return F.conv2d(x.reshape(1, n * c, ph, pw), per_channel, groups=n * c).view(n, c, h, w)


_USM_KERNELS: dict = {}


def usm_kernel(radius: int = 50) -> torch.Tensor:
    """The (k, k) float32 Gaussian of :func:`usm_sharp`: k = radius rounded up to odd, sigma as OpenCV's
    ``getGaussianKernel(k, 0)`` derives it, ``0.3 ((k - 1) / 2 - 1) + 0.8`` (OpenCV's fixed binomial tables for
    k <= 7), normalised in float64, outer product, float32."""
    k = radius + 1 if radius % 2 == 0 else radius
    if k not in _USM_KERNELS:
        fixed = {1: [1.0], 3: [0.25, 0.5, 0.25], 5: [0.0625, 0.25, 0.375, 0.25, 0.0625],
                 7: [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125]}
        if k in fixed:
            g = np.array(fixed[k])
        else:
            sigma = ((k - 1) * 0.5 - 1) * 0.3 + 0.8
            scale = -0.5 / (sigma * sigma)
            x = np.arange(k) - (k - 1) * 0.5
            g = np.exp(scale * x * x)
            g = g * (1.0 / g.sum())
        _USM_KERNELS[k] = torch.from_numpy(np.outer(g, g)).float()
    return _USM_KERNELS[k]


def usm_sharp(img: torch.Tensor, weight: float = 0.5, radius: int = 50, threshold: int = 10) -> torch.Tensor:
    """Unsharp masking of a batch (N, 3, H, W) in [0, 1] (Real-ESRGAN's ``USMSharp``): ``sharp = img + weight
    (img - blur)`` clamped to [0, 1], blended with ``img`` by a mask (``|img - blur| x 255 > threshold``) blurred
    with the same Gaussian (:func:`usm_kernel`)."""
    kernel = usm_kernel(radius).to(img.device)
    residual = img - filter2d(img, kernel)
    soft = filter2d((residual.abs() * 255 > threshold).float(), kernel)
    sharp = torch.clamp(img + weight * residual, 0, 1)
    return soft * sharp + (1 - soft) * img


def _on(x: torch.Tensor, device) -> torch.Tensor:
    return x if x.device == torch.device(device) else x.to(device)


def _per_image(n: int, value_range, gray_prob: float, dtype, generator):
    """Per image: a value U(value_range) and the grey flag (1.0 / 0.0), drawn in Real-ESRGAN's order."""
    low, high = value_range
    value = torch.rand(n, dtype=dtype, generator=generator) * (high - low) + low
    gray = (torch.rand(n, dtype=dtype, generator=generator) < gray_prob).float()
    return value.view(n, 1, 1, 1), gray.view(n, 1, 1, 1)


def add_gaussian_noise(img: torch.Tensor, sigma_range, gray_prob: float, generator: torch.Generator) -> torch.Tensor:
    """``img`` plus Gaussian noise of sigma U(sigma_range) / 255 per image, grey (the same field in the three
    channels; one field for the whole batch) with probability ``gray_prob`` per image; clamped to [0, 1]."""
    n, c, h, w = img.shape
    sigma, gray = _per_image(n, sigma_range, gray_prob, img.dtype, generator)
    any_gray = bool(gray.sum() > 0)
    gray_field = torch.randn(h, w, dtype=img.dtype, generator=generator) if any_gray else None
    field = torch.randn(n, c, h, w, dtype=img.dtype, generator=generator)
    sigma, gray = _on(sigma, img.device), _on(gray, img.device)
    noise = _on(field, img.device) * sigma / 255.0
    if any_gray:
        noise = noise * (1 - gray) + (_on(gray_field, img.device) * sigma / 255.0) * gray
    return torch.clamp(img + noise, 0, 1)


def _shot_noise(img: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Poisson noise of an image quantised to 8 bits, its counts scaled by 2^ceil(log2(number of distinct
    levels in the image)), per image."""
    n = img.shape[0]
    levels = torch.clamp((img * 255.0).round(), 0, 255)
    img = levels / 255.0
    seen = torch.zeros(n, 256, device=img.device).scatter_(1, levels.long().reshape(n, -1), 1.0)
    counts = (seen > 0).sum(1).tolist()
    vals = img.new_tensor([2.0 ** math.ceil(math.log2(v)) for v in counts]).view(n, 1, 1, 1)
    counts = _on(torch.poisson(_on(img * vals, "cpu"), generator=generator), img.device)
    return counts / vals - img


def add_poisson_noise(img: torch.Tensor, scale_range, gray_prob: float, generator: torch.Generator) -> torch.Tensor:
    """``img`` plus Poisson (shot) noise x U(scale_range) per image, computed on the luma (0.2989 R + 0.587 G +
    0.114 B) and shared by the channels with probability ``gray_prob`` per image; clamped to [0, 1]."""
    n, _, h, w = img.shape
    scale, gray = _per_image(n, scale_range, gray_prob, img.dtype, generator)
    scale, gray = _on(scale, img.device), _on(gray, img.device)
    any_gray = bool(gray.sum() > 0)
    if any_gray:
        r, g, b = img.unbind(dim=1)
        gray_noise = _shot_noise((0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1), generator).expand(n, 3, h, w)
    noise = _shot_noise(img, generator)
    if any_gray:
        noise = noise * (1 - gray) + gray_noise * gray
    return torch.clamp(img + noise * scale, 0, 1)


# ---------------------------------------------------------------- the pipeline

@dataclass
class DegradationDraws:
    """The draws of one batch made before any image work: ``kernel_uniforms`` (n, 3, KERNEL_DRAWS) and
    ``batch_uniforms`` (BATCH_DRAWS: up/down/keep, factor, mode of round 1; Gaussian?; second blur?; up/down/keep,
    factor, mode of round 2; Gaussian?; JPEG last?; final mode), and what they decide."""

    kernel_uniforms: torch.Tensor
    batch_uniforms: torch.Tensor
    kernel1: torch.Tensor  # (n, K, K) float32
    kernel2: torch.Tensor
    sinc: torch.Tensor
    resize1: tuple  # (factor, mode)
    gaussian1: bool
    second_blur: bool
    resize2: tuple
    gaussian2: bool
    jpeg_last: bool
    final_mode: str


def _resize_choice(u: torch.Tensor, probs, value_range) -> tuple:
    updown = UPDOWN[int(choice_index(probs, u[0]))]
    factor = {"up": _uniform(1.0, value_range[1], float(u[1])), "down": _uniform(value_range[0], 1.0, float(u[1])),
              "keep": 1}[updown]
    return factor, _mode(u[2])


def _mode(u: torch.Tensor) -> str:
    return RESIZE_MODES[min(int(u * len(RESIZE_MODES)), len(RESIZE_MODES) - 1)]


class RealDegradation:
    """Real-ESRGAN's second-order degradation of a batch of GT patches; see the module's description.

    >>> deg = RealDegradation(DegradationConfig())
    >>> lq = deg(torch.rand(2, 3, 64, 64), torch.Generator().manual_seed(0))
    >>> tuple(lq.shape), bool((lq * 255 == (lq * 255).round()).all())
    ((2, 3, 16, 16), True)
    """

    def __init__(self, cfg: DegradationConfig, scale: int = 4):
        if not isinstance(cfg, DegradationConfig):
            raise ConfigError(f"RealDegradation: expected a DegradationConfig, got {type(cfg).__name__}")
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ConfigError(f"RealDegradation: scale must be a positive integer, got {scale!r}")
        self.cfg, self.scale = cfg, scale

    def draw(self, n: int, generator: torch.Generator) -> DegradationDraws:
        """The kernels and batch-level choices of ``n`` images (the noise and JPEG draws come in :meth:`apply`)."""
        cfg = self.cfg
        ku = torch.rand(n, 3, KERNEL_DRAWS, dtype=torch.float64, generator=generator)
        bu = torch.rand(BATCH_DRAWS, dtype=torch.float64, generator=generator)
        k1, k2, sinc = (stage_kernels(ku[:, i], cfg, i + 1).float() for i in range(3))
        return DegradationDraws(
            kernel_uniforms=ku, batch_uniforms=bu, kernel1=k1, kernel2=k2, sinc=sinc,
            resize1=_resize_choice(bu[0:3], cfg.resize_prob, cfg.resize_range),
            gaussian1=bool(bu[3] < cfg.gaussian_noise_prob), second_blur=bool(bu[4] < cfg.second_blur_prob),
            resize2=_resize_choice(bu[5:8], cfg.resize_prob2, cfg.resize_range2),
            gaussian2=bool(bu[8] < cfg.gaussian_noise_prob2), jpeg_last=bool(bu[9] < JPEG_LAST_PROB),
            final_mode=_mode(bu[10]))

    def _noise(self, x, gaussian: bool, s: str, generator):
        cfg = self.cfg
        if gaussian:
            return add_gaussian_noise(x, getattr(cfg, "noise_range" + s), getattr(cfg, "gray_noise_prob" + s),
                                      generator)
        return add_poisson_noise(x, getattr(cfg, "poisson_scale_range" + s), getattr(cfg, "gray_noise_prob" + s),
                                 generator)

    def _jpeg(self, x, quality_range, generator):
        quality = torch.empty(x.shape[0], dtype=x.dtype).uniform_(*quality_range, generator=generator)
        return jpeg(torch.clamp(x, 0, 1), _on(quality, x.device))

    def apply(self, gt: torch.Tensor, d: DegradationDraws, generator: torch.Generator) -> torch.Tensor:
        """The LQ of ``gt`` under draws ``d``; the noise and JPEG draws are made from ``generator`` as it goes."""
        cfg, dev = self.cfg, gt.device
        h, w = gt.shape[-2:]
        size = (h // self.scale, w // self.scale)
        with torch.no_grad():
            out = filter2d(usm_sharp(gt), d.kernel1.to(dev))
            out = F.interpolate(out, scale_factor=d.resize1[0], mode=d.resize1[1])
            out = self._jpeg(self._noise(out, d.gaussian1, "", generator), cfg.jpeg_range, generator)
            if d.second_blur:
                out = filter2d(out, d.kernel2.to(dev))
            f2 = d.resize2[0]
            out = F.interpolate(out, size=(int(h / self.scale * f2), int(w / self.scale * f2)), mode=d.resize2[1])
            out = self._noise(out, d.gaussian2, "2", generator)
            if d.jpeg_last:
                out = filter2d(F.interpolate(out, size=size, mode=d.final_mode), d.sinc.to(dev))
                out = self._jpeg(out, cfg.jpeg_range2, generator)
            else:
                out = self._jpeg(out, cfg.jpeg_range2, generator)
                out = filter2d(F.interpolate(out, size=size, mode=d.final_mode), d.sinc.to(dev))
            return torch.clamp((out * 255.0).round(), 0, 255) / 255.0

    def min_size(self) -> int:
        """The smallest GT side the settings allow: USM's and the blurs' reflect padding need more pixels than the
        padding at every stage, and the second round's smallest resize at least one."""
        cfg, s = self.cfg, self.scale
        pad1, pad2 = cfg.blur_kernel_size // 2, cfg.blur_kernel_size2 // 2
        for side in range(1, 100000):
            if (side > max(usm_kernel().shape[-1] // 2, pad1) and math.floor(side * cfg.resize_range[0]) > pad2
                    and int(side / s * cfg.resize_range2[0]) >= 1 and side // s > pad2):
                return side
        raise ConfigError("degradation: no image size satisfies the resize ranges")

    def __call__(self, gt: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The LQ (N, 3, H // scale, W // scale) of GT patches ``gt`` (N, 3, H, W) float32 in [0, 1], rounded to
        1/255; every draw from ``generator`` (a CPU ``torch.Generator``)."""
        if not isinstance(gt, torch.Tensor) or gt.ndim != 4 or gt.shape[1] != 3 or gt.dtype != torch.float32:
            got = f"{gt.dtype} {tuple(gt.shape)}" if isinstance(gt, torch.Tensor) else type(gt).__name__
            raise InputError(f"RealDegradation: expected GT patches as float32 (N, 3, H, W), got {got}")
        if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
            raise InputError("RealDegradation: expected a CPU torch.Generator for the draws")
        if min(gt.shape[-2:]) < self.min_size():
            raise InputError(f"RealDegradation: GT patches of {gt.shape[-1]}x{gt.shape[-2]} are too small for these "
                             f"settings; the smallest side is {self.min_size()} pixels")
        return self.apply(gt, self.draw(gt.shape[0], generator), generator)


# ---------------------------------------------------------------- the pair pool

class PairQueue:
    """Real-ESRGAN's pool of training pairs (``_dequeue_and_enqueue``): the first ``size / batch`` batches fill it
    and are trained on as they come; from then on each call shuffles the pool with a permutation drawn from
    ``generator``, returns its first ``batch`` pairs and puts the new batch in their place."""

    def __init__(self, size: int = 144, batch: int = 12):
        whole = all(isinstance(v, int) and not isinstance(v, bool) for v in (size, batch))
        if not whole or batch < 1 or size < batch or size % batch:
            raise ConfigError(f"queue_size: {size!r} must be a positive multiple of the batch size {batch!r}")
        self.size, self.batch = size, batch
        self.lq = self.gt = None
        self.ptr = 0

    def _check(self, lq: torch.Tensor, gt: torch.Tensor) -> None:
        if lq.ndim != 4 or gt.ndim != 4 or lq.shape[0] != self.batch or gt.shape[0] != self.batch:
            raise InputError(f"PairQueue: expected batches of {self.batch} (N, C, H, W), got LQ {tuple(lq.shape)} "
                             f"and GT {tuple(gt.shape)}")
        if self.lq is not None and (self.lq.shape[1:] != lq.shape[1:] or self.gt.shape[1:] != gt.shape[1:]):
            raise InputError(f"PairQueue: the pool holds LQ {tuple(self.lq.shape[1:])} and GT "
                             f"{tuple(self.gt.shape[1:])} pairs, got {tuple(lq.shape[1:])} and {tuple(gt.shape[1:])}")

    def push_pop(self, lq: torch.Tensor, gt: torch.Tensor, generator: torch.Generator):
        """The (lq, gt) batch to train on after adding this one."""
        self._check(lq, gt)
        if self.lq is None:
            self.lq = lq.new_zeros((self.size, *lq.shape[1:]))
            self.gt = gt.new_zeros((self.size, *gt.shape[1:]))
        self.lq, self.gt = _on(self.lq, lq.device), _on(self.gt, gt.device)
        b = self.batch
        if self.ptr < self.size:
            self.lq[self.ptr:self.ptr + b] = lq
            self.gt[self.ptr:self.ptr + b] = gt
            self.ptr += b
            return lq.clone(), gt.clone()
        order = _on(torch.randperm(self.size, generator=generator), lq.device)
        self.lq, self.gt = self.lq[order], self.gt[order]
        out = self.lq[:b].clone(), self.gt[:b].clone()
        self.lq[:b], self.gt[:b] = lq, gt
        return out

    def state_dict(self) -> dict:
        """The pool on the CPU and its fill pointer."""
        cpu = lambda x: None if x is None else x.detach().cpu().clone()
        return {"queue_size": self.size, "batch": self.batch, "ptr": self.ptr, "lq": cpu(self.lq), "gt": cpu(self.gt)}

    def load_state_dict(self, state: Mapping) -> None:
        missing = {"queue_size", "batch", "ptr", "lq", "gt"} - set(state)
        if missing:
            raise ConfigError(f"PairQueue state: missing {', '.join(sorted(missing))}")
        if (state["queue_size"], state["batch"]) != (self.size, self.batch):
            raise ConfigError(f"queue_size: the saved pool holds {state['queue_size']} pairs in batches of "
                              f"{state['batch']}, this run {self.size} in batches of {self.batch}")
        if (state["lq"] is None) != (state["ptr"] == 0) or not 0 <= state["ptr"] <= self.size:
            raise ConfigError(f"PairQueue state: fill pointer {state['ptr']} does not match the saved pool")
        self.ptr = int(state["ptr"])
        self.lq = None if state["lq"] is None else state["lq"].clone()
        self.gt = None if state["gt"] is None else state["gt"].clone()
