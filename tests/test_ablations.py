"""The paper's ablations (Table 3: Configs (a), (b); Table 5: (a) the SRResNet-based AE, (b) LDL with a low-pass
filter): their parts against independent references, and their smoke configs trained a few steps on the tests'
images, the AE runs feeding the AESOP runs as the paper-scale configs chain them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from aesop_bench.data.imresize import imresize
from aesop_bench.errors import AesopBenchError
from aesop_bench.models.archs.autoencoder_arch import AutoEncoder, _quarter_matrix
from aesop_bench.models.archs.srresnet_arch import MSRResNet
from aesop_bench.train import losses as L
from aesop_bench.train.config import load_config
from aesop_bench.train.trainer import Trainer
from tests.references import basicsr_archs
from tests.test_train import train_root, vgg19_standin  # noqa: F401 (fixtures: the training images, VGG19 stand-in)

CONFIGS = Path(__file__).resolve().parents[1] / "aesop_bench" / "configs"
# ablation -> (its AE pretraining config, its SR training config through that AE)
ABLATIONS = {
    "table3_a": ("ae_rrdb_bicubic_enc", "aesop_rrdb_cfg_a"),
    "table3_b": ("ae_rrdb_no_lr", "aesop_rrdb_cfg_b"),
    "table5_a": ("ae_srresnet", "aesop_rrdb_srresnet_ae"),
}


def _basicsr_msrresnet():
    basicsr_archs()  # the torchvision shim BasicSR's imports need
    from basicsr.archs.srresnet_arch import MSRResNet as Reference

    return Reference


def _trainer(name, out, root, overrides=()):
    return Trainer(load_config(name, list(overrides)), out, root, "cpu", log=lambda m: None)


def _yaml(name):
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())


def test_paper_configs_change_only_what_the_ablation_changes():
    """Each ablation's paper-scale config is its base config (ae_rrdb, aesop_rrdb, ldl_rrdb) with one change, and
    each SR ablation reads the AE its pretraining config writes (runs/train/NAME, the default run folder)."""
    def diff(a, b):
        return {k for k in set(a) | set(b) if a.get(k) != b.get(k)}

    ae, aesop, ldl = _yaml("ae_rrdb"), _yaml("aesop_rrdb"), _yaml("ldl_rrdb")
    assert diff(ae, _yaml("ae_rrdb_no_lr")) == {"name", "losses"}
    assert _yaml("ae_rrdb_no_lr")["losses"] == [{"type": "ae_recon", "weight": 1.0}]
    assert diff(ae, _yaml("ae_rrdb_bicubic_enc")) == {"name", "losses", "generator"}
    bicubic = _yaml("ae_rrdb_bicubic_enc")["generator"]
    assert bicubic == {"arch": "ae", "opts": {"encoder": "bicubic"}, "init": "rrdb_psnr"}
    assert diff(ae, _yaml("ae_srresnet")) == {"name", "generator"}
    assert _yaml("ae_srresnet")["generator"]["opts"] == {"decoder": "srresnet"}
    for ae_name, sr_name in ABLATIONS.values():
        sr = _yaml(sr_name)
        assert diff(aesop, sr) == {"name", "ae"} and sr["ae"] == f"runs/train/{ae_name}/ae_ema.safetensors"
        assert load_config(sr_name).steps == 300000 and load_config(ae_name).steps == 100000
    lpf = _yaml("ldl_rrdb_lpf")
    assert diff(ldl, lpf) == {"name", "losses"}
    assert lpf["losses"][0] == {"type": "l1_lpf", "weight": 0.01} and lpf["losses"][1:] == ldl["losses"][1:]
    # the smoke variants: the same changes on the smoke configs
    assert diff(_yaml("smoke_ldl"), _yaml("smoke_ldl_lpf")) == {"name", "losses"}
    for ae_name, sr_name in ABLATIONS.values():
        smoke_sr = _yaml(f"smoke_{sr_name.replace('aesop_rrdb', 'aesop')}")
        assert diff(_yaml("smoke_aesop"), smoke_sr) == {"name", "ae"}
        assert smoke_sr["ae"] == f"runs/train/smoke_{ae_name.replace('ae_rrdb_', 'ae_')}/ae_ema.safetensors"


def test_bicubic_encoder_is_matlab_imresize(bench_root):
    """The bicubic encoder's bottleneck is MATLAB's imresize(x, 1/4, 'bicubic'): its resampling matrices, rounded to
    8 bits after each pass as MATLAB's uint8 path does, give the MATLAB-made Set5 LR files bit for bit; on the
    double path it equals the project's imresize, and away from the two outer LR pixels PyTorch's own antialiased
    bicubic (the authors' encoder, another implementation of the same kernel)."""
    from aesop_bench.data.transforms import mod_crop
    from aesop_bench.imageio import read_image

    for name in ("baby", "bird", "butterfly"):
        hr = mod_crop(read_image(bench_root / "Set5" / "HR" / f"{name}.png"), 4).double()
        ref = read_image(bench_root / "Set5" / "LR_bicubic" / "X4" / f"{name}x4.png")
        rows = _quarter_matrix(hr.shape[-2], torch.device("cpu"), torch.float64)
        cols = _quarter_matrix(hr.shape[-1], torch.device("cpu"), torch.float64)
        def u8(t):
            return (t.clamp(0, 255) + 0.5).floor()
        assert torch.equal(u8(u8(rows @ hr) @ cols.t()).to(torch.uint8), ref), name

    ae = AutoEncoder(encoder="bicubic", num_feat=16, num_block=1, num_grow_ch=8).double()
    torch.manual_seed(0)
    x = torch.rand(2, 3, 48, 40, dtype=torch.float64)
    z = ae.encode(x)
    assert torch.allclose(z, imresize(x, 0.25), atol=1e-12, rtol=0)
    torch_aa = F.interpolate(x, scale_factor=0.25, mode="bicubic", align_corners=False, antialias=True)
    assert torch.allclose(z[..., 2:-2, 2:-2], torch_aa[..., 2:-2, 2:-2], atol=1e-12, rtol=0)
    assert (z - torch_aa).abs().max() > 1e-3  # the borders: MATLAB mirrors, PyTorch renormalises
    # differentiable, no parameters: the decoder is the whole AE's parameters
    assert list(ae.encoder_parameters()) == []
    assert all(k.startswith("decoder.") for k in ae.state_dict())
    with torch.inference_mode():  # an evaluation first (a size not seen yet), then a training step: autograd works
        ae.encode(torch.rand(1, 3, 52, 44, dtype=torch.float64))
    xg = torch.rand(1, 3, 52, 44, dtype=torch.float64, requires_grad=True)
    ae.encode(xg).sum().backward()
    assert torch.allclose(xg.grad.sum(), torch.tensor(3 * 13 * 11.0, dtype=torch.float64))  # weights sum to 1


def test_srresnet_decoder_is_basicsr_msrresnet():
    """The SRResNet decoder is BasicSR's MSRResNet: its keys, parameter count (1,517,571 at 64 features, 16
    blocks), initial weights under one seed, and outputs with the same weights; the AE's decoder option builds
    it with the paper's encoder unchanged."""
    Reference = _basicsr_msrresnet()
    torch.manual_seed(3)
    ours = MSRResNet()
    torch.manual_seed(3)
    ref = Reference(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=4)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters()) == 1_517_571
    mine, theirs = ours.state_dict(), ref.state_dict()
    assert list(mine) == list(theirs) and all(torch.equal(mine[k], theirs[k]) for k in mine)
    small, small_ref = MSRResNet(num_feat=16, num_block=2), Reference(num_feat=16, num_block=2)
    small_ref.load_state_dict(small.state_dict(), strict=True)
    x = torch.rand(2, 3, 12, 10)
    with torch.no_grad():
        assert torch.allclose(small(x), small_ref(x), atol=1e-6, rtol=0)

    ae = AutoEncoder(decoder="srresnet")
    assert isinstance(ae.decoder, MSRResNet) and list(ae.decoder.state_dict()) == list(theirs)
    paper = AutoEncoder(num_block=1)  # the paper's encoder: the same modules and sizes
    assert [(k, v.shape) for k, v in ae.state_dict().items() if not k.startswith("decoder.")] == \
        [(k, v.shape) for k, v in paper.state_dict().items() if not k.startswith("decoder.")]


