"""AE-PSNR: PSNR between the auto-encoded SR and the auto-encoded HR (the paper's Table 4 and 9).

``ae_psnr = PSNR(AE(q(SR)), AE(HR))`` with the protocol's PSNR settings (Y channel, border crop, MSE
offset), as the authors' ``calculate_aepsnr_pytorch``: the SR is quantised to 8 bits (as every SR output
is), and the two AE outputs are compared in floating point as they come out of the network (neither
quantised nor clamped). ``AE = decoder(encoder(.))`` is the frozen auto-encoder given by ``--ae``: a
weights-manifest name (default ``aesop_ae``, the authors' released AE) or a checkpoint path. Networks run
in float32; the PSNR in float64.
"""

from __future__ import annotations

import torch

from ..imageio import to_unit_rgb
from ..models.ae import DEFAULT_AE, build_ae

@torch.no_grad()
def ae_hr_side(ae, hr: torch.Tensor) -> list[torch.Tensor]:
    """``[AE(HR)]`` in float32, as the network returns it: what AE-PSNR compares SR images with (and what a
    cache may keep)."""
    dev = next(ae.parameters()).device
    return [ae(to_unit_rgb(hr).to(dev)).float()]


@torch.no_grad()
def ae_psnr_from_hr_side(sr: torch.Tensor, ae_hr: list[torch.Tensor], ae, crop_border: int, y_round: bool,
                         eps: float = 0.0) -> torch.Tensor:
    """PSNR(AE(SR), AE(HR)) given ``ae_hr``, the :func:`ae_hr_side` of the HR images."""
    from .fidelity import psnr

    dev = next(ae.parameters()).device
    out_sr = ae(to_unit_rgb(sr).to(dev)).double().cpu()
    return psnr(out_sr, ae_hr[0].double().cpu(), crop_border, True, y_round, eps)


def ae_psnr(sr: torch.Tensor, hr: torch.Tensor, ae, crop_border: int, y_round: bool, eps: float = 0.0) -> torch.Tensor:
    """PSNR(AE(SR), AE(HR)) per image, with the PSNR settings of the protocol (module docstring)."""
    return ae_psnr_from_hr_side(sr, ae_hr_side(ae, hr), ae, crop_border, y_round, eps)


__all__ = ["ae_psnr", "ae_hr_side", "ae_psnr_from_hr_side", "build_ae", "DEFAULT_AE"]
