"""Discriminators with BasicSR's module names.

* ``VGGStyleDiscriminator``: ESRGAN's discriminator for 128x128 patches (five stride-2 stages) or 256x256
  (six), BatchNorm, LeakyReLU 0.2, two linear layers; used by the RRDB (128 / 256) and SwinIR (256) runs.
  As in the authors' code, the 128 version normalises with per-process BatchNorm and the 256 version with
  statistics pooled over every process (``nn.SyncBatchNorm`` there, :class:`PooledBatchNorm2d` here, which
  also runs on CPU and in one process, where it is plain BatchNorm). ``sizes`` lists the input sizes it takes
  besides its own: SPSR's gradient discriminator, a 128 one, is fed gradient maps of 130x130 (its last stage is
  4x4 for any size from 128 to 143).
* ``UNetDiscriminatorSN``: Real-ESRGAN's U-Net discriminator with spectral normalisation (real-world
  training), per-pixel logits.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm


_STATS_GROUPS: dict = {}


def _stats_group():
    """A process group of its own for the statistics, so that their all-reduces never interleave with DDP's
    gradient all-reduces on the default group (made once per process, by every rank at the same forward)."""
    import torch.distributed as dist

    key = id(dist.group.WORLD)
    if key not in _STATS_GROUPS:
        _STATS_GROUPS[key] = dist.new_group(backend=dist.get_backend())
    return _STATS_GROUPS[key]


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of every process's input is the sum of all processes' gradients."""

    @staticmethod
    def forward(ctx, x, group):
        import torch.distributed as dist

        ctx.group = group
        out = x.clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        import torch.distributed as dist

        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class PooledBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics are pooled over all processes of a distributed run (SyncBatchNorm's
    semantics, on any device and backend); in one process it is ``nn.BatchNorm2d``. Same state-dict keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        xf = x.double()  # sums of squares in float64: no cancellation in E[x^2] - E[x]^2
        stats = torch.cat([xf.sum(dim=(0, 2, 3)), (xf * xf).sum(dim=(0, 2, 3)),
                           torch.tensor([float(x.numel() // c)], device=x.device, dtype=torch.float64)])
        stats = _AllReduceSum.apply(stats, _stats_group())
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach().to(self.running_mean.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_((var.detach() * n / (n - 1)).to(self.running_var.dtype), alpha=m)
        # normalised in float32 at least (as nn.SyncBatchNorm and autocast's batch_norm): under bf16 a mean rounded
        # to bf16 before x - mean would shift every activation
        dt = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        mean, var = mean.to(dt).view(1, c, 1, 1), var.to(dt).view(1, c, 1, 1)
        out = (x.to(dt) - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            out = out * self.weight.to(dt).view(1, c, 1, 1) + self.bias.to(dt).view(1, c, 1, 1)
        return out


class VGGStyleDiscriminator(nn.Module):
    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128, pooled_bn: bool | None = None,
                 sizes: list[int] | None = None):
        super().__init__()
        if input_size not in (128, 256):
            raise ValueError(f"VGGStyleDiscriminator takes 128 or 256 patches, got {input_size}")
        self.input_size = input_size
        n_down = 5 if input_size == 128 else 6  # stride-2 stages: the linear layer reads 4x4 features
        self.sizes = tuple(dict.fromkeys([input_size, *(sizes or [])]))
        bad = [s for s in self.sizes if not isinstance(s, int) or isinstance(s, bool) or s < 1 or s >> n_down != 4]
        if bad:
            raise ValueError(f"the {input_size} discriminator ends in 4x4 features for inputs of {4 << n_down} to "
                             f"{(5 << n_down) - 1} pixels; sizes {bad} are not among them")
        bn = PooledBatchNorm2d if (input_size == 256 if pooled_bn is None else pooled_bn) else nn.BatchNorm2d
        chans = [num_feat, num_feat * 2, num_feat * 4, num_feat * 8, num_feat * 8] + \
            ([num_feat * 8] if input_size == 256 else [])
        self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(num_feat, num_feat, 4, 2, 1, bias=False)
        self.bn0_1 = bn(num_feat, affine=True)
        for i in range(1, len(chans)):
            setattr(self, f"conv{i}_0", nn.Conv2d(chans[i - 1], chans[i], 3, 1, 1, bias=False))
            setattr(self, f"bn{i}_0", bn(chans[i], affine=True))
            setattr(self, f"conv{i}_1", nn.Conv2d(chans[i], chans[i], 4, 2, 1, bias=False))
            setattr(self, f"bn{i}_1", bn(chans[i], affine=True))
        self.n_stages = len(chans)
        self.linear1 = nn.Linear(num_feat * 8 * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] not in self.sizes or x.shape[-2] not in self.sizes:
            takes = " or ".join(f"{s}x{s}" for s in self.sizes)
            raise ValueError(f"the discriminator takes {takes} patches, got {tuple(x.shape[-2:])}")
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for i in range(1, self.n_stages):
            feat = self.lrelu(getattr(self, f"bn{i}_0")(getattr(self, f"conv{i}_0")(feat)))
            feat = self.lrelu(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(feat)))
        return self.linear2(self.lrelu(self.linear1(feat.flatten(1))))


class UNetDiscriminatorSN(nn.Module):
    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True):
        super().__init__()
        self.skip_connection = skip_connection
        sn = spectral_norm
        f = num_feat
        self.conv0 = nn.Conv2d(num_in_ch, f, 3, 1, 1)
        self.conv1 = sn(nn.Conv2d(f, f * 2, 4, 2, 1, bias=False))
        self.conv2 = sn(nn.Conv2d(f * 2, f * 4, 4, 2, 1, bias=False))
        self.conv3 = sn(nn.Conv2d(f * 4, f * 8, 4, 2, 1, bias=False))
        self.conv4 = sn(nn.Conv2d(f * 8, f * 4, 3, 1, 1, bias=False))
        self.conv5 = sn(nn.Conv2d(f * 4, f * 2, 3, 1, 1, bias=False))
        self.conv6 = sn(nn.Conv2d(f * 2, f, 3, 1, 1, bias=False))
        self.conv7 = sn(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv8 = sn(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = lambda t: F.leaky_relu(t, negative_slope=0.2, inplace=True)  # noqa: E731
        up = lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)  # noqa: E731
        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        x4 = act(self.conv4(up(x3)))
        if self.skip_connection:
            x4 = x4 + x2
        x5 = act(self.conv5(up(x4)))
        if self.skip_connection:
            x5 = x5 + x1
        x6 = act(self.conv6(up(x5)))
        if self.skip_connection:
            x6 = x6 + x0
        out = act(self.conv7(x6))
        out = act(self.conv8(out))
        return self.conv9(out)


def _vgg(size: int):
    def build(pooled_bn: bool | None = None, num_feat: int = 64, sizes: list[int] | None = None) -> nn.Module:
        return VGGStyleDiscriminator(3, num_feat, size, pooled_bn=pooled_bn, sizes=sizes)
    return build


def _unet(pooled_bn: bool | None = None, **opts) -> nn.Module:
    return UNetDiscriminatorSN(3, **opts)  # spectral norm, no BatchNorm: nothing to pool


# discriminator architectures by name: builder(pooled_bn, **opts) (a config's discriminator: {arch, opts})
DISCRIMINATORS = {"vgg128": _vgg(128), "vgg256": _vgg(256), "unet": _unet}