def test_default_ae_is_unchanged():
    """The paper's AE keeps its keys and initial weights: the authors' module (AutoEncoder_RRDBNet) builds the
    decoder, then the encoder, from BasicSR's blocks, then re-initialises the encoder's convolutions; the same
    steps under one seed give the same tensors under the same names."""
    rrdb = basicsr_archs().rrdb
    from basicsr.archs.arch_util import default_init_weights

    nn = torch.nn
    torch.manual_seed(5)
    ref = nn.Module()
    ref.decoder = rrdb.RRDBNet(3, 3, scale=4, num_feat=16, num_block=1, num_grow_ch=8)
    ref.conv_first = nn.Sequential(nn.Conv2d(3, 1, 3, 1, 1), nn.Conv2d(1, 1, 3, 1, 1))
    ref.body = nn.Sequential(*[rrdb.RRDB(16, 8) for _ in range(2)])
    ref.conv_last = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1), nn.Conv2d(16, 3, 3, 1, 1))
    default_init_weights([ref.conv_first, ref.conv_last], 0.1)
    torch.manual_seed(5)
    ae = AutoEncoder(num_feat=16, num_block=1, num_grow_ch=8)
    mine, theirs = ae.state_dict(), ref.state_dict()
    assert sorted(mine) == sorted(theirs) and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_lowpass_loss_equals_opencv_gaussian_blur():
    """l1_lpf: L1 of SR and HR each blurred by OpenCV's GaussianBlur (21x21, sigma 3, BORDER_REFLECT_101 = reflect
    padding); the kernel is OpenCV's getGaussianKernel; an impulse far from the borders comes out as the kernel."""
    rng = np.random.default_rng(0)
    sr = rng.random((2, 3, 40, 36))
    hr = rng.random((2, 3, 40, 36))

    def blur(a):
        return np.stack([np.stack([cv2.GaussianBlur(ch, (21, 21), 3.0, borderType=cv2.BORDER_REFLECT_101)
                                   for ch in img]) for img in a])

    want = np.abs(blur(sr) - blur(hr)).mean()
    got = L.l1_lowpass(torch.from_numpy(sr), torch.from_numpy(hr))
    assert float(got) == pytest.approx(want, rel=1e-10)
    assert torch.allclose(L.gaussian_lowpass(torch.from_numpy(sr)), torch.from_numpy(blur(sr)), atol=1e-12)
    k = cv2.getGaussianKernel(21, 3.0)[:, 0]
    impulse = torch.zeros(1, 1, 41, 41, dtype=torch.float64)
    impulse[0, 0, 20, 20] = 1
    assert np.allclose(L.gaussian_lowpass(impulse)[0, 0, 10:31, 10:31].numpy(), np.outer(k, k), atol=1e-15)
    # float32 as in training: the same value to float precision, and a gradient for SR only
    s32 = torch.from_numpy(sr).float().requires_grad_(True)
    loss = L.l1_lowpass(s32, torch.from_numpy(hr).float())
    loss.backward()
    assert float(loss.detach()) == pytest.approx(want, rel=1e-5) and s32.grad is not None
    with pytest.raises(ValueError, match="larger than 10 px"):
        L.gaussian_lowpass(torch.zeros(1, 3, 10, 40))


