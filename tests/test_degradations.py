"""Real-ESRGAN's second-order degradation against BasicSR 1.4.2 (whose ``degradations.py``, ``diffjpeg.py`` and
``img_process_util.py`` compute what the AESOP authors' copy computes; their copy differs in names and in
returning the noise draws only).

How the draws are shared. BasicSR draws kernels and choices with Python's ``random`` and NumPy, noise and JPEG
qualities with torch's global RNG. Ours makes the first kind as uniforms (``DegradationDraws``); the tests give
the same uniforms to BasicSR's functions through ``random.choices`` / ``np.random.uniform`` stand-ins that answer
with them, checked against those libraries below. The torch draws are the same numbers by construction: the
tests put torch's global RNG in the generator's state (``torch.manual_seed(s)`` against
``Generator().manual_seed(s)``, or ``set_rng_state(g.get_state())``) and BasicSR's functions then draw exactly
what ours draws from the generator, so whole noisy images, JPEG qualities and LQ batches are compared for
equality.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from aesop_bench.data import degradations as D
from aesop_bench.data.jpeg import jpeg
from aesop_bench.errors import ConfigError, InputError
from tests.references import basicsr_degradations

# The authors' options/train/AESOP/train_RealWorld_AESOP.yml, its degradation settings as written there
AUTHORS_YAML = """
resize_prob: [0.2, 0.7, 0.1]  # up, down, keep
resize_range: [0.20, 1.5]
gaussian_noise_prob: 0.5
noise_range: [1, 30]
poisson_scale_range: [0.05, 2]
gray_noise_prob: 0.4
jpeg_range: [50, 95]
second_blur_prob: 0.8
resize_prob2: [0.3, 0.4, 0.3]  # up, down, keep
resize_range2: [0.3, 1.2]
gaussian_noise_prob2: 0.5
noise_range2: [1, 20]
poisson_scale_range2: [0.05, 2]
gray_noise_prob2: 0.4
jpeg_range2: [50, 95]
blur_kernel_size: 21
kernel_list: ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso']
kernel_prob: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
sinc_prob: 0.1
blur_sigma: [0.2, 3]
betag_range: [0.5, 4]
betap_range: [1, 2]
blur_kernel_size2: 21
kernel_list2: ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso']
kernel_prob2: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
sinc_prob2: 0.1
blur_sigma2: [0.2, 1.5]
betag_range2: [0.5, 4]
betap_range2: [1, 2]
final_sinc_prob: 0.8
"""
KERNEL_RANGE = [2 * v + 1 for v in range(3, 11)]  # RealESRGANDataset: "kernel size ranges from 7 to 21"
MODES = ["area", "bilinear", "bicubic"]


@pytest.fixture(scope="module")
def ref():
    return basicsr_degradations()


@pytest.fixture(scope="module")
def tools(ref):
    return realesrgan_tools(ref)


def authors_opt(**changes) -> dict:
    return {**yaml.safe_load(AUTHORS_YAML), **changes}


# ---------------------------------------------------------------- how uniforms become choices

def pick(population, weights, u):
    """CPython's ``random.choices(population, weights)`` when its ``random()`` returns ``u``."""
    cum = list(itertools.accumulate(weights))
    return population[bisect.bisect(cum, u * (cum[-1] + 0.0), 0, len(cum) - 1)]


def uniform(low, high, u):
    """NumPy's legacy ``np.random.uniform(low, high)`` when its ``random_sample()`` returns ``u``."""
    return low + (high - low) * u


def test_choice_and_uniform_follow_python_and_numpy():
    weights = authors_opt()["kernel_prob"]
    for seed in range(3):
        a, b = random.Random(seed), random.Random(seed)
        for _ in range(500):
            chosen = a.choices(D.KERNEL_TYPES, weights)[0]
            u = b.random()
            assert pick(D.KERNEL_TYPES, weights, u) == chosen
            assert D.KERNEL_TYPES[int(D.choice_index(weights, torch.tensor(u, dtype=torch.float64)))] == chosen
        x, y = np.random.RandomState(seed), np.random.RandomState(seed)
        for low, high in ((0.2, 3), (math.pi / 5, math.pi), (1, 1.5)):
            assert x.uniform(low, high) == uniform(low, high, y.random_sample())


# ---------------------------------------------------------------- kernels

