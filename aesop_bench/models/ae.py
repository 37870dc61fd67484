"""The AESOP auto-encoder with its weights, built for the loss of training and for the AE-PSNR metric alike."""

from __future__ import annotations

import os
from pathlib import Path

from .. import weights as wm

DEFAULT_AE = "aesop_ae"  # the authors' released auto-encoder (weights manifest)


def ae_path(spec: str) -> Path:
    """The file of ``spec``: a checkpoint path as it is, or a weights-manifest name (verified, never downloaded
    here: a missing file is an error saying how to get it)."""
    if os.path.isfile(spec):
        return Path(spec)
    return wm.get(spec, download_missing=False, validate=lambda p: build_ae(str(p)))


def build_ae(spec: str = DEFAULT_AE):
    """An AutoEncoder with the weights of ``spec`` (manifest name or checkpoint): the authors' layout or one
    pretrained here (whose size comes from the file's metadata)."""
    from .archs.autoencoder_arch import AutoEncoder, official_ae_state_dict
    from .loading import load_strict, pick_state_dict

    path = ae_path(spec)
    net = AutoEncoder(**wm.read_meta(path).get("opts", {}))
    load_strict(net, official_ae_state_dict(pick_state_dict(wm.load_state_dict(path), path)), path)
    return net
