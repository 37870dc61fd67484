"""Every metric value is the same, to the last bit, whatever torch's CPU thread count.

The harness takes its thread count from the cores other processes leave free (``aesop_bench.threads``), so a
run resumed on a busier machine must store what an uninterrupted run stores. Each value is computed here with
1, 2 and 3 intra-op threads in one process (3 is more threads than a small runner has cores, which is allowed)
and compared exactly. The images are large enough for torch to split a reduction among threads (more than
32768 values), and the networks are seeded random ones (stand-ins: the arithmetic, not the weights, is tested).
"""

from __future__ import annotations

import pytest
import torch

from aesop_bench import weights as wm
from aesop_bench.data.transforms import mod_crop, protocol_lr, to_rgb
from aesop_bench.determinism import fixed_mean
from aesop_bench.imageio import quantize, read_image
from aesop_bench.metrics import ae as ae_mod
from aesop_bench.metrics import perceptual
from aesop_bench.metrics.metric import Metric
from aesop_bench.metrics.niqe import _cov
from aesop_bench.models.archs.autoencoder_arch import AutoEncoder
from aesop_bench.models.bicubic import Bicubic

THREADS = (1, 2, 3)
SPLIT = 32768  # torch reduces more values than this on several threads


@pytest.fixture()
def by_threads():
    """``by_threads(fn)``: ``{n: fn()}`` for each thread count of :data:`THREADS`, as lists of floats; the
    caller's thread count is restored after."""
    before = torch.get_num_threads()

    def run(fn):
        out = {}
        try:
            for n in THREADS:
                torch.set_num_threads(n)
                out[n] = torch.as_tensor(fn()).flatten().tolist()
        finally:
            torch.set_num_threads(before)
        return out
    return run


def assert_same(values: dict, what: str) -> None:
    first = values[THREADS[0]]
    for n, v in values.items():
        assert v == first, f"{what}: {THREADS[0]} thread(s) give {first}, {n} give {v}"


def _mosaic(bench_root) -> torch.Tensor:
    """Four Set14 images, 384x384 each, as one 768x768 image: its LR (192x192) is large enough for LR-PSNR's
    reduction to be split among threads too."""
    tiles = [to_rgb(read_image(bench_root / "Set14" / "HR" / f"{n}.png"))[..., :384, :384]
             for n in ("baboon", "lenna", "monarch", "zebra")]
    return torch.cat([torch.cat(tiles[:2], dim=-1), torch.cat(tiles[2:], dim=-1)], dim=-2)[None]


def _bicubic_pair(hr: torch.Tensor, protocol) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(SR, HR, LR): the protocol's HR and LR, and the 8-bit bicubic x4 of the LR."""
    hr = mod_crop(hr, protocol.effective_modcrop)
    lr = protocol_lr(hr, protocol)
    return quantize(Bicubic(protocol.scale)(lr.float() / 255)), hr, lr


@pytest.fixture(scope="module")
def images(bench_root) -> list[torch.Tensor]:
    """The mosaic and two whole Set14 images (one grayscale, one of odd size)."""
    return [_mosaic(bench_root)] + [to_rgb(read_image(bench_root / "Set14" / "HR" / f"{n}.png"))[None]
                                    for n in ("bridge", "comic")]


def test_fixed_mean_is_the_same_for_every_thread_count_and_every_batch(by_threads):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 700, 600, dtype=torch.float64, generator=g) * 1e3
    xf = x.float()
    assert_same(by_threads(lambda: fixed_mean(x)), "fixed_mean float64")
    assert_same(by_threads(lambda: fixed_mean(xf)), "fixed_mean float32")
    assert fixed_mean(x[1:]).tolist() == fixed_mean(x)[1:].tolist()  # an image's mean does not depend on its batch
    assert torch.allclose(fixed_mean(x), x.flatten(1).mean(1), rtol=1e-14, atol=0)
    assert fixed_mean(xf).dtype == torch.float32 and torch.allclose(fixed_mean(xf), xf.flatten(1).mean(1), rtol=1e-6)