def test_ae_options_are_checked():
    with pytest.raises(AesopBenchError, match=r"encoder = 'conv'; choose one of rrdb, bicubic"):
        load_config("smoke_ae", ["generator.opts.encoder=conv"])
    with pytest.raises(AesopBenchError, match=r"ae takes no option 'encoder_type'.*encoder, decoder"):
        load_config("smoke_ae", ["generator.opts.encoder_type=bicubic"])
    with pytest.raises(AesopBenchError, match="num_block = 0"):
        load_config("smoke_ae_srresnet", ["generator.opts.num_block=0"])
    with pytest.raises(AesopBenchError, match="bicubic encoder .* has no parameters.*remove the ae_lr term"):
        load_config("smoke_ae_bicubic_enc", ["losses=[{type: ae_recon}, {type: ae_lr}]"])
    with pytest.raises(AesopBenchError, match="'ae_lr' is a loss of ae training"):
        load_config("smoke_ldl_lpf", ["losses=[{type: ae_lr}]"])


def test_table3_a_bicubic_encoder_ae_then_aesop(tmp_path, train_root, vgg19_standin):
    """Config-(a): the bicubic-encoder AE trains its decoder alone; its exported EMA AE's bottleneck is MATLAB
    bicubic of the input, and the AESOP smoke run trains through it."""
    from aesop_bench.models.ae import build_ae

    out = tmp_path / "runs" / "train" / "smoke_ae_bicubic_enc"
    tr = _trainer("smoke_ae_bicubic_enc", out, train_root, ["steps=3", "checkpoint_every=3"])
    before = {k: v.clone() for k, v in tr.net_g.state_dict().items()}
    history = tr.fit(progress=False)
    assert all(set(h) >= {"ae_recon", "total_g"} and "ae_lr" not in h for h in history)
    assert any(not torch.equal(before[k], v) for k, v in tr.net_g.state_dict().items())  # the decoder trained
    ae = build_ae(str(out / "ae_ema.safetensors")).double()
    assert ae.encoder_kind == "bicubic" and all(k.startswith("decoder.") for k in ae.state_dict())
    x = torch.rand(1, 3, 48, 36, dtype=torch.float64)
    with torch.no_grad():
        _, z = ae(x, return_bottleneck=True)
    assert torch.allclose(z, imresize(x, 0.25), atol=1e-12, rtol=0)
    # the SR smoke run finds that AE where the config names it (runs/train/NAME, relative to the working folder)
    cfg = load_config("smoke_aesop_cfg_a", ["steps=2", "checkpoint_every=2", "val.every=0"])
    cfg.ae = str(tmp_path / cfg.ae)
    sr = Trainer(cfg, tmp_path / "sr", train_root, "cpu", log=lambda m: None)
    assert sr.nets.aesop_ae.ae.encoder_kind == "bicubic"
    logs = sr.fit(progress=False)
    assert len(logs) == 2 and np.isfinite([h["aesop"] for h in logs]).all()


