"""AE-PSNR: PSNR between the auto-encoded SR and the auto-encoded HR (the paper's Table 4 and 9).

``ae_psnr = PSNR(AE(q(SR)), AE(HR))`` with the protocol's PSNR settings (Y channel, border crop, MSE
offset), as the authors' ``calculate_aepsnr_pytorch``: the SR is quantised to 8 bits (as every SR output
is), and the two AE outputs are compared in floating point as they come out of the network (neither
quantised nor clamped). ``AE = decoder(encoder(.))`` is the frozen auto-encoder given by ``--ae``: a
weights-manifest name (default ``aesop_ae``, the authors' released AE) or a checkpoint path. Networks run
in float32; the PSNR in float64.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .. import weights as wm
from ..imageio import to_unit_rgb

DEFAULT_AE = "aesop_ae"


def ae_path(spec: str) -> Path:
    if os.path.isfile(spec):
        return Path(spec)
    return wm.get(spec, download_missing=False, validate=lambda p: build_ae(str(p)))


def build_ae(spec: str):
    """An AutoEncoder with the weights of ``spec`` (manifest name or checkpoint): the authors' layout or one
    pretrained here (whose size comes from the file's metadata)."""
    from ..models.archs.autoencoder_arch import AutoEncoder, official_ae_state_dict
    from ..models.loading import load_strict, pick_state_dict

    path = ae_path(spec)
    net = AutoEncoder(**wm.read_meta(path).get("opts", {}))
    load_strict(net, official_ae_state_dict(pick_state_dict(wm.load_state_dict(path), path)), path)
    return net


def _device_tag(dev: torch.device) -> str:
    """What of the machine can change a network's float32 output: torch's version and the device model."""
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    return f"torch{torch.__version__}-{name}".replace(" ", "_").replace("/", "_")


@torch.no_grad()
def ae_psnr(sr: torch.Tensor, hr: torch.Tensor, ae, crop_border: int, y_round: bool, eps: float = 0.0,
            hr_cache: Path | None = None) -> torch.Tensor:
    """PSNR(AE(SR), AE(HR)). ``hr_cache``: a folder where AE(HR) is kept, keyed by the HR's content, for the next
    model evaluated on the same images (the folder name must identify the AE; the device is added here)."""
    import numpy as np

    from ..fileutil import atomic_write_bytes, cache_file, tensor_key
    from .fidelity import psnr

    dev = next(ae.parameters()).device
    out_sr = ae(to_unit_rgb(sr).to(dev)).double().cpu()
    path = cache_file(hr_cache / _device_tag(dev), tensor_key(hr), ".npy") if hr_cache is not None else None
    if path is not None and path.is_file():
        out_hr = torch.from_numpy(np.load(path)).double()
    else:
        raw = ae(to_unit_rgb(hr).to(dev)).float().cpu()
        if path is not None:
            import io

            buf = io.BytesIO()
            np.save(buf, raw.numpy())
            atomic_write_bytes(path, buf.getvalue())
        out_hr = raw.double()
    return psnr(out_sr, out_hr, crop_border, True, y_round, eps)



__all__ = ["ae_psnr", "build_ae", "DEFAULT_AE"]
