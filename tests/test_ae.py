"""The AESOP auto-encoder: sizes, the authors' checkpoint layout, strict loading, AE-PSNR in the evaluator."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from aesop_bench.errors import AesopBenchError
from aesop_bench.metrics import ae as ae_mod
from aesop_bench.models.archs.autoencoder_arch import AutoEncoder, official_ae_state_dict
from aesop_bench.models.archs.rrdbnet_arch import RRDBNet
from aesop_bench.models.loading import load_strict


def _n(m):
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts():
    assert _n(RRDBNet()) == 16_697_987  # the published 16.70M
    ae = AutoEncoder()
    assert round(_n(ae) / 1e6, 2) == 18.18
    assert round(sum(p.numel() for p in ae.encoder_parameters()) / 1e6, 2) == 1.48


def test_bottleneck_is_lr_sized():
    ae = AutoEncoder(num_block=1)
    out, z = ae(torch.rand(2, 3, 24, 36), return_bottleneck=True)
    assert z.shape == (2, 3, 6, 9) and out.shape == (2, 3, 24, 36)
    with pytest.raises(ValueError, match="divisible by 4"):
        ae(torch.rand(1, 3, 22, 36))


def _official_layout(seed=0) -> dict:
    """The authors' module registers conv_first/down/body/conv_last twice (also as encoder.0-3), so
    their state dict names every encoder tensor twice; values random."""
    torch.manual_seed(seed)
    sd = {k: torch.randn_like(v) for k, v in AutoEncoder().state_dict().items()}
    for k in list(sd):
        for prefix, idx in (("conv_first.", 0), ("body.", 2), ("conv_last.", 3)):
            if k.startswith(prefix):
                sd[f"encoder.{idx}.{k[len(prefix):]}"] = sd[k].clone()
    return sd


def test_official_checkpoint_layout_loads():
    sd = _official_layout()
    assert "encoder.2.1.rdb3.conv5.weight" in sd and "decoder.body.22.rdb3.conv5.weight" in sd
    ae = AutoEncoder()
    load_strict(ae, official_ae_state_dict(sd), "ckpt")
    assert torch.equal(ae.body[1].rdb3.conv5.weight, sd["encoder.2.1.rdb3.conv5.weight"])
    bad = dict(sd)
    bad["encoder.3.1.bias"] = bad["encoder.3.1.bias"] + 1
    with pytest.raises(ValueError, match="differs"):
        official_ae_state_dict(bad)


def test_strict_loading_lists_missing_and_unexpected_keys():
    sd = official_ae_state_dict(_official_layout())
    sd.pop("decoder.conv_hr.weight")
    sd["decoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(AesopBenchError, match=r"missing keys: decoder\.conv_hr\.weight.*unexpected keys: "
                                              r"decoder\.extra\.weight"):
        load_strict(AutoEncoder(), sd, "ckpt.pth")


def test_ae_psnr_in_the_evaluator(tmp_path, monkeypatch):
    from aesop_bench.protocols import get_protocol
    from aesop_bench.evaluation.config import EvalConfig, as_source
    from aesop_bench.evaluation.runner import run_evaluation as evaluate
    from aesop_bench.imageio import quantize, read_image
    from aesop_bench.data.imresize import imresize
    from aesop_bench.metrics.fidelity import psnr

    ckpt = tmp_path / "AE_test.pth"
    sd = _official_layout(1)
    # small weights keep activations finite through 23+2 RRDB blocks; not so small that the output stops depending
    # on the input (at x0.01 AE(SR) and AE(HR) differ by 3e-8: a PSNR of float32 rounding, which moves with the
    # order of each convolution's sums)
    for k, v in sd.items():
        sd[k] = v * 0.03
    torch.save({"params_ema": sd}, ckpt)
    folder = tmp_path / "tiny"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(folder / "a.png")
    monkeypatch.setenv("AESOP_BENCH_THREADS", "1")  # both sides on one thread (see the end of the test)
    cfg = EvalConfig(source=as_source("bicubic"), sets=[str(folder)], metrics=["ae_psnr"], protocol=get_protocol("paper"),
                     data_root=tmp_path, out_dir=tmp_path / "run", progress=False, download=False,
                     log=lambda m: None, metric_options={"ae_psnr": {"ae": str(ckpt)}})
    got = evaluate(cfg)["sets"][str(folder)]["metrics"]["ae_psnr"]
    ae = AutoEncoder()
    ae.load_state_dict(official_ae_state_dict(sd))
    ae.eval()
    hr = read_image(folder / "a.png")[None][..., :48, :36]  # the paper's protocol: HR cropped to a multiple of 12
    # the paper protocol's LR: MATLAB bicubic on the double path, rounded once (MATLAB's uint8 path, imresize of
    # the uint8 HR, rounds after each pass and differs); the bicubic model upsamples it on MATLAB's uint8 path
    lr = torch.floor(imresize(hr.double() / 255, 0.25).clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    sr = imresize(lr, 4.0)
    # the authors' calculate_aepsnr_pytorch: AE of the 8-bit SR and of the HR, compared unquantised with
    # BasicSR's PyTorch PSNR (crop 4, Y channel, 1e-8 in the MSE): the reference is BasicSR's own function
    from tests.references import basicsr_archs

    basicsr_archs()  # the torchvision shim BasicSR's imports need
    from basicsr.metrics.psnr_ssim import calculate_psnr_pt

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            a, b = ae(sr.float() / 255).double(), ae(hr.float() / 255).double()
    finally:
        torch.set_num_threads(threads)
    want = calculate_psnr_pt(a, b, crop_border=4, test_y_channel=True).item()
    # one thread on both sides: on this image's 12 x 9 bottleneck the AE's convolutions change their last bits with
    # the thread count (RRDB's measure the same from about 16 x 16 pixels on), and these random weights amplify
    # them (0.006 dB between 1 and 2 threads); on one thread the two paths differ by 1.1e-5 dB (measured)
    assert got == pytest.approx(want, abs=1e-4)
    quantised = psnr(quantize(a), quantize(b), 4).item()  # the earlier definition: a different number
    assert abs(quantised - want) > 1e-3
    row = next(csv.DictReader(open(tmp_path / "run" / "per_image.csv")))
    assert row["version"].startswith("ae-psnr-y-float-v3+ae=AE_test.pth:")
    # under matlab (8-bit Y rounded) the AE outputs' Y stays unrounded, as in the authors' code: BasicSR's
    # function without the 1e-8, on the same images
    from aesop_bench.metrics.metric import Metric

    m = Metric("ae_psnr", "matlab", ae=str(ckpt))
    assert m.version.endswith("+yfloat")
    no_eps = 10 * torch.log10(1 / ((rgb_y(a) - rgb_y(b))[..., 4:-4, 4:-4] ** 2).mean()).item()
    torch.set_num_threads(1)
    try:
        assert float(m.score(sr, hr, None)[0]) == pytest.approx(no_eps, abs=1e-4)  # as above
    finally:
        torch.set_num_threads(threads)


def rgb_y(x):
    """BT.601 Y of an (N, 3, H, W) float image in [0, 1], on the [0, 1] scale, unrounded (BasicSR's rgb2ycbcr_pt)."""
    w = torch.tensor([65.481, 128.553, 24.966], dtype=x.dtype).view(1, 3, 1, 1)
    return ((x * w).sum(1, keepdim=True) + 16.0) / 255.0


def test_missing_released_ae_is_a_clear_error(monkeypatch):
    with pytest.raises(AesopBenchError, match="aesop-bench weights add aesop_ae"):
        ae_mod.build_ae("aesop_ae")


def test_the_hr_side_is_computed_once_and_the_values_do_not_move(tmp_path):
    from aesop_bench.metrics.ae import ae_hr_side, ae_psnr, ae_psnr_from_hr_side
    from aesop_bench.metrics.hrcache import HRCache

    torch.manual_seed(0)
    ae = AutoEncoder(num_feat=16, num_block=1, num_grow_ch=4, enc_blocks=1).eval()
    calls = []
    ae.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    hr = torch.randint(0, 256, (1, 3, 48, 48), dtype=torch.uint8)
    srs = [torch.randint(0, 256, (1, 3, 48, 48), dtype=torch.uint8) for _ in range(3)]
    plain = [ae_psnr(sr, hr, ae, 4, False, 1e-8) for sr in srs]
    calls.clear()
    cache = HRCache("ae_psnr-test", "cpu")
    score = cache.around(lambda x: ae_hr_side(ae, x),
                         lambda x, ae_hr: ae_psnr_from_hr_side(x, ae_hr, ae, 4, False, 1e-8))
    cached = [score(sr, hr) for sr in srs]
    assert len(calls) == 3 + 1  # three SR images, and the HR once: later models read AE(HR) from the disk
    assert all(torch.equal(a, b) for a, b in zip(plain, cached))  # bit-identical
    assert len(list(cache.folder.rglob("*.pt"))) == 1


def test_a_batch_keeps_ae_hr_image_by_image(tmp_path):
    from aesop_bench.metrics.ae import ae_hr_side, ae_psnr, ae_psnr_from_hr_side
    from aesop_bench.metrics.hrcache import HRCache

    torch.manual_seed(0)
    ae = AutoEncoder(num_feat=16, num_block=1, num_grow_ch=4, enc_blocks=1).eval()
    calls = []
    ae.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    hr = torch.randint(0, 256, (3, 3, 48, 48), dtype=torch.uint8)
    sr = torch.randint(0, 256, (3, 3, 48, 48), dtype=torch.uint8)
    singles = torch.cat([ae_psnr(sr[i:i + 1], hr[i:i + 1], ae, 4, False, 1e-8) for i in range(3)])
    cache = HRCache("ae_psnr-test", "cpu")
    calls.clear()
    score = cache.around(lambda x: ae_hr_side(ae, x),
                         lambda x, ae_hr: ae_psnr_from_hr_side(x, ae_hr, ae, 4, False, 1e-8))
    batched = score(sr[:2], hr[:2])
    assert calls == [2, 2] and len(list(cache.folder.rglob("*.pt"))) == 2
    calls.clear()
    again = score(sr, hr)
    assert calls == [1, 3]  # AE(HR) of the one image not kept, then the SR batch
    # float32 convolutions of a batch round differently from one image's (here 3e-7 dB)
    assert torch.allclose(batched, singles[:2], atol=1e-5, rtol=0) and torch.allclose(again, singles, atol=1e-5)
    assert torch.equal(again[:2], batched)
