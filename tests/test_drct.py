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
* ``drct_reference_small.pt``: ``torch.manual_seed(0)``; the AESOP ``DRCT(**SMALL)`` with ``SMALL`` = the file's
  ``config`` (x4, embed 12, two groups of 3 heads, gc 8, window 4, img_size 16: block heads 3, 1, 2, 3, 1); then
  with ``torch.Generator().manual_seed(1)``: every parameter plus ``0.05 * randn`` (so biases and norms count),
  ``x_square = rand(1, 3, 16, 16)``, ``x_odd = rand(1, 3, 10, 13)``; outputs in eval mode under ``no_grad``:
  ``y_square``, ``y_odd`` (the reference pads to 12x16 and crops). ``state_dict`` is that module's state dict.
  The original DRCT (1x1-convolution ``adjust*``, no padding in its forward) built with the same config, loaded
  with that state dict (``adjust*.weight`` viewed as (out, in, 1, 1)), gave ``y_square_original_layout``.
* ``drct_keys_aesop.json``: the AESOP ``DRCT`` with ``network_g`` of
  ``options/test/AESOP/supp/test_Synthetic_AESOP_DRCT256.yml`` (the file's ``config``): its state dict's keys and
  shapes in order, and its number of parameters.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from aesop_bench.errors import ConfigError, InputError
from aesop_bench.models.archs.drct_arch import DRCT

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def small():
    return torch.load(DATA / "drct_reference_small.pt", weights_only=True)


def _n_params(net):
    return sum(p.numel() for p in net.parameters())


def test_small_drct_equals_aesop_reference(small):
    """The state dict loads strictly, our own buffers (relative positions, the shifted blocks' masks at img_size)
    equal the reference's, and both the stored-mask size and a padded, cropped size give the reference's output."""
    net = DRCT(**small["config"]).eval()
    sd = small["state_dict"]
    own = net.state_dict()
    assert list(own) == list(sd)
    for k, v in own.items():
        if "relative_position_index" in k or "attn_mask" in k:
            assert torch.equal(v, sd[k]), k
    net.load_state_dict(sd, strict=True)
    with torch.no_grad():
        y_square, y_odd = net(small["x_square"]), net(small["x_odd"])
    assert y_odd.shape == (1, 3, 40, 52)
    torch.testing.assert_close(y_square, small["y_square"], rtol=0, atol=1e-6)
    torch.testing.assert_close(y_odd, small["y_odd"], rtol=0, atol=1e-6)


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
    torch.testing.assert_close(y, small["y_square_original_layout"], rtol=0, atol=1e-6)


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
