"""Training losses: pure functions on tensors plus the modules that hold networks (AE, VGG19).

* ``l1``: mean |SR - HR|.
* ``aesop``: mean |AE(SR) - AE(HR)|, AE = decoder(encoder(.)) frozen (eval mode, no parameter gradients);
  AE(HR) without grad, AE(SR) with autograd, so gradients reach SR through the frozen AE.
* ``perceptual``: VGG19 pre-ReLU features conv1_2, conv2_2, conv3_4, conv4_4, conv5_4 weighted
  0.1, 0.1, 1, 1, 1, ImageNet input normalisation, L1 (BasicSR's PerceptualLoss as ESRGAN/LDL use it).
* ``gan``: relativistic average GAN with vanilla (BCE-with-logits) criterion, generator and discriminator sides
  (ESRGAN, LDL, AESOP's bicubic runs); or, ``gan_type: vanilla``, the plain GAN of Real-ESRGAN (BasicSR's
  ``GANLoss`` of type vanilla): the generator's term is BCE(D(SR), real) (the loss weight applies here only),
  the discriminator's BCE(D(HR), real) + BCE(D(SR), fake), each a mean over the logits (per pixel for the U-Net
  discriminator).
* ``ldl``: LDL's artifact map: r = sum_c |HR - SR|, r_ema likewise for the EMA generator's output;
  weight = var(r)^(1/5) (per image) x local variance of r in a 7x7 window (reflect padding 3), zeroed where
  r < r_ema; loss = L1(weight * SR, weight * HR).
* SPSR's gradient terms (Ma et al. 2020, the authors' ``SPSR_model.py``): the gradient operator M is, per RGB
  channel, the magnitude of central differences with zero padding, sqrt(v^2 + h^2 + 1e-6), v and h the
  correlations with [[0,-1,0],[0,0,0],[0,1,0]] and [[0,0,0],[-1,0,1],[0,0,0]] (:func:`gradient_map`). Their
  ``Get_gradient`` pads by 2 (maps of (H+2)x(W+2)), used for the gradient pixel loss ``grad_pixel``
  (MSE(M2(SR), M2(HR))) and fed to the gradient discriminator (``grad_gan``); ``Get_gradient_nopadding`` pads by
  1 (HxW), the target of the gradient branch's output (``grad_branch``: L1(branch, M1(HR))).
* The relativistic discriminator loss in two forms: ``split`` (BasicSR's ESRGAN model, LDL, AESOP: the real
  half against the fake logits detached, then the fake half against the real logits detached, each x0.5) and
  ``coupled`` (the older ESRGAN code SPSR trains with: (BCE(r - mean f, 1) + BCE(f - mean r, 0)) / 2 in one
  backward pass, neither mean detached, so each half's gradient also reaches the other's logits through its mean).
* AE pretraining: ``ae_recon`` = L1(AE(HR), HR) and ``ae_lr`` = L1(encoder(HR), LR).
* ``l1_lpf`` (the AESOP paper's Table 5 (b)): L1 of SR and HR after the same Gaussian low-pass filter,
  G * SR vs G * HR, G the normalised sampled Gaussian of 21 x 21 taps and sigma 3 px, reflect padding (10 px,
  the edge pixel not repeated). The paper cites two LPF-based losses, [69] (Zhang et al. 2022, PDASR) and [11]
  (Deng et al. 2019, wavelet-domain style transfer), without giving a filter; PDASR's code has a Gaussian
  option, ``GaussianLayer`` with ``--c_size 21 --c_p 3`` (its defaults) and ``ReflectionPad2d(10)``, whose
  weights are ``scipy.ndimage.gaussian_filter`` of a 21 x 21 impulse, i.e. this kernel with its tails beyond
  10 px folded back (8e-4 of the 2-D kernel's weight; no tap differs by more than 2e-5). Both works' default
  low-frequency band is the Haar LL sub-band instead.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def l1(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference.

    >>> float(l1(torch.tensor([1.0, -2.0]), torch.tensor([0.5, 1.0])))
    1.75
    """
    return (sr - hr).abs().mean()


class FrozenAE(nn.Module):
    """Holds the AE for the AESOP loss; stays in eval mode and never requires grad, whatever train() says."""

    def __init__(self, ae: nn.Module):
        super().__init__()
        self.ae = ae.eval().requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.ae.eval()
        return self

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.ae(hr)
        return (self.ae(sr) - target).abs().mean()


VGG19_LAYERS = {"conv1_2": 2, "conv2_2": 7, "conv3_4": 16, "conv4_4": 25, "conv5_4": 34}
PERCEPTUAL_WEIGHTS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}