@pytest.mark.parametrize("protocol", ["paper", "basicsr"])
def test_psnr_ssim_lr_psnr(images, by_threads, protocol):
    metrics = {m: Metric(m, protocol) for m in ("psnr", "ssim", "lr_psnr")}
    assert images[0][0, 0].numel() // 16 > SPLIT  # the mosaic's LR too
    for hr in images:
        sr, hr, lr = _bicubic_pair(hr, metrics["psnr"].protocol)
        assert hr[0, 0].numel() > SPLIT
        for name, m in metrics.items():
            assert_same(by_threads(lambda: m(sr, hr, lr if name == "lr_psnr" else None)), f"{protocol} {name}")


def test_psnr_and_ssim_of_an_image_do_not_depend_on_its_batch(images):
    m = {n: Metric(n, "basicsr") for n in ("psnr", "ssim")}
    sr, hr, _ = _bicubic_pair(images[0], m["psnr"].protocol)
    other = torch.flip(sr, dims=[-1])
    for name, metric in m.items():
        assert metric(torch.cat([other, sr]), torch.cat([hr, hr]))[1].item() == metric(sr, hr).item(), name


def test_niqe(images, by_threads, shared_data):
    wm.add("niqe_pristine", shared_data / "weights" / "niqe" / "modelparameters.mat")
    m = Metric("niqe", "paper")
    for hr in images[:2]:
        sr, _, _ = _bicubic_pair(hr, m.protocol)
        assert_same(by_threads(lambda: m(sr)), "niqe")


def test_niqe_covariance_of_many_blocks(by_threads):
    """A large image has hundreds of blocks; torch.cov splits the sum over them among threads from about 800."""
    feats = torch.randn(1200, 36, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert_same(by_threads(lambda: _cov(feats)), "niqe covariance")
    assert torch.allclose(_cov(feats), torch.cov(feats.T), rtol=0, atol=1e-14)


@pytest.fixture(scope="module")
def pair(images) -> tuple[torch.Tensor, torch.Tensor]:
    """The mosaic's bicubic SR and its HR."""
    from aesop_bench.protocols import get_protocol

    sr, hr, _ = _bicubic_pair(images[0], get_protocol("basicsr"))
    return sr, hr


def test_lpips_and_dists(pair, by_threads):
    torch.manual_seed(0)
    lp = perceptual.LPIPSAlex()
    for lin in lp.lins:
        torch.nn.init.uniform_(lin.weight, 0.0, 0.1)  # heads are non-negative, as trained ones are
    ds = perceptual.DISTS()
    sr, hr = pair
    assert_same(by_threads(lambda: perceptual.lpips(sr, hr, lp)), "lpips")
    crop = (..., slice(256, 512), slice(256, 512))  # VGG16 is slow on a CPU
    assert_same(by_threads(lambda: perceptual.dists(sr[crop], hr[crop], ds)), "dists")


def test_ae_psnr(pair, by_threads):
    torch.manual_seed(0)
    ae = AutoEncoder(num_feat=16, num_block=1, num_grow_ch=4, enc_blocks=1).eval().requires_grad_(False)
    sr, hr = pair
    assert_same(by_threads(lambda: ae_mod.ae_psnr(sr, hr, ae, crop_border=4, y_round=False, eps=1e-8)), "ae_psnr")


def test_musiq(pair, by_threads, tmp_path):
    from pyiqa.archs.musiq_arch import MUSIQ

    from aesop_bench.metrics import iqa

    torch.manual_seed(0)
    torch.save(MUSIQ(pretrained=False).state_dict(), tmp_path / "musiq.pth")
    net = iqa.build("musiq", str(tmp_path / "musiq.pth"))
    sr = pair[0][..., :256, :256]
    assert_same(by_threads(lambda: iqa.score("musiq", sr, net=net)), "musiq")
