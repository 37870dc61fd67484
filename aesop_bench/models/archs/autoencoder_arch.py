"""The AESOP auto-encoder: an encoder from HR to an LR-sized 3-channel bottleneck and an RRDBNet decoder.

Encoder (about 1.48M parameters): ``conv_first`` (3->4, 4->4, no activation), two pixel-unshuffles by 2
(-> 64 channels at H/4), two RRDB blocks (``body``), ``conv_last`` (64->64, 64->3, no activation).
Decoder: RRDBNet x4 (16.70M), initialised from the PSNR-oriented RRDB. AE(x) = decoder(encoder(x)).

Initialisation as the authors' code: the encoder's convolutions get BasicSR's ``default_init_weights``
(Kaiming normal x0.1, zero bias) after the modules are built in the authors' order, and every residual dense
block initialises itself the same way. Module names follow the authors' code. Their module also registers the encoder's parts a second time
under ``encoder.*``, so their checkpoints hold every encoder tensor twice;
:func:`official_ae_state_dict` folds the duplicates (after checking they are equal).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .rrdbnet_arch import RRDB, RRDBNet, default_init_weights


class AutoEncoder(nn.Module):
    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32,
                 enc_blocks: int = 2):
        super().__init__()
        self.decoder = RRDBNet(num_in_ch, num_in_ch, 4, num_feat, num_block, num_grow_ch)
        c = num_feat // 16
        self.conv_first = nn.Sequential(nn.Conv2d(num_in_ch, c, 3, 1, 1), nn.Conv2d(c, c, 3, 1, 1))
        self.down = nn.Sequential(nn.PixelUnshuffle(2), nn.PixelUnshuffle(2))
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(enc_blocks)])
        self.conv_last = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.Conv2d(num_feat, num_in_ch, 3, 1, 1))
        default_init_weights([self.conv_first, self.conv_last], 0.1)  # the RRDB blocks initialise themselves

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """HR (N, 3, H, W) -> bottleneck (N, 3, H/4, W/4); H and W must be multiples of 4."""
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"the AE needs sizes divisible by 4, got {tuple(x.shape[-2:])}")
        return self.conv_last(self.body(self.down(self.conv_first(x))))

    def encoder_parameters(self):
        for m in (self.conv_first, self.body, self.conv_last):
            yield from m.parameters()

    def forward(self, x: torch.Tensor, return_bottleneck: bool = False):
        z = self.encode(x)
        out = self.decoder(z)
        return (out, z) if return_bottleneck else out


_ENCODER_ALIASES = {"encoder.0.": "conv_first.", "encoder.2.": "body.", "encoder.3.": "conv_last."}


def official_ae_state_dict(sd: dict) -> dict:
    """Fold the authors' duplicated ``encoder.*`` entries into the primary names (they must be equal)."""
    out = {}
    for k, v in sd.items():
        alias = next((p for p in _ENCODER_ALIASES if k.startswith(p)), None)
        if alias is None:
            out[k] = v
            continue
        primary = _ENCODER_ALIASES[alias] + k[len(alias):]
        if primary in sd and not torch.equal(sd[primary], v):
            raise ValueError(f"checkpoint key {k} differs from {primary}, which it should duplicate")
        out.setdefault(primary, v)
    return out