class VGGFeatures(nn.Module):
    """Pre-ReLU VGG19 features at the named layers; input in [0, 1], ImageNet-normalised inside."""

    def __init__(self, state_dict: dict | None = None, layers=tuple(VGG19_LAYERS)):
        super().__init__()
        import torchvision

        from ..models.loading import load_features

        features = torchvision.models.vgg19(weights=None).features
        if state_dict is not None:
            load_features(features, state_dict, "vgg19")
        self.layers = list(layers)
        last = max(VGG19_LAYERS[n] for n in self.layers)
        self.features = features[: last + 1]
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True):
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = (x - self.mean) / self.std
        want = {VGG19_LAYERS[n]: n for n in self.layers}
        out = {}
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in want:
                out[want[i]] = h.clone()  # the next ReLU works in place
        return out


def perceptual(vgg: VGGFeatures, sr: torch.Tensor, hr: torch.Tensor, weights=PERCEPTUAL_WEIGHTS) -> torch.Tensor:
    """The weighted L1 distance of VGG19 features (the HR's without gradient)."""
    fs = vgg(sr)
    with torch.no_grad():
        fh = vgg(hr)
    return sum(w * (fs[k] - fh[k]).abs().mean() for k, w in weights.items())


GAN_TYPES = ("relativistic", "vanilla")