@pytest.mark.parametrize("kind", D.KERNEL_TYPES)
def test_kernels_equal_basicsr(ref, kind):
    deg = ref.degradations
    make = {"iso": deg.bivariate_Gaussian, "aniso": deg.bivariate_Gaussian}.get(kind)
    for size, sx, sy, theta, beta in ((7, 0.2, 3.0, 0.3, 0.5), (21, 3.0, 0.7, -2.9, 4.0), (13, 1.3, 1.1, 1.7, 1.0),
                                      (9, 2.2, 0.4, math.pi, 2.0)):
        iso = not kind.endswith("aniso")
        if make is not None:
            want = make(size, sx, sy, theta, isotropic=iso)
        elif kind.startswith("generalized"):
            want = deg.bivariate_generalized_Gaussian(size, sx, sy, theta, beta, isotropic=iso)
        else:
            want = deg.bivariate_plateau(size, sx, sy, theta, beta, isotropic=iso)
        got = D.blur_kernel(kind, size, sx, sy, theta, beta)
        assert got.dtype == torch.float64
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)


def test_sinc_kernel_equals_basicsr(ref):
    for cutoff, size, pad_to in ((math.pi / 3, 7, 21), (math.pi, 21, 0), (math.pi / 5, 13, 0), (2.0, 9, 21)):
        want = ref.degradations.circular_lowpass_kernel(cutoff, size, pad_to=pad_to)
        np.testing.assert_allclose(D.sinc_kernel(cutoff, size, pad_to).numpy(), want, rtol=0, atol=1e-12)


class ScriptedKernelDraws:
    """``random.choices`` and ``np.random.uniform`` for one ``random_mixed_kernels`` call, answering from one
    image's uniforms: the type from slot 3, then the draws that type's function makes, in its order (sigma_x;
    sigma_y and angle for the anisotropic types; beta's half and beta for the generalized and plateau ones)."""

    def __init__(self, u):
        self.u, self.queue = u, None

    def choices(self, population, weights):
        kind = pick(population, weights, self.u[3])
        self.queue = [self.u[4]] + ([self.u[5], self.u[6]] if kind.endswith("aniso") else [])
        self.queue += [self.u[7], self.u[8]] if kind.startswith(("generalized", "plateau")) else []
        return [kind]

    def uniform(self, low=0.0, high=1.0, size=None):
        return uniform(low, high, self.queue.pop(0))


def dataset_kernels(ref, opt, u, monkeypatch):
    """RealESRGANDataset.__getitem__'s three kernels for one image, its draws answered by ``u`` (3, 9): BasicSR's
    kernel functions, the dataset's own logic written out (size, sinc or not, cutoff, padding to 21)."""
    deg = ref.degradations
    kernels = []
    for stage, s in ((0, ""), (1, "2")):
        v = u[stage].tolist()
        size = KERNEL_RANGE[int(v[0] * len(KERNEL_RANGE))]  # random.choice(self.kernel_range)
        if v[1] < opt["sinc_prob" + s]:
            omega = uniform(np.pi / 3, np.pi, v[2]) if size < 13 else uniform(np.pi / 5, np.pi, v[2])
            kernel = deg.circular_lowpass_kernel(omega, size, pad_to=False)
        else:
            script = ScriptedKernelDraws(v)
            monkeypatch.setattr(random, "choices", script.choices)
            monkeypatch.setattr(np.random, "uniform", script.uniform)
            kernel = deg.random_mixed_kernels(opt["kernel_list" + s], opt["kernel_prob" + s], size,
                                              opt["blur_sigma" + s], opt["blur_sigma" + s], [-math.pi, math.pi],
                                              opt["betag_range" + s], opt["betap_range" + s], noise_range=None)
            monkeypatch.undo()
            assert script.queue == []  # every draw the type needs was made, no more
        pad = (21 - size) // 2
        kernels.append(np.pad(kernel, ((pad, pad), (pad, pad))))
    v = u[2].tolist()
    if v[1] < opt["final_sinc_prob"]:
        size = KERNEL_RANGE[int(v[0] * len(KERNEL_RANGE))]
        kernels.append(deg.circular_lowpass_kernel(uniform(np.pi / 3, np.pi, v[2]), size, pad_to=21))
    else:
        pulse = np.zeros((21, 21))
        pulse[10, 10] = 1
        kernels.append(pulse)
    return kernels


