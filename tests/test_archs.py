"""Architectures against BasicSR's (the reference code of ESRGAN, SwinIR, LDL and AESOP): the same state
dict loads strictly (so the key names are the official ones) and gives the same outputs."""

from __future__ import annotations


import pytest
import torch

from aesop_bench.models.archs.rrdbnet_arch import RRDBNet
from aesop_bench.models.archs.swinir_arch import SwinIR
from tests.references import basicsr_archs


def _same(ours, ref, x, atol=1e-5, ref_input=None, crop=None):
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval(), ref.eval()
    with torch.no_grad():
        a, b = ours(x), ref(x if ref_input is None else ref_input)
    if crop is not None:
        b = b[..., : crop[0], : crop[1]]
    assert a.shape == b.shape
    assert torch.allclose(a, b, atol=atol), (a - b).abs().max()


def test_rrdbnet_equals_basicsr():
    b = basicsr_archs()
    torch.manual_seed(0)
    ref = b.rrdb.RRDBNet(3, 3, scale=4, num_feat=64, num_block=23, num_grow_ch=32)
    _same(RRDBNet(), ref, torch.rand(1, 3, 12, 10))


@pytest.mark.parametrize("size", [(16, 16), (13, 21)])  # the precomputed-mask path and the padded path
def test_swinir_m_equals_basicsr(size):
    """BasicSR's SwinIR model reflect-pads the LR to a multiple of the window and crops the output; ours
    does the same inside forward."""
    b = basicsr_archs()
    torch.manual_seed(1)
    ref = b.swinir.SwinIR(upscale=4, in_chans=3, img_size=16, window_size=8, img_range=1.0, depths=[6] * 6,
                          embed_dim=180, num_heads=[6] * 6, mlp_ratio=2, upsampler="pixelshuffle",
                          resi_connection="1conv")
    x = torch.rand(1, 3, *size)
    h, w = size
    padded = torch.nn.functional.pad(x, (0, (8 - w % 8) % 8, 0, (8 - h % 8) % 8), "reflect")
    _same(SwinIR(img_size=16), ref, x, atol=1e-4, ref_input=padded, crop=(4 * h, 4 * w))


def test_swinir_m_size():
    assert round(sum(p.numel() for p in SwinIR().parameters()) / 1e6, 1) == 11.9


@pytest.mark.parametrize("size", [128, 256])
def test_vgg_discriminator_equals_basicsr(size):
    from aesop_bench.models.archs.discriminator_arch import VGGStyleDiscriminator

    b = basicsr_archs()
    torch.manual_seed(2)
    ref = b.disc.VGGStyleDiscriminator(num_in_ch=3, num_feat=64, input_size=size)
    _same(VGGStyleDiscriminator(3, 64, size), ref, torch.rand(2, 3, size, size))
    with pytest.raises(ValueError, match="patches"):
        VGGStyleDiscriminator(3, 64, size)(torch.rand(1, 3, 64, 64))


def test_unet_discriminator_equals_basicsr():
    from aesop_bench.models.archs.discriminator_arch import UNetDiscriminatorSN

    b = basicsr_archs()
    torch.manual_seed(3)
    ref = b.disc.UNetDiscriminatorSN(num_in_ch=3, num_feat=64, skip_connection=True)
    ours = UNetDiscriminatorSN(3, 64, True)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        ours.eval(), ref.eval()
        assert torch.allclose(ours(x), ref(x), atol=1e-5)


def test_fresh_rrdbnet_and_ae_encoder_start_from_basicsr_default_init_weights():
    """A from-scratch RRDBNet equals BasicSR's under the same seed (its RDBs use default_init_weights: Kaiming
    normal x0.1, zero bias); the AE encoder's convolutions get the same initialisation as in the authors' code."""
    from aesop_bench.models.archs.autoencoder_arch import AutoEncoder

    ref = basicsr_archs().rrdb
    torch.manual_seed(5)
    theirs = ref.RRDBNet(3, 3, scale=4, num_feat=16, num_block=2, num_grow_ch=8).state_dict()
    torch.manual_seed(5)
    ours = RRDBNet(3, 3, scale=4, num_feat=16, num_block=2, num_grow_ch=8).state_dict()
    assert theirs.keys() == ours.keys() and all(torch.equal(theirs[k], ours[k]) for k in ours)
    aes = []
    for seed in range(6):  # the first convolutions are small (108 and 144 weights): pool a few draws
        torch.manual_seed(seed)
        aes.append(AutoEncoder(num_block=1))
    for part, idx in (("conv_first", 0), ("conv_first", 1), ("conv_last", 0), ("conv_last", 1)):
        convs = [getattr(ae, part)[idx] for ae in aes]
        w = torch.cat([c.weight.flatten() for c in convs])
        fan_in = convs[0].in_channels * 9
        assert w.std().item() == pytest.approx(0.1 * (2 / fan_in) ** 0.5, rel=0.1), (part, idx)
        assert all(torch.count_nonzero(c.bias) == 0 for c in convs)
    assert torch.count_nonzero(aes[0].body[0].rdb1.conv1.bias) == 0  # PyTorch's default: biases up to 0.18