def gan_vanilla(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """The plain GAN's BCE-with-logits of the discriminator's logits against "real" (1) or "fake" (0), mean.

    >>> round(float(gan_vanilla(torch.zeros(2, 1, 4, 4), True)), 6)  # log 2
    0.693147
    """
    return _bce(pred, 1.0 if real else 0.0)


def per_micro(loss_fn, m: int, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A relativistic GAN loss whose means are taken per micro-batch of ``m`` images, averaged."""
    return torch.stack([loss_fn(x, y) for x, y in zip(a.split(m), b.split(m))]).mean()


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def gan_generator(real_pred: torch.Tensor, fake_pred: torch.Tensor) -> torch.Tensor:
    """Relativistic average GAN, generator side (real_pred detached by the caller)."""
    return (_bce(real_pred - fake_pred.mean(), 0.0) + _bce(fake_pred - real_pred.mean(), 1.0)) / 2


def gan_discriminator_real(real_pred: torch.Tensor, fake_pred_detached: torch.Tensor) -> torch.Tensor:
    """Relativistic average GAN, discriminator side, the real half."""
    return _bce(real_pred - fake_pred_detached.mean(), 1.0) * 0.5


def gan_discriminator_fake(fake_pred: torch.Tensor, real_pred_detached: torch.Tensor) -> torch.Tensor:
    """Relativistic average GAN, discriminator side, the fake half."""
    return _bce(fake_pred - real_pred_detached.mean(), 0.0) * 0.5


def gan_discriminator_coupled(real_pred: torch.Tensor, fake_pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Relativistic average GAN, discriminator side, the coupled form: the two halves (BCE(r - mean f, 1) / 2,
    BCE(f - mean r, 0) / 2), neither mean detached; their sum is the loss.

    >>> r, f = torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [2.0]])
    >>> # r - mean f = [0, 2], f - mean r = [-2, 0]: each half (log 2 + log(1 + e^-2)) / 4
    >>> [round(float(x), 6) for x in gan_discriminator_coupled(r, f)]
    [0.205019, 0.205019]
    """
    return _bce(real_pred - fake_pred.mean(), 1.0) * 0.5, _bce(fake_pred - real_pred.mean(), 0.0) * 0.5


class _GatherBatch(torch.autograd.Function):
    """Every process's tensor of the same shape, concatenated in rank order; the gradient of a process's part is
    the sum over processes of the gradient each computed for it (each computes the same loss of the whole batch,
    and DDP's mean over processes then gives the gradient of one process holding the whole batch)."""

    @staticmethod
    def forward(ctx, x, group):
        import torch.distributed as dist

        parts = [torch.empty_like(x) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, x.contiguous(), group=group)
        ctx.group, ctx.rank, ctx.n = group, dist.get_rank(group), len(x)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n], None


def gather_batch(x: torch.Tensor) -> torch.Tensor:
    """``x`` (this process's part of the global batch) with every other process's part, in rank order, gradients
    flowing back to each part (:class:`_GatherBatch`); ``x`` itself in one process."""
    import torch.distributed as dist

    from ..models.archs.discriminator_arch import _stats_group  # a group of its own, apart from DDP's all-reduces

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return x
    return _GatherBatch.apply(x, _stats_group())


def gradient_map(x: torch.Tensor, padding: int = 1) -> torch.Tensor:
    """SPSR's gradient operator M: per channel sqrt(v^2 + h^2 + 1e-6) of the central differences v (rows) and h
    (columns) of ``x`` zero-padded by ``padding``; (N, C, H + 2p - 2, W + 2p - 2). The correlations with the
    authors' two 3x3 kernels, each of two taps 1 and -1, are the differences themselves (taken here by slicing,
    exactly, on any device).

    >>> gradient_map(torch.tensor([[[[0.0, 3.0], [4.0, 0.0]]]]), padding=1)[0, 0].tolist()  # sqrt(4^2 + 3^2)
    [[5.0, 0.0010000000474974513], [0.0010000000474974513, 5.0]]
    >>> tuple(gradient_map(torch.zeros(1, 3, 128, 128), padding=2).shape)
    (1, 3, 130, 130)
    """
    p = F.pad(x, [padding] * 4)
    v = p[..., 2:, 1:-1] - p[..., :-2, 1:-1]
    h = p[..., 1:-1, 2:] - p[..., 1:-1, :-2]
    return torch.sqrt(v * v + h * h + 1e-6)


def mse(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean squared difference (``nn.MSELoss``).

    >>> float(mse(torch.tensor([1.0, -2.0]), torch.tensor([0.0, 1.0])))
    5.0
    """
    return ((sr - hr) ** 2).mean()


def local_variance(r: torch.Tensor, ksize: int = 7) -> torch.Tensor:
    """Unbiased variance of ``r`` (N, 1, H, W) in a ksize x ksize window, reflect padding."""
    pad = (ksize - 1) // 2
    p = F.pad(r, [pad, pad, pad, pad], mode="reflect")
    windows = p.unfold(2, ksize, 1).unfold(3, ksize, 1)
    return windows.var(dim=(-1, -2), unbiased=True)


def artifact_map(hr: torch.Tensor, sr: torch.Tensor, sr_ema: torch.Tensor, ksize: int = 7) -> torch.Tensor:
    """LDL's per-pixel weight (module docstring): patch variance^(1/5) x local variance, zero where the EMA
    generator's residual is larger."""
    r_ema = (hr - sr_ema).abs().sum(1, keepdim=True)
    r = (hr - sr).abs().sum(1, keepdim=True)
    patch = r.var(dim=(-1, -2, -3), keepdim=True) ** (1 / 5)
    weight = patch * local_variance(r, ksize)
    return weight.masked_fill(r < r_ema, 0.0)


def ldl(hr: torch.Tensor, sr: torch.Tensor, sr_ema: torch.Tensor) -> torch.Tensor:
    """LDL's loss: L1 of the artifact-map-weighted SR and HR."""
    w = artifact_map(hr, sr, sr_ema)
    return l1(w * sr, w * hr)


LPF_KERNEL_SIZE = 21  # PDASR's Gaussian low-pass filter (--c_size 21): see the module docstring
LPF_SIGMA = 3.0  # (--c_p 3)


def gaussian_lowpass(x: torch.Tensor, ksize: int = LPF_KERNEL_SIZE, sigma: float = LPF_SIGMA) -> torch.Tensor:
    """Each channel of (N, C, H, W) ``x`` filtered by the ksize x ksize Gaussian (separable: rows, then columns),
    reflect padding; the output has ``x``'s size."""
    from ..metrics.fidelity import _gaussian_1d  # SSIM's window: the sampled Gaussian, normalised to sum 1

    if ksize < 1 or ksize % 2 == 0 or not sigma > 0:
        raise ValueError(f"a Gaussian low-pass filter needs an odd size and sigma above 0, got {ksize} and {sigma}")
    pad = (ksize - 1) // 2
    if min(x.shape[-2:]) <= pad:
        raise ValueError(f"the {ksize}x{ksize} low-pass filter needs images larger than {pad} px on each side "
                         f"(reflect padding), got {tuple(x.shape[-2:])}")
    c = x.shape[1]
    k = _gaussian_1d(ksize, sigma).to(device=x.device, dtype=x.dtype)
    x = F.pad(x, [pad, pad, pad, pad], mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, ksize).expand(c, 1, 1, ksize), groups=c)
    return F.conv2d(x, k.view(1, 1, ksize, 1).expand(c, 1, ksize, 1), groups=c)


def l1_lowpass(sr: torch.Tensor, hr: torch.Tensor, ksize: int = LPF_KERNEL_SIZE,
               sigma: float = LPF_SIGMA) -> torch.Tensor:
    """L1 of the Gaussian low-passed SR and HR (the HR side without gradient)."""
    with torch.no_grad():
        target = gaussian_lowpass(hr, ksize, sigma)
    return l1(gaussian_lowpass(sr, ksize, sigma), target)
