"""Losses against direct computations on small tensors; the AESOP gradient; the frozen AE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aesop_bench.models.archs.autoencoder_arch import AutoEncoder
from aesop_bench.train import losses as L


def test_aesop_gradient_equals_autograd_and_ae_stays_frozen():
    torch.manual_seed(0)
    ae = AutoEncoder(num_block=1)
    before = {k: v.clone() for k, v in ae.state_dict().items()}
    loss_mod = L.FrozenAE(ae).train()
    assert not ae.training and not any(p.requires_grad for p in ae.parameters())
    sr = torch.rand(2, 3, 16, 16, requires_grad=True)
    hr = torch.rand(2, 3, 16, 16)
    loss = loss_mod(sr, hr)
    loss.backward()
    # the reference: BasicSR's L1Loss between AE(SR), with autograd, and a constant AE(HR)
    from tests.references import basicsr_archs

    basicsr_archs()
    from basicsr.losses.basic_loss import L1Loss

    sr2 = sr.detach().clone().requires_grad_(True)
    ref = L1Loss(loss_weight=1.0)(ae(sr2), ae(hr).detach())
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    assert torch.allclose(sr.grad, sr2.grad, atol=1e-7)
    opt = torch.optim.Adam([sr], lr=0.1)
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in ae.state_dict().items())
    assert all(p.grad is None for p in ae.parameters())


def test_relativistic_gan_against_the_formula():
    real = torch.tensor([[1.0], [2.0]])
    fake = torch.tensor([[-1.0], [0.5]])
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    mr, mf = real.mean().item(), fake.mean().item()
    g = (-(sum(math.log(1 - sig(r - mf)) for r in [1.0, 2.0]) / 2)
         - (sum(math.log(sig(f - mr)) for f in [-1.0, 0.5]) / 2)) / 2
    assert L.gan_generator(real, fake).item() == pytest.approx(g, rel=1e-6)
    d_real = -(sum(math.log(sig(r - mf)) for r in [1.0, 2.0]) / 2) * 0.5
    d_fake = -(sum(math.log(1 - sig(f - mr)) for f in [-1.0, 0.5]) / 2) * 0.5
    assert L.gan_discriminator_real(real, fake).item() == pytest.approx(d_real, rel=1e-6)
    assert L.gan_discriminator_fake(fake, real).item() == pytest.approx(d_fake, rel=1e-6)


def test_ldl_artifact_map_against_numpy():
    torch.manual_seed(1)
    hr, sr, ema = torch.rand(3, 1, 3, 9, 11).unbind(0)
    w = L.artifact_map(hr, sr, ema)[0, 0].numpy()
    h, s, e = (t[0].numpy() for t in (hr, sr, ema))
    r = np.abs(h - s).sum(0)
    r_ema = np.abs(h - e).sum(0)
    patch = np.var(r, ddof=1) ** 0.2
    rp = np.pad(r, 3, mode="reflect")
    local = np.array([[np.var(rp[i:i + 7, j:j + 7], ddof=1) for j in range(11)] for i in range(9)])
    want = patch * local
    want[r < r_ema] = 0
    assert np.allclose(w, want, atol=1e-6)
    loss = L.ldl(hr, sr, ema).item()
    assert loss == pytest.approx(np.abs(want * s - want * h).mean(), rel=1e-5)


def test_perceptual_equals_basicsr(monkeypatch):
    # BasicSR's PerceptualLoss as ESRGAN and LDL configure it (VGG19 conv1_2..conv5_4 pre-ReLU weighted 0.1, 0.1,
    # 1, 1, 1; ImageNet normalisation; L1), given the same VGG19 weights
    import torchvision

    from tests.references import basicsr_archs

    basicsr_archs()
    from basicsr.archs import vgg_arch
    from basicsr.losses.basic_loss import PerceptualLoss

    torch.manual_seed(2)
    sd = torchvision.models.vgg19(weights=None).state_dict()

    def vgg19(pretrained=False, **kw):
        net = torchvision.models.vgg19(weights=None)
        net.load_state_dict(sd)
        return net

    monkeypatch.setattr(vgg_arch, "VGG_PRETRAIN_PATH", "/nonexistent")
    monkeypatch.setattr(vgg_arch.vgg, "vgg19", vgg19)
    ref = PerceptualLoss({"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1, "conv4_4": 1, "conv5_4": 1},
                         vgg_type="vgg19", use_input_norm=True, range_norm=False, perceptual_weight=1.0,
                         style_weight=0.0, criterion="l1")
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    want, _ = ref(x, y)
    assert L.perceptual(L.VGGFeatures(sd), x, y).item() == pytest.approx(want.item(), rel=1e-6)


def test_vgg_features_load_from_full_or_feature_only_files_and_refuse_others():
    import torchvision

    from aesop_bench.errors import AesopBenchError

    torch.manual_seed(3)
    sd = torchvision.models.vgg19(weights=None).state_dict()
    full, only = L.VGGFeatures(sd), L.VGGFeatures({k: v for k, v in sd.items() if k.startswith("features.")})
    x = torch.rand(1, 3, 32, 32)
    assert all(torch.equal(full(x)[k], only(x)[k]) for k in L.VGG19_LAYERS)
    with pytest.raises(AesopBenchError, match="missing keys: 34.bias"):
        L.VGGFeatures({k: v for k, v in sd.items() if k != "features.34.bias"})
    with pytest.raises(AesopBenchError, match="unexpected keys: params"):
        L.VGGFeatures({"params": sd["features.0.weight"], **sd})


def test_objective_weights_the_terms_it_is_given_by_hand():
    """objective() on constant images with stand-in networks whose losses are closed forms: SR = 0.25, HR = 0;
    an AE that doubles its input; a discriminator that averages its input (real 0, fake 0.25)."""
    from aesop_bench.errors import AesopBenchError
    from aesop_bench.train.losses import FrozenAE
    from aesop_bench.train.objective import Networks, StepInputs, objective

    class Scale(torch.nn.Module):
        def __init__(self, k):
            super().__init__()
            self.k = k

        def forward(self, x):
            return self.k * x

    hr = torch.zeros(2, 3, 8, 8)
    x = StepInputs(lr=torch.zeros(2, 3, 2, 2), hr=hr, out=torch.full_like(hr, 0.25), micro=2)
    nets = Networks(aesop_ae=FrozenAE(Scale(2.0)), discriminator=lambda t: t.flatten(1).mean(1, keepdim=True))
    total, parts = objective(x, nets, {"l1": 0.01, "aesop": 1.0, "gan": 0.005})
    # the relativistic generator loss: (BCE(0 - 0.25, 0) + BCE(0.25 - 0, 1)) / 2 = log(1 + e^-0.25)
    gan = math.log1p(math.exp(-0.25))
    assert list(parts) == ["l1", "aesop", "gan"]
    assert [float(v) for v in parts.values()] == pytest.approx([0.25, 0.5, gan], abs=1e-7)
    assert float(total) == pytest.approx(0.01 * 0.25 + 0.5 + 0.005 * gan, abs=1e-7)
    with pytest.raises(AesopBenchError, match="need vgg19, which were not built"):
        objective(x, nets, {"perceptual": 1.0})
