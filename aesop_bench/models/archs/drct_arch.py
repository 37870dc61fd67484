"""DRCT (Hsu et al. 2024, "DRCT: Saving Image Super-Resolution away from Information Bottleneck"), classical SR
with the pixel-shuffle upsampler, as the AESOP authors build it (their Table 8 network), with their module and
buffer names so that their checkpoints load strictly.

The network is SwinIR's (shallow conv, deep features, conv after the body, pixel-shuffle reconstruction), with
each residual Swin group replaced by a residual dense group (:class:`RDG`): five Swin blocks, each reading the
group's input concatenated with the ``gc`` channels grown by every block before it, the last one projected back
to ``embed_dim`` and added to the group's input with weight 0.2. The blocks alternate plain and shifted windows;
block k (0-based) has ``embed_dim + k * gc`` channels and ``num_heads - (channels % num_heads)`` heads, and the
last two blocks' MLPs are not widened (ratio 1).

Layout of the AESOP copy of DRCT (``basicsr/archs/drct_arch.py`` in 2minkyulee/AESOP-SR), the one whose
weights the zoo loads: the growth projections ``adjust1..5`` are linear layers on tokens, where the original
code (ming053l/DRCT) has 1x1 convolutions on the image with the same numbers; a checkpoint of the original
layout (4-D ``adjust*.weight``) loads too, through :func:`official_state_dict` (applied by ``load_state_dict``).

The AESOP configuration is the default: ``DRCT()`` is the paper's network (window 16, six groups, embed 180,
six heads, MLP ratio 2, ``img_range`` 1, ``img_size`` 64: the size the shifted blocks' attention masks are
precomputed for and stored at in the checkpoints; other sizes compute them on the fly). ``compress_ratio``,
``squeeze_factor``, ``conv_scale`` and ``overlap_ratio`` are accepted because the authors' configs give them, and
build nothing (they belong to HAT's channel-attention and overlapping-window blocks, which DRCT does not use).
``depths`` gives the number of groups; its values only spread the stochastic-depth rates (each group uses the
first rate of its slice for its five blocks, as the reference does).

Inputs are reflect-padded at the bottom/right to a multiple of the window and the output is cropped back, as the
AESOP copy does in its forward (the original leaves that to its test model); SwinIR's ``forward``, inherited,
does exactly this. An input too small to reflect-pad (a side of at most half the window) is an ``InputError``.
The original layout is that of DRCT's released x4 weights (``DRCT_SRx4.pth``, key ``params_ema``, in its test
config; ``official_DRCT/DRCT_X4.pth`` in AESOP's DRCT training config, which starts from them).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from ...errors import ConfigError, InputError
from .swinir_arch import SwinIR, SwinTransformerBlock

_BLOCKS = 5  # Swin blocks in one residual dense group


def official_state_dict(sd: dict) -> dict:
    """``sd`` with the original DRCT layout's 1x1-convolution growth projections (``adjust*.weight`` of shape
    (out, in, 1, 1)) reshaped to the linear layers' (out, in); every other entry unchanged."""
    return {k: v.flatten(1) if _is_adjust_conv(k, v) else v for k, v in sd.items()}


def _is_adjust_conv(key: str, value) -> bool:
    parts = key.split(".")
    return (len(parts) >= 2 and parts[-1] == "weight" and parts[-2].startswith("adjust") and value.dim() == 4
            and tuple(value.shape[2:]) == (1, 1))


def group_heads(dim: int, gc: int, num_heads: int) -> list[int]:
    """The heads of a group's five Swin blocks: ``num_heads - (channels % num_heads)`` for block k's
    ``dim + k * gc`` channels (the reference's rule)."""
    return [num_heads - (dim + k * gc) % num_heads for k in range(_BLOCKS)]


class RDG(nn.Module):
    """Residual dense group: five Swin blocks with dense connections, growth projections, a 0.2 residual."""

    def __init__(self, dim, input_resolution, num_heads, window_size, mlp_ratio, drop_path, gc,
                 use_checkpoint=False):
        super().__init__()
        heads = group_heads(dim, gc, num_heads)
        for k in range(_BLOCKS):
            c = dim + k * gc
            setattr(self, f"swin{k + 1}", SwinTransformerBlock(
                c, input_resolution, heads[k], window_size, window_size // 2 if k % 2 else 0,
                mlp_ratio if k < 3 else 1.0, drop_path))
            setattr(self, f"adjust{k + 1}", nn.Linear(c, gc if k < _BLOCKS - 1 else dim))
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        self.use_checkpoint = use_checkpoint

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # torch passes a copy of the caller's dict: converting it in place leaves the caller's as it was
        own = {k: v for k, v in state_dict.items() if k.startswith(prefix + "adjust")}
        state_dict.update(official_state_dict(own))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x, x_size):
        feats = [x]
        for k in range(1, _BLOCKS + 1):
            swin, adjust = getattr(self, f"swin{k}"), getattr(self, f"adjust{k}")
            inp = torch.cat(feats, -1) if k > 1 else x
            if self.use_checkpoint and self.training and torch.is_grad_enabled():
                y = checkpoint(swin, inp, x_size, use_reentrant=False)  # memory for recomputation in backward
            else:
                y = swin(inp, x_size)
            y = adjust(y)
            feats.append(self.lrelu(y) if k < _BLOCKS else y)
        return feats[-1] * 0.2 + x


