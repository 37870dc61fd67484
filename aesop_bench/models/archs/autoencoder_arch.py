"""The AESOP auto-encoder: an encoder from HR to an LR-sized 3-channel bottleneck and an RRDBNet decoder.

Encoder (about 1.48M parameters): ``conv_first`` (3->4, 4->4, no activation), two pixel-unshuffles by 2
(-> 64 channels at H/4), two RRDB blocks (``body``), ``conv_last`` (64->64, 64->3, no activation).
Decoder: RRDBNet x4 (16.70M), initialised from the PSNR-oriented RRDB. AE(x) = decoder(encoder(x)).

Initialisation as the authors' code: the encoder's convolutions get BasicSR's ``default_init_weights``
(Kaiming normal x0.1, zero bias) after the modules are built in the authors' order, and every residual dense
block initialises itself the same way. Module names follow the authors' code. Their module also registers the encoder's parts a second time
under ``encoder.*``, so their checkpoints hold every encoder tensor twice;
:func:`official_ae_state_dict` folds the duplicates (after checking they are equal).

The ablations of the paper (Tables 3 and 5) swap one part, named by an option (:data:`AE_PARTS`); the default
AE is the paper's, with the same module names and initial weights:

* ``encoder: bicubic`` (Table 3, Config-(a)): the bottleneck is MATLAB's ``imresize(x, 1/4, 'bicubic')`` of the
  input (antialiased cubic, a = -0.5, symmetric padding), applied as the two resampling matrices of
  :func:`aesop_bench.data.imresize.resize_matrix`, so it is differentiable and has no parameters. The authors'
  code (``BicubicDown_RRDBNet``) calls PyTorch's antialiased bicubic instead, which equals it away from the
  borders and differs on the two outer LR pixels (PyTorch renormalises the truncated kernel, MATLAB mirrors).
* ``decoder: srresnet`` (Table 5 (a)): BasicSR's MSRResNet x4 (16 blocks of 64 features by default) in place of
  RRDBNet, the encoder unchanged (the authors' ``AutoEncoder_MSRResNet``).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn as nn

from .rrdbnet_arch import RRDB, RRDBNet, default_init_weights

# the parts an option swaps, each with its choices (the first: the paper's AE)
AE_PARTS: dict[str, tuple[str, ...]] = {"encoder": ("rrdb", "bicubic"), "decoder": ("rrdb", "srresnet")}
DEFAULT_BLOCKS = {"rrdb": 23, "srresnet": 16}  # the decoder's blocks when num_block is not given


@lru_cache(maxsize=32)
def _quarter_matrix(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    from ...data.imresize import resize_matrix

    with torch.inference_mode(False):  # a matrix first made for an evaluation must serve autograd later
        return resize_matrix(n, n // 4, 0.25).to(device=device, dtype=dtype)


class MatlabBicubicDown(nn.Module):
    """MATLAB's ``imresize(x, 1/4, 'bicubic')`` of (N, C, H, W) images (H, W multiples of 4), differentiable:
    ``A_H x A_W^T`` with MATLAB's resampling matrices (computed in float64, applied in ``x``'s dtype)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        rows = _quarter_matrix(int(h), x.device, x.dtype)
        cols = _quarter_matrix(int(w), x.device, x.dtype)
        return rows @ x @ cols.t()


class AutoEncoder(nn.Module):
    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, num_block: int | None = None, num_grow_ch: int = 32,
                 enc_blocks: int = 2, encoder: str = "rrdb", decoder: str = "rrdb"):
        super().__init__()
        for part, value in (("encoder", encoder), ("decoder", decoder)):
            if value not in AE_PARTS[part]:
                raise ValueError(f"AE {part} {value!r}; choose one of {', '.join(AE_PARTS[part])}")
        self.encoder_kind, self.decoder_kind = encoder, decoder
        num_block = DEFAULT_BLOCKS[decoder] if num_block is None else num_block
        if decoder == "rrdb":
            self.decoder = RRDBNet(num_in_ch, num_in_ch, 4, num_feat, num_block, num_grow_ch)
        else:
            from .srresnet_arch import MSRResNet

            self.decoder = MSRResNet(num_in_ch, num_in_ch, num_feat, num_block, 4)
        if encoder == "bicubic":
            self.bicubic = MatlabBicubicDown()
            return
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
        if self.encoder_kind == "bicubic":
            return self.bicubic(x)
        return self.conv_last(self.body(self.down(self.conv_first(x))))

    def encoder_parameters(self):
        """The encoder's parameters (none for the bicubic encoder)."""
        if self.encoder_kind == "bicubic":
            return
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
