"""Distribution metrics: FID on whole images and patch-FID (pFID), pytorch-fid's Inception.

* Features: the FID Inception network of pytorch-fid (``pt_inception-2015-12-05``,
  the TensorFlow FID graph ported to PyTorch), pool3 output, 2048-d, float32.
  Its weights come through the weights manager.
* ``fid`` (``--fid-mode legacy_pytorch``, as the LDL/AESOP scripts): each
  whole image resized to 299x299 (bilinear, ``align_corners=False``), one
  feature per image; SR features of a set against the HR features of the same set.
* ``pfid``: non-overlapping 299x299 patches on a grid from the top-left
  corner (a remainder narrower than 299 is dropped); an image smaller than 299
  in a dimension is first zero-padded (bottom/right) to 299 there. SR patches
  against HR patches of the same set. No resizing.
* ``--fid-mode clean`` (clean-fid's ``clean`` mode): the TensorFlow Inception as clean-fid ships it
  (NVIDIA's TorchScript port), images resized to 299 by clean-fid's PIL bicubic resizer on float values
  (patches are already 299 and are not resized), inputs ``(x - 128) / 128`` on the 0-255 scale.
* The Frechet distance is computed by :func:`frechet_distance_features`
  (exact for sets with fewer samples than dimensions).

Features are cached by the sha256 of the image tensor, so the HR side of a set
is computed once per protocol and reused by every model.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import weights as wm
from ..cache import ARRAY, Store, device_tag, folder
from ..errors import ConfigError, InputError
from ..fileutil import tensor_key
from .registry import FID_MODE

PATCH = 299
FID_MODES = FID_MODE.choices
FEATURE_VERSIONS = {"legacy_pytorch": "pt_inception-2015-12-05-pool3-v1",
                    "clean": "tf_inception-2015-12-05-torchscript-cleanresize-v1"}


def build_fid_inception(state_dict: dict | None = None) -> nn.Module:
    """pytorch-fid's FID Inception graph (torchvision InceptionV3 with the FID blocks), weights from ``state_dict``."""
    import torchvision
    from pytorch_fid.inception import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2

    net = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE_1(1280)
    net.Mixed_7c = FIDInceptionE_2(2048)
    if state_dict is not None:
        net.load_state_dict(state_dict)
    return net


class FIDFeatures(nn.Module):
    """Pool3 features of [0, 1] images, as ``pytorch_fid.inception.InceptionV3([3])`` computes them."""

    def __init__(self, inception: nn.Module):
        super().__init__()
        n = inception
        self.body = nn.Sequential(
            n.Conv2d_1a_3x3, n.Conv2d_2a_3x3, n.Conv2d_2b_3x3, nn.MaxPool2d(kernel_size=3, stride=2),
            n.Conv2d_3b_1x1, n.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2),
            n.Mixed_5b, n.Mixed_5c, n.Mixed_5d, n.Mixed_6a, n.Mixed_6b, n.Mixed_6c, n.Mixed_6d, n.Mixed_6e,
            n.Mixed_7a, n.Mixed_7b, n.Mixed_7c, nn.AdaptiveAvgPool2d(output_size=(1, 1)))
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor, resize: bool = True) -> torch.Tensor:
        if resize:
            x = F.interpolate(x, size=(PATCH, PATCH), mode="bilinear", align_corners=False)
        return self.body(2 * x - 1).flatten(1)


def patches(img: torch.Tensor, size: int = PATCH) -> torch.Tensor:
    """``(C, H, W)`` -> ``(k, C, size, size)`` non-overlapping patches (see the module docstring)."""
    c, h, w = img.shape
    ph, pw = max(size - h, 0), max(size - w, 0)
    if ph or pw:
        img = F.pad(img, (0, pw, 0, ph))
        h, w = img.shape[-2:]
    nh, nw = h // size, w // size
    img = img[:, : nh * size, : nw * size]
    return img.reshape(c, nh, size, nw, size).permute(1, 3, 0, 2, 4).reshape(nh * nw, c, size, size)


class CleanFIDFeatures(nn.Module):
    """clean-fid's ``clean`` features: its TorchScript Inception on 299x299 inputs on the 0-255 scale."""

    def __init__(self, path):
        super().__init__()
        self.layers = torch.jit.load(str(path), map_location="cpu").eval().layers

    def forward(self, x255: torch.Tensor) -> torch.Tensor:
        return self.layers((x255 - 128) / 128).reshape(x255.shape[0], 2048)