class DRCT(SwinIR):
    """SwinIR's network (``swinir_arch.SwinIR``: shallow conv, patch norm, groups, norm, conv after the body,
    pixel-shuffle reconstruction, window padding and cropping in ``forward``) with residual dense groups."""

    def __init__(self, upscale: int = 4, in_chans: int = 3, img_size: int = 64, window_size: int = 16,
                 compress_ratio: int = 3, squeeze_factor: int = 30, conv_scale: float = 0.01,
                 overlap_ratio: float = 0.5, img_range: float = 1.0, depths=(6, 6, 6, 6, 6, 6), embed_dim: int = 180,
                 num_heads=(6, 6, 6, 6, 6, 6), mlp_ratio: float = 2.0, drop_path_rate: float = 0.1, gc: int = 32,
                 upsampler: str = "pixelshuffle", resi_connection: str = "1conv", use_checkpoint: bool = False):
        _check_options(upscale, depths, embed_dim, num_heads, gc, upsampler, resi_connection)
        super().__init__(upscale=upscale, in_chans=in_chans, img_size=img_size, window_size=window_size,
                         img_range=img_range, depths=(), embed_dim=embed_dim, num_heads=(), mlp_ratio=mlp_ratio,
                         num_feat=64)
        # unused by DRCT (see the module docstring), kept so that a configuration reads back as it was given
        self.compress_ratio, self.squeeze_factor = compress_ratio, squeeze_factor
        self.conv_scale, self.overlap_ratio = conv_scale, overlap_ratio
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        res = (img_size, img_size)
        # replaces SwinIR's (empty) group list in place, so the state dict keeps the reference's order
        self.layers = nn.ModuleList(
            RDG(embed_dim, res, num_heads[i], window_size, mlp_ratio, dpr[sum(depths[:i])], gc, use_checkpoint)
            for i in range(len(depths)))
        self.layers.apply(SwinIR._init_weights)
        if resi_connection == "identity":
            self.conv_after_body = nn.Identity()

    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != self.conv_first.in_channels:
            raise InputError(f"DRCT takes a batch of {self.conv_first.in_channels}-channel images (N, C, H, W); "
                             f"got a tensor of shape {tuple(x.shape)}")
        h, w = x.shape[2:]
        ws = self.window_size
        if (ws - h % ws) % ws >= h or (ws - w % ws) % ws >= w:
            raise InputError(f"DRCT: a {h}x{w} input cannot be reflect-padded to a multiple of the window "
                             f"({ws}); give inputs of at least {ws // 2 + 1} pixels a side (use larger tiles)")
        return super().forward(x)


def _check_options(upscale, depths, embed_dim, num_heads, gc, upsampler, resi_connection) -> None:
    """Refuse option values the reference would fail on later (or silently build a different network for)."""
    if upsampler != "pixelshuffle":
        raise ConfigError(f"DRCT upsampler {upsampler!r}: only 'pixelshuffle' (classical SR) is built")
    if resi_connection not in ("1conv", "identity"):
        raise ConfigError(f"DRCT resi_connection {resi_connection!r}: give '1conv' or 'identity'")
    if not (upscale >= 2 and upscale & (upscale - 1) == 0) and upscale != 3:
        raise ConfigError(f"DRCT supports scales 2^n and 3, got x{upscale}")
    if not depths or len(num_heads) != len(depths) or min(depths) < 1:
        raise ConfigError(f"DRCT depths {list(depths)} and num_heads {list(num_heads)}: give one positive depth "
                          "and one head count per group, as many of each")
    for heads in num_heads:
        if heads < 1:
            raise ConfigError(f"DRCT num_heads {list(num_heads)}: give at least one head per group")
        counts = group_heads(embed_dim, gc, heads)
        bad = [embed_dim + k * gc for k in range(_BLOCKS) if (embed_dim + k * gc) % counts[k]]
        if bad:
            raise ConfigError(f"DRCT embed_dim {embed_dim}, gc {gc}, num_heads {heads}: the group's blocks have "
                              f"{[embed_dim + k * gc for k in range(_BLOCKS)]} channels and {counts} heads, and "
                              f"{bad} channels do not split evenly into heads; choose embed_dim, gc and num_heads "
                              "that do (the AESOP network: 180, 32, 6)")
