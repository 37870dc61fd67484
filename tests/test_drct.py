"""DRCT against the reference code (the AESOP authors' copy of DRCT, and the original DRCT layout), through files
that code made, and against the parameter counts DRCT publishes.

How the fixtures were made (reference code read from its repositories, run outside this project):

* ``AESOP/basicsr/archs/drct_arch.py`` of 2minkyulee/AESOP-SR at 3d6fe1d95a0a2fbaf2365861b0ce9f725985c498 (sha256
  f9d5c47f...60efc8; the class ``DRCT`` the authors' configs build with ``type: DRCT``) and
  ``drct/archs/DRCT_arch.py`` of ming053l/DRCT at c0a8b51e69241cf7f8ae598053235ff498517935 (sha256
  d70fee37...de18ca) were saved to a temporary folder and imported as modules with
  ``importlib.util.spec_from_file_location``, their ``basicsr`` imports served by basicsr 1.4.2 (the test extra;
  with ``torchvision.transforms.functional_tensor`` aliased as in ``tests/references.py``), ``einops`` from the
  environment; ``ARCH_REGISTRY._obj_map.pop("DRCT")`` before each import, since both register a ``DRCT``.
* ``drct_reference_small_outputs.pt``: the AESOP ``DRCT(**SMALL)``, ``SMALL`` = the file's ``config`` (x4, embed 12,
  two groups of 3 heads, gc 8, window 4, img_size 16: block heads 3, 1, 2, 3, 1), its state dict's ``keys`` in
  order, and its outputs with every floating-point parameter replaced by :func:`named_weights` (a function of the
  key and shape alone, so any implementation's creation order gives the same weights; its buffers kept as the
  module computed them): with ``torch.Generator().manual_seed(1)``, ``x_square = rand(1, 3, 16, 16)``, ``x_odd =
  rand(1, 3, 10, 13)``; outputs in eval mode under ``no_grad``: ``y_square``, ``y_odd`` (the reference pads to 12x16
  and crops). The original DRCT (1x1-convolution ``adjust*``, no padding in its forward) built with the same config
  and those weights (``adjust*.weight`` viewed as (out, in, 1, 1)) gave ``y_square_original_layout``, equal to
  ``y_square`` bit for bit.
* ``drct_keys_aesop.json``: the AESOP ``DRCT`` with ``network_g`` of
  ``options/test/AESOP/supp/test_Synthetic_AESOP_DRCT256.yml`` (the file's ``config``): its state dict's keys and
  shapes in order, and its number of parameters.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
import torch

from aesop_bench.errors import ConfigError, InputError
from aesop_bench.models.archs.drct_arch import DRCT

DATA = Path(__file__).parent / "data"


def named_weights(sd: dict) -> dict:
    """``sd`` with each floating-point parameter replaced by a function of its key and shape: ``0.05 * randn``
    from a generator seeded with the key's CRC-32 (norm weights ``1 + 0.05 * randn``); buffers (relative position
    indices, shifted windows' masks) kept."""
    out = {}
    for k, v in sd.items():
        if not v.is_floating_point() or "attn_mask" in k:
            out[k] = v.clone()
            continue
        r = torch.randn(v.shape, generator=torch.Generator().manual_seed(zlib.crc32(k.encode())))
        out[k] = 1 + 0.05 * r if "norm" in k and k.endswith(".weight") else 0.05 * r
    return out


@pytest.fixture(scope="module")
def small():
    ref = torch.load(DATA / "drct_reference_small_outputs.pt", weights_only=True)
    g = torch.Generator().manual_seed(1)
    x_square, x_odd = torch.rand(1, 3, 16, 16, generator=g), torch.rand(1, 3, 10, 13, generator=g)
    return {**ref, "state_dict": named_weights(DRCT(**ref["config"]).state_dict()), "x_square": x_square,
            "x_odd": x_odd}


def _n_params(net):
    return sum(p.numel() for p in net.parameters())


def test_small_drct_equals_aesop_reference(small):
    """Our state dict has the reference's keys in order, and with the same weights both the stored-mask size
    (our own relative positions and shifted blocks' masks at img_size) and a padded, cropped size give the
    reference's output."""
    net = DRCT(**small["config"]).eval()
    assert list(net.state_dict()) == small["keys"]
    net.load_state_dict(small["state_dict"], strict=True)
    with torch.no_grad():
        y_square, y_odd = net(small["x_square"]), net(small["x_odd"])
    assert y_odd.shape == (1, 3, 40, 52)
    torch.testing.assert_close(y_square, small["y_square"], rtol=0, atol=1e-7)  # measured: 0.0
    torch.testing.assert_close(y_odd, small["y_odd"], rtol=0, atol=1e-7)  # measured: 0.0


def test_original_layout_loads_and_equals_original_drct(small):
    """A checkpoint of ming053l/DRCT's layout (1x1-convolution adjust weights) loads through load_state_dict and
    gives that code's output; the caller's dict is left as it was."""
    sd4 = {k: (v.view(*v.shape, 1, 1) if ".adjust" in k and k.endswith(".weight") else v)
           for k, v in small["state_dict"].items()}
    net = DRCT(**small["config"]).eval()
    net.load_state_dict(sd4, strict=True)
    assert sd4["layers.0.adjust1.weight"].dim() == 4
    with torch.no_grad():
        y = net(small["x_square"])
    torch.testing.assert_close(y, small["y_square_original_layout"], rtol=0, atol=1e-7)  # measured: 0.0


def test_aesop_drct_keys_shapes_and_size_equal_reference():
    """DRCT() is the AESOP network: the reference's state-dict keys and shapes, in order, and its parameter count,
    which is also the DRCT README's 14.13M (to two decimals, truncated) and its notebook's 14139579."""
    ref = json.loads((DATA / "drct_keys_aesop.json").read_text())
    net = DRCT()
    assert [[k, list(v.shape)] for k, v in net.state_dict().items()] == ref["state_dict"]
    assert _n_params(net) == ref["num_parameters"] == 14139579
    assert int(_n_params(net) / 1e4) == 1413


def test_drct_l_size_is_published():
    """DRCT-L (twelve groups): 27.58M parameters in the DRCT README (img_size only sizes the stored masks)."""
    assert int(_n_params(DRCT(img_size=32, depths=[6] * 12, num_heads=[6] * 12)) / 1e4) == 2758


@pytest.mark.parametrize("opts, match", [
    ({"embed_dim": 23, "gc": 8, "num_heads": [5]}, "do not split evenly"),
    ({"depths": [6, 6], "num_heads": [6]}, "one head count per group"),
    ({"upsampler": "nearest+conv"}, "pixelshuffle"),
    ({"resi_connection": "3conv"}, "1conv"),
])
def test_bad_options_are_refused(opts, match):
    with pytest.raises(ConfigError, match=match):
        DRCT(**{"depths": [1], "num_heads": [6], **opts})


def test_bad_scale_is_refused():
    with pytest.raises(ConfigError, match="x5"):
        DRCT(upscale=5, depths=[1], num_heads=[6])


def test_input_too_small_for_reflect_padding(small):
    net = DRCT(**small["config"]).eval()  # window 4: sides of 3 or more pad by reflection
    with pytest.raises(InputError, match="at least 3 pixels"):
        net(torch.rand(1, 3, 2, 8))
    with pytest.raises(InputError, match="3-channel"):
        net(torch.rand(1, 1, 8, 8))