def test_table3_b_no_lr_ae(tmp_path, train_root):
    """Config-(b): the AE trained without Eq. (4): the objective is ae_recon alone (no LR term computed or logged),
    and its encoder still trains (through the reconstruction)."""
    tr = _trainer("smoke_ae_no_lr", tmp_path / "ae", train_root, ["steps=3", "checkpoint_every=3"])
    assert tr.weights == {"ae_recon": 1.0}
    enc_before = [p.detach().clone() for p in tr.net_g.encoder_parameters()]
    history = tr.fit(progress=False)
    for h in history:
        assert "ae_lr" not in h and h["total_g"] == pytest.approx(h["ae_recon"], rel=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(enc_before, tr.net_g.encoder_parameters()))
    # with the LR term (smoke_ae, the paper's) the same batch's objective is the sum of both terms
    paper = _trainer("smoke_ae", tmp_path / "paper", train_root)
    lr, hr = next(paper._batches())
    out = paper.train_step(lr, hr)
    assert float(out["total_g"]) == pytest.approx(float(out["ae_recon"]) + float(out["ae_lr"]), rel=1e-6)


def test_table5_a_srresnet_ae_from_an_msrresnet_checkpoint(tmp_path, train_root, vgg19_standin):
    """Table 5 (a): the SRResNet-based AE's decoder starts from an MSRResNet checkpoint (BasicSR's layout, as its
    released x4 model) and trains; the AESOP smoke run trains through the exported AE."""
    from aesop_bench.models.ae import build_ae

    Reference = _basicsr_msrresnet()
    torch.manual_seed(7)
    init = Reference(num_feat=16, num_block=2)
    ckpt = tmp_path / "msrresnet_small.pth"
    torch.save({"params": init.state_dict()}, ckpt)
    out = tmp_path / "ae"
    tr = _trainer("smoke_ae_srresnet", out, train_root, ["steps=2", "checkpoint_every=2", f"generator.init={ckpt}"])
    assert all(torch.equal(v, init.state_dict()[k]) for k, v in tr.net_g.decoder.state_dict().items())
    tr.fit(progress=False)
    assert any(not torch.equal(v, init.state_dict()[k]) for k, v in tr.net_g.decoder.state_dict().items())
    ae = build_ae(str(out / "ae_ema.safetensors"))
    assert ae.decoder_kind == "srresnet" and isinstance(ae.decoder, MSRResNet)
    # the exported decoder is an MSRResNet BasicSR loads strictly
    Reference(num_feat=16, num_block=2).load_state_dict(
        {k[len("decoder."):]: v for k, v in ae.state_dict().items() if k.startswith("decoder.")}, strict=True)
    # an RRDB checkpoint given as the SRResNet decoder's init is refused, naming the mismatch
    rrdb = tmp_path / "rrdb.pth"
    torch.save({"params": basicsr_archs().rrdb.RRDBNet(3, 3, num_feat=16, num_block=1, num_grow_ch=8).state_dict()},
               rrdb)
    with pytest.raises(AesopBenchError, match="missing keys: .*upconv1.*generator.init must be a srresnet"):
        _trainer("smoke_ae_srresnet", tmp_path / "bad", train_root, [f"generator.init={rrdb}"])
    cfg = load_config("smoke_aesop_srresnet_ae", ["steps=2", "checkpoint_every=2", "val.every=0"])
    cfg.ae = str(out / "ae_ema.safetensors")
    logs = Trainer(cfg, tmp_path / "sr", train_root, "cpu", log=lambda m: None).fit(progress=False)
    assert len(logs) == 2 and np.isfinite([h["aesop"] for h in logs]).all()


def test_table5_b_ldl_with_a_lowpass_filter(tmp_path, train_root, vgg19_standin):
    """Table 5 (b): the LDL smoke run with l1_lpf; the logged term of a step equals the L1 of OpenCV-blurred SR and
    HR of that step's batch."""
    tr = _trainer("smoke_ldl_lpf", tmp_path / "ldl", train_root, ["steps=2", "val.every=0"])
    lr, hr = next(tr._batches())
    with torch.no_grad():
        sr = tr.net_g(lr).double().numpy()

    def blur(a):
        return np.stack([np.stack([cv2.GaussianBlur(ch, (21, 21), 3.0, borderType=cv2.BORDER_REFLECT_101)
                                   for ch in img]) for img in a])

    want = np.abs(blur(sr) - blur(hr.double().numpy())).mean()
    logs = tr.train_step(lr, hr)
    assert "l1" not in logs and float(logs["l1_lpf"]) == pytest.approx(want, rel=1e-5)
    assert float(logs["total_g"]) == pytest.approx(
        0.01 * float(logs["l1_lpf"]) + float(logs["ldl"]) + float(logs["perceptual"]) + 0.005 * float(logs["gan"]),
        rel=1e-5)