def test_drawn_kernels_equal_realesrgan_dataset(ref, monkeypatch):
    opt = authors_opt()
    cfg = D.DegradationConfig.from_dict(opt)
    u = torch.rand(400, 3, D.KERNEL_DRAWS, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    ours = [D.stage_kernels(u[:, i], cfg, i + 1) for i in range(3)]
    kinds = set()
    for i in range(len(u)):
        want = dataset_kernels(ref, opt, u[i], monkeypatch)
        for stage in range(3):
            np.testing.assert_allclose(ours[stage][i].numpy(), want[stage], rtol=0, atol=1e-12)
            assert torch.equal(ours[stage][i].float(), torch.FloatTensor(want[stage]))
        kinds.add("sinc" if u[i, 0, 1] < opt["sinc_prob"] else pick(opt["kernel_list"], opt["kernel_prob"], u[i, 0, 3]))
    assert kinds == {*D.KERNEL_TYPES, "sinc"}  # every branch was compared


# ---------------------------------------------------------------- filters, noise, JPEG

def test_filter2d_equals_basicsr(ref):
    g = torch.Generator().manual_seed(1)
    img = torch.rand(3, 3, 30, 26, generator=g)
    per_image = torch.rand(3, 21, 21, generator=g)
    assert torch.equal(D.filter2d(img, per_image), ref.img_process_util.filter2D(img, per_image))
    shared = torch.rand(1, 7, 7, generator=g)
    assert torch.equal(D.filter2d(img, shared), ref.img_process_util.filter2D(img, shared))


def test_usm_sharp_equals_usmsharp(ref):
    usm = ref.img_process_util.USMSharp()
    assert torch.equal(D.usm_kernel(50), usm.kernel[0])
    img = torch.rand(4, 3, 64, 48, generator=torch.Generator().manual_seed(2))
    got, want = D.usm_sharp(img), usm(img)
    assert (got - want).abs().max() <= 1e-6
    assert torch.equal(got, want)  # the same float32 operations in the same order
    assert torch.equal(D.usm_sharp(img, weight=1.0, threshold=3), usm(img, weight=1.0, threshold=3))


def _gray_flags(seed, n, prob):
    g = torch.Generator().manual_seed(seed)
    torch.rand(n, generator=g)
    return (torch.rand(n, generator=g) < prob).tolist()


@pytest.mark.parametrize("gray_prob", [0.0, 0.5, 1.0])
def test_gaussian_noise_equals_basicsr(ref, gray_prob):
    img = torch.rand(6, 3, 20, 24, generator=torch.Generator().manual_seed(3))
    seed = 11
    if gray_prob == 0.5:
        assert len(set(_gray_flags(seed, 6, gray_prob))) == 2  # grey and colour noise in one batch
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        want = ref.degradations.random_add_gaussian_noise_pt(img, sigma_range=[1, 30], gray_prob=gray_prob,
                                                             clip=True, rounds=False)
    got = D.add_gaussian_noise(img, (1.0, 30.0), gray_prob, torch.Generator().manual_seed(seed))
    assert torch.equal(got, want)


@pytest.mark.parametrize("gray_prob", [0.0, 0.5, 1.0])
def test_poisson_noise_equals_basicsr(ref, gray_prob):
    g = torch.Generator().manual_seed(4)
    img = torch.rand(6, 3, 20, 24, generator=g)
    img[1] = (img[1] * 4).round() / 4  # 5 levels: counts scaled by 8, not 256
    img[2] = 0.5
    seed = 12
    if gray_prob == 0.5:
        assert len(set(_gray_flags(seed, 6, gray_prob))) == 2
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        want = ref.degradations.random_add_poisson_noise_pt(img, scale_range=[0.05, 2], gray_prob=gray_prob,
                                                            clip=True, rounds=False)
    got = D.add_poisson_noise(img, (0.05, 2.0), gray_prob, torch.Generator().manual_seed(seed))
    assert torch.equal(got, want)


def test_jpeg_equals_diffjpeg(ref):
    img = torch.rand(4, 3, 37, 50, generator=torch.Generator().manual_seed(5))
    quality = torch.tensor([20.0, 49.5, 50.0, 95.3])
    want = ref.diffjpeg.DiffJPEG(differentiable=False)(img, quality=quality.clone())  # it overwrites its argument
    got = jpeg(img, quality)
    assert torch.equal(quality, torch.tensor([20.0, 49.5, 50.0, 95.3]))
    assert (got - want).abs().max() <= 1e-6
    assert torch.equal(got, want)


# ---------------------------------------------------------------- the whole degradation

def feed_data_choices(v, opt):
    """The choices ``feed_data`` makes with ``random`` / ``np.random``, from the batch uniforms ``v`` (11, in
    DegradationDraws' order)."""
    def resize(u, probs, value_range):
        updown = pick(["up", "down", "keep"], probs, u[0])
        scale = {"up": uniform(1, value_range[1], u[1]), "down": uniform(value_range[0], 1, u[1]), "keep": 1}[updown]
        return scale, MODES[int(u[2] * 3)]  # random.choice(['area', 'bilinear', 'bicubic'])

    v = v.tolist()
    (scale1, mode1), (scale2, mode2) = resize(v[0:3], opt["resize_prob"], opt["resize_range"]), \
        resize(v[5:8], opt["resize_prob2"], opt["resize_range2"])
    return types.SimpleNamespace(scale1=scale1, mode1=mode1, gaussian1=v[3] < opt["gaussian_noise_prob"],
                                 second_blur=v[4] < opt["second_blur_prob"], scale2=scale2, mode2=mode2,
                                 gaussian2=v[8] < opt["gaussian_noise_prob2"], jpeg_last=v[9] < 0.5,
                                 final_mode=MODES[int(v[10] * 3)])


def realesrgan_tools(ref):
    """The DiffJPEG and USMSharp modules RealESRGANModel builds once."""
    return ref.diffjpeg.DiffJPEG(differentiable=False), ref.img_process_util.USMSharp()


def realesrgan_lq(ref, gt, kernel1, kernel2, sinc_kernel, opt, c, scale=4, tools=None):
    """The synthesis of Real-ESRGAN's ``feed_data`` (the AESOP authors' ``aesop_realesrganArtifactsDis_model``)
    up to the rounding of the LQ, with BasicSR's functions, its ``random`` / ``np.random`` choices given in ``c``
    and its torch draws from the global RNG. ``filter2D`` gets contiguous input: today's torch keeps the
    channels-last strides of DiffJPEG's and interpolate's output through reflect padding, which its ``view``
    refuses (the values are the same)."""
    jpeger, usm = tools or realesrgan_tools(ref)
    filter2d = lambda x, k: ref.img_process_util.filter2D(x.contiguous(), k)
    deg = ref.degradations

    def noise(out, gaussian, s):
        if gaussian:
            return deg.random_add_gaussian_noise_pt(out, sigma_range=opt["noise_range" + s], clip=True, rounds=False,
                                                    gray_prob=opt["gray_noise_prob" + s])
        return deg.random_add_poisson_noise_pt(out, scale_range=opt["poisson_scale_range" + s],
                                               gray_prob=opt["gray_noise_prob" + s], clip=True, rounds=False)

    def compress(out, s):
        jpeg_p = out.new_zeros(out.size(0)).uniform_(*opt["jpeg_range" + s])
        return jpeger(torch.clamp(out, 0, 1), quality=jpeg_p)

    ori_h, ori_w = gt.size()[2:4]
    out = filter2d(usm(gt), kernel1)
    out = F.interpolate(out, scale_factor=c.scale1, mode=c.mode1)
    out = compress(noise(out, c.gaussian1, ""), "")
    if c.second_blur:
        out = filter2d(out, kernel2)
    out = F.interpolate(out, size=(int(ori_h / scale * c.scale2), int(ori_w / scale * c.scale2)), mode=c.mode2)
    out = noise(out, c.gaussian2, "2")
    if c.jpeg_last:
        out = F.interpolate(out, size=(ori_h // scale, ori_w // scale), mode=c.final_mode)
        out = compress(filter2d(out, sinc_kernel), "2")
    else:
        out = compress(out, "2")
        out = F.interpolate(out, size=(ori_h // scale, ori_w // scale), mode=c.final_mode)
        out = filter2d(out, sinc_kernel)
    return torch.clamp((out * 255.0).round(), 0, 255) / 255.0


def realesrgan_from_draws(ref, gt, draws, rng_state, opt, monkeypatch, tools=None):
    """Real-ESRGAN's LQ of ``gt`` (dataset kernels, then ``feed_data``) under our draws ``draws`` (their
    uniforms), torch's global RNG in state ``rng_state`` for its own draws (restored afterwards)."""
    kernels = [dataset_kernels(ref, opt, draws.kernel_uniforms[i], monkeypatch) for i in range(len(gt))]
    k1, k2, sinc = (torch.FloatTensor(np.stack([k[j] for k in kernels])) for j in range(3))
    with torch.random.fork_rng():
        torch.set_rng_state(rng_state)
        return realesrgan_lq(ref, gt, k1, k2, sinc, opt, feed_data_choices(draws.batch_uniforms, opt), tools=tools)


OPTS = {"authors": {},
        "always_sinc_poisson": {"sinc_prob": 1.0, "sinc_prob2": 1.0, "gaussian_noise_prob": 0.0,
                                "gaussian_noise_prob2": 0.0, "gray_noise_prob": 0.5},
        "gaussian_no_second_blur": {"gaussian_noise_prob": 1.0, "gaussian_noise_prob2": 1.0, "second_blur_prob": 0.0,
                                    "final_sinc_prob": 0.0, "resize_prob": [0, 0, 1], "resize_prob2": [1, 0, 0]}}


@pytest.mark.parametrize("name", OPTS)
def test_lq_equals_realesrgan_feed_data(ref, tools, monkeypatch, name):
    opt = authors_opt(**OPTS[name])
    deg = D.RealDegradation(D.DegradationConfig.from_dict(opt), scale=4)
    gt = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    seen = set()
    for seed in range(6):
        got = deg(gt, torch.Generator().manual_seed(seed))
        twin = torch.Generator().manual_seed(seed)
        draws = deg.draw(len(gt), twin)
        want = realesrgan_from_draws(ref, gt, draws, twin.get_state(), opt, monkeypatch, tools)
        c = feed_data_choices(draws.batch_uniforms, opt)
        assert got.shape == (3, 3, 16, 16)
        assert torch.equal(got, want), f"seed {seed}: {(got - want).abs().max()}"
        seen |= {("gaussian", c.gaussian1), ("second_blur", c.second_blur), ("jpeg_last", c.jpeg_last),
                 ("mode", c.mode1), ("scale", (c.scale1 > 1) - (c.scale1 < 1))}
    if name == "authors":  # both orders, both noises, with and without the second blur, up / down / keep
        assert {("jpeg_last", True), ("jpeg_last", False), ("gaussian", True), ("gaussian", False),
                ("second_blur", True), ("second_blur", False)} <= seen
        assert {s for k, s in seen if k == "scale"} == {-1, 0, 1}


def test_lq_reproducible_and_independent_of_global_rng():
    deg = D.RealDegradation(D.DegradationConfig())
    gt = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(8))
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    first = deg(gt, g)
    torch.manual_seed(1234)
    torch.rand(1000)
    random.random()
    np.random.rand(10)
    g.set_state(state)
    assert torch.equal(deg(gt, g), first)
    assert not torch.equal(deg(gt, g), first)  # the generator moved on: another batch
    assert torch.equal(first * 255, (first * 255).round())


def test_degradation_refuses_bad_input():
    deg = D.RealDegradation(D.DegradationConfig())
    g = torch.Generator()
    assert deg.min_size() == 55  # floor(55 x 0.2) = 11 pixels: one more than the second blur's reflect padding
    with pytest.raises(InputError, match="too small"):
        deg(torch.rand(1, 3, 54, 64), g)
    deg(torch.rand(1, 3, 56, 56), g)
    with pytest.raises(InputError, match="float32"):
        deg(torch.rand(1, 1, 64, 64), g)
    with pytest.raises(InputError, match="float32"):
        deg(torch.rand(1, 3, 64, 64, dtype=torch.float64), g)
    with pytest.raises(ConfigError, match="scale"):
        D.RealDegradation(D.DegradationConfig(), scale=0)


# ---------------------------------------------------------------- configuration

def test_defaults_are_the_authors_yaml():
    assert D.DegradationConfig.from_dict(authors_opt()) == D.DegradationConfig()
    assert D.DegradationConfig().kernel_range == tuple(KERNEL_RANGE)


@pytest.mark.parametrize("key, value", [
    ("kernel_prob", [0.5, 0.25, 0.12, 0.03, 0.12, 0.03]),
    ("kernel_prob2", [0.5, 0.5]),
    ("resize_prob", [0.2, 0.7]),
    ("resize_prob2", [0.5, 0.6, -0.1]),
    ("blur_sigma", [-0.2, 3]),
    ("blur_sigma2", [0, 1.5]),
    ("noise_range", [-1, 30]),
    ("noise_range2", [20, 1]),
    ("jpeg_range", [95, 50]),
    ("jpeg_range2", [50, 101]),
    ("resize_range", [0.2, 0.9]),
    ("resize_range2", [1.3, 1.2]),
    ("betag_range", [1.5, 4]),
    ("poisson_scale_range", [2, 0.05]),
    ("sinc_prob", 1.5),
    ("gray_noise_prob2", -0.1),
    ("second_blur_prob", 2),
    ("blur_kernel_size", 20),
    ("kernel_range", [7, 8, 9]),
    ("kernel_range", [7, 23]),
    ("kernel_list", ["iso", "gaussian"]),
    ("gaussian_noise_prob", "half"),
    ("blur_kernel_size2", True),
    ("queue", 144),
])
def test_from_dict_refuses_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"^train\.degradation\.{key}: "):
        D.DegradationConfig.from_dict({key: value}, where="train.degradation")


def test_direct_construction_is_checked():
    with pytest.raises(ConfigError, match=r"DegradationConfig\.sinc_prob"):
        D.DegradationConfig(sinc_prob=2.0)


# ---------------------------------------------------------------- the pair pool

class RealESRGANPool:
    """RealESRGANModel._dequeue_and_enqueue, written out from its description: the pool is allocated at the first
    batch; while not full, each batch is appended and trained on; when full, the pool is shuffled (permutation
    given), its first b pairs are trained on and the new batch takes their place."""

    def __init__(self, queue_size):
        self.queue_size, self.queue_lr = queue_size, None

    def __call__(self, lq, gt, permutation):
        b = lq.size(0)
        if self.queue_lr is None:
            self.queue_lr = torch.zeros(self.queue_size, *lq.shape[1:])
            self.queue_gt = torch.zeros(self.queue_size, *gt.shape[1:])
            self.queue_ptr = 0
        if self.queue_ptr == self.queue_size:
            idx = permutation()
            self.queue_lr, self.queue_gt = self.queue_lr[idx], self.queue_gt[idx]
            lq_dequeue, gt_dequeue = self.queue_lr[0:b].clone(), self.queue_gt[0:b].clone()
            self.queue_lr[0:b], self.queue_gt[0:b] = lq.clone(), gt.clone()
            return lq_dequeue, gt_dequeue
        self.queue_lr[self.queue_ptr:self.queue_ptr + b] = lq.clone()
        self.queue_gt[self.queue_ptr:self.queue_ptr + b] = gt.clone()
        self.queue_ptr += b
        return lq, gt


def _batches(count, b=2, seed=9):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(b, 3, 4, 4, generator=g), torch.rand(b, 3, 16, 16, generator=g)) for _ in range(count)]


def test_pair_queue_equals_realesrgan():
    queue, pool = D.PairQueue(size=6, batch=2), RealESRGANPool(6)
    g, twin = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for lq, gt in _batches(12):
        got = queue.push_pop(lq, gt, g)
        want = pool(lq, gt, lambda: torch.randperm(6, generator=twin))
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert torch.equal(g.get_state(), twin.get_state())  # one permutation per call once full, none before


def test_pair_queue_resumes(tmp_path):
    batches = _batches(14)
    queue, g = D.PairQueue(size=6, batch=2), torch.Generator().manual_seed(3)
    for lq, gt in batches[:5]:
        queue.push_pop(lq, gt, g)
    torch.save({"queue": queue.state_dict(), "rng": g.get_state()}, tmp_path / "state.pt")
    after = [queue.push_pop(lq, gt, g) for lq, gt in batches[5:]]

    saved = torch.load(tmp_path / "state.pt", weights_only=True)
    resumed, g2 = D.PairQueue(size=6, batch=2), torch.Generator()
    resumed.load_state_dict(saved["queue"])
    g2.set_state(saved["rng"])
    for (lq, gt), (want_lq, want_gt) in zip(batches[5:], after):
        got_lq, got_gt = resumed.push_pop(lq, gt, g2)
        assert torch.equal(got_lq, want_lq) and torch.equal(got_gt, want_gt)

    empty = D.PairQueue(size=6, batch=2)
    empty.load_state_dict(D.PairQueue(size=6, batch=2).state_dict())
    assert empty.ptr == 0 and empty.lq is None


def test_pair_queue_refusals():
    with pytest.raises(ConfigError, match="^queue_size: 144"):
        D.PairQueue(size=144, batch=10)
    queue = D.PairQueue(size=6, batch=2)
    with pytest.raises(InputError, match="batches of 2"):
        queue.push_pop(torch.rand(3, 3, 4, 4), torch.rand(3, 3, 16, 16), torch.Generator())
    with pytest.raises(ConfigError, match="queue_size"):
        queue.load_state_dict(D.PairQueue(size=4, batch=2).state_dict())