def clean_resize(img: torch.Tensor) -> torch.Tensor:
    """clean-fid's resizer (PIL bicubic on float32 channels) of a uint8 ``(3, H, W)`` image -> (3, 299, 299)."""
    from cleanfid.resize import make_resizer

    fn = make_resizer("PIL", False, "bicubic", (PATCH, PATCH))
    return torch.from_numpy(np.ascontiguousarray(fn(img.permute(1, 2, 0).numpy()).transpose(2, 0, 1)))


WEIGHTS = {"legacy_pytorch": "pt_inception", "clean": "inception_torchscript"}


def extractor(device="cpu", mode: str = "legacy_pytorch") -> nn.Module:
    """The feature network of ``mode`` with the manager's weights, on ``device``."""
    if mode == "clean":
        return CleanFIDFeatures(wm.get(WEIGHTS[mode], download_missing=False)).to(device)
    sd = wm.load_state_dict(wm.get(WEIGHTS[mode], download_missing=False))
    return FIDFeatures(build_fid_inception(sd)).to(device)


def _store(mode: str, view: str, device) -> Store | None:
    """Where features are kept: under the feature definition, the weights' hash, and torch's version and the device
    (float32 features differ in their last bits between them), one folder per view; None where the weights are
    absent."""
    weights = wm.digest(WEIGHTS[mode])
    if weights is None:
        return None
    return Store("features", folder("features", FEATURE_VERSIONS[mode], f"w{weights[:12]}", device_tag(device), view),
                 ARRAY, valid=_valid)


def _valid(arr) -> bool:
    return arr.ndim == 2 and arr.shape[1] == 2048 and arr.dtype == np.float64


CHUNK = 16  # 299x299 inputs per forward


@torch.no_grad()
def images_features(imgs: list[torch.Tensor], view: str, device="cpu", mode: str = "legacy_pytorch",
                    net=None) -> list[np.ndarray]:
    """The features of each uint8 ``(C, H, W)`` image: ``view`` 'whole' -> (1, 2048), 'patch' -> (k, 2048). Cached;
    those not cached go through the network together, CHUNK inputs (whole images resized one by one, or patches)
    per forward. ``net``: a callable returning the feature network, called only on a cache miss (default: build
    one)."""
    if mode not in FID_MODES:
        raise ConfigError(f"fid_mode {mode!r} unknown; choose one of {', '.join(FID_MODES)}")
    store = _store(mode, view, device)
    keys = [tensor_key(img) for img in imgs] if store is not None else []
    out = [store.get(k) for k in keys] if store is not None else [None] * len(imgs)
    miss = [i for i, o in enumerate(out) if o is None]
    if not miss:
        return out
    inputs = [_inputs(imgs[i].expand(3, -1, -1) if imgs[i].shape[0] == 1 else imgs[i], view, mode) for i in miss]
    flat = torch.cat(inputs)
    net = net() if net is not None else extractor(device, mode)
    if mode == "clean":
        feats = torch.cat([net(flat[i:i + CHUNK].to(device)) for i in range(0, len(flat), CHUNK)])
    else:
        feats = torch.cat([net(flat[i:i + CHUNK].to(device), resize=False) for i in range(0, len(flat), CHUNK)])
    feats = feats.double().cpu().numpy()
    start = 0
    for i, x in zip(miss, inputs):
        out[i] = feats[start:start + len(x)]
        start += len(x)
        if store is not None:
            store.put(keys[i], out[i])
    return out


def _inputs(img: torch.Tensor, view: str, mode: str) -> torch.Tensor:
    """The network inputs of a uint8 ``(3, H, W)`` image: the whole image at 299x299, or its patches."""
    if mode == "clean":
        return clean_resize(img)[None].float() if view == "whole" else patches(img.float())
    if view == "whole":
        return F.interpolate(img.float().div(255.0)[None], size=(PATCH, PATCH), mode="bilinear", align_corners=False)
    return patches(img.float().div(255.0))


def set_distance(sr_feats: list[np.ndarray], hr_feats: list[np.ndarray]) -> float:
    """The Frechet distance between the SR and HR features of a set (each image's rows stacked); a side with fewer
    than 2 features (one image for FID, one patch for pFID) has no covariance and is refused."""
    from .frechet import frechet_distance_features

    a, b = np.concatenate(sr_feats), np.concatenate(hr_feats)
    if len(a) < 2 or len(b) < 2:
        raise InputError(f"a Frechet distance needs at least 2 features on each side; this set gives "
                         f"{len(a)} SR and {len(b)} HR feature(s) (FID: one per image, pFID: one per 299x299 "
                         "patch): evaluate it on a set with more images")
    return frechet_distance_features(a, b)
