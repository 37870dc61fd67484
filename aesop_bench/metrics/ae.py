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
def ae_psnr(sr: torch.Tensor, hr: torch.Tensor, ae, crop_border: int, y_round: bool, eps: float = 0.0,
            hr_cache=None) -> torch.Tensor:
    """PSNR(AE(SR), AE(HR)). ``hr_cache``: an :class:`~aesop_bench.metrics.hrcache.HRCache` (named after the AE)
    where AE(HR) is kept for the next model evaluated on the same images."""
    from .fidelity import psnr

    dev = next(ae.parameters()).device
    out_sr = ae(to_unit_rgb(sr).to(dev)).double().cpu()

    def hr_side(x):
        return [ae(to_unit_rgb(x).to(dev)).float()]
    out_hr = (hr_side(hr) if hr_cache is None else hr_cache.get_batch(hr, hr_side))[0].double().cpu()
    return psnr(out_sr, out_hr, crop_border, True, y_round, eps)


__all__ = ["ae_psnr", "build_ae", "DEFAULT_AE"]
