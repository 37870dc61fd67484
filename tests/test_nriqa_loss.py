"""The NR-IQA loss term: its value and its gradient equal pyiqa's own modules' (as_loss) with the same random
weights, registered through the weights manager; gradients reach the SR and never the metric; eval mode whatever
train() says; MUSIQ's multi-scale preprocessing passes a numerical gradient check; refusals."""

from __future__ import annotations

import pyiqa  # a test dependency: its absence fails
import pytest
import torch

from aesop_bench.data.transforms import mod_crop
from aesop_bench.errors import ConfigError, InputError
from aesop_bench.imageio import read_image
from aesop_bench.metrics.registry import Kind, get_spec
from aesop_bench.train.nriqa import DIFFERENTIABLE, NRIQALoss

WEIGHTS = {"musiq": "musiq_koniq", "clipiqa": "clip_rn50", "topiq_nr": "topiq_nr_koniq"}


@pytest.fixture(scope="module")
def standin_store(tmp_path_factory):
    """Deterministic random MUSIQ and (small) CLIP weights, in a weights store of their own, fetched into it by
    the weights manager from a manifest naming them under the real entries' names."""
    import clip.model
    from pyiqa.archs.musiq_arch import MUSIQ

    from aesop_bench import weights as wm
    from benchmarks.standins import write_manifest

    folder = tmp_path_factory.mktemp("nriqa-weights")
    torch.manual_seed(0)
    musiq = folder / "musiq-standin.pth"
    torch.save(MUSIQ(pretrained=False).state_dict(), musiq)
    torch.manual_seed(1)
    small_clip = clip.model.CLIP(embed_dim=64, image_resolution=224, vision_layers=(1, 1, 1, 1), vision_width=16,
                                 vision_patch_size=None, context_length=77, vocab_size=49408, transformer_width=64,
                                 transformer_heads=2, transformer_layers=1)
    clip_file = folder / "clip-standin.pth"
    torch.save(small_clip.state_dict(), clip_file)
    from benchmarks.standins import write_standins

    topiq = write_standins(folder, which=("topiq_nr_koniq",))["topiq_nr_koniq"]
    manifest = write_manifest({"musiq_koniq": musiq, "clip_rn50": clip_file, "topiq_nr_koniq": topiq},
                              folder / "manifest.json")
    env = {"AESOP_BENCH_WEIGHTS": str(folder / "store"), "AESOP_BENCH_WEIGHTS_MANIFEST": str(manifest),
           "AESOP_BENCH_HOME": str(folder / "home")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        paths = {n: wm.download(n, log=None) for n in WEIGHTS.values()}
    return env, paths


@pytest.fixture
def use_standins(standin_store, monkeypatch):
    env, paths = standin_store
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return paths


@pytest.fixture
def pyiqa_metric(use_standins, monkeypatch):
    """pyiqa's own metric object with the stand-in weights (``as_loss``: its autograd path)."""
    from pyiqa.archs import clipiqa_arch
    from pyiqa.archs.clip_model import build_model

    def make(name: str, as_loss: bool):
        path = use_standins[WEIGHTS[name]]
        if name == "clipiqa":
            sd = torch.load(path, weights_only=True)
            monkeypatch.setattr(clipiqa_arch, "load", lambda *a, **k: build_model(sd).float())
            return pyiqa.create_metric("clipiqa", device="cpu", as_loss=as_loss)
        if name == "topiq_nr":
            from benchmarks.standins import no_imagenet

            with no_imagenet():
                return pyiqa.create_metric(name, device="cpu", as_loss=as_loss, pretrained_model_path=str(path))
        return pyiqa.create_metric(name, device="cpu", as_loss=as_loss, pretrained_model_path=str(path))
    return make


def _patches(bench_root) -> torch.Tensor:
    """Two 96x128 patches of Set5 images, in [0, 1] (SR-like inputs)."""
    out = []
    for name in ("baby", "bird"):
        x = mod_crop(read_image(bench_root / "Set5" / "HR" / f"{name}.png"), 4).float() / 255
        out.append(x[:, 40:136, 30:158])
    return torch.stack(out)


@pytest.mark.parametrize("metric", sorted(DIFFERENTIABLE))
def test_loss_and_gradient_equal_pyiqa(metric, pyiqa_metric, bench_root):
    x = _patches(bench_root)
    weight = 0.3
    loss = NRIQALoss(metric, weight, "cpu")
    # the value: -weight x the batch mean of pyiqa's per-image scores (pyiqa computes them without autograd)
    ref_scores = pyiqa_metric(metric, as_loss=False)(x).flatten()
    ours_x = x.clone().requires_grad_(True)
    value = loss(ours_x)
    assert value.item() == pytest.approx(-weight * ref_scores.mean().item(), abs=1e-6)
    assert torch.allclose(loss.score(x), ref_scores, rtol=0, atol=1e-5)
    # the gradient: pyiqa's own as_loss path (the metric's mean score), times -weight
    ref_x = x.clone().requires_grad_(True)
    (-weight * pyiqa_metric(metric, as_loss=True)(ref_x)).backward()
    value.backward()
    scale = ref_x.grad.abs().max().item()
    # measured (CPU, float32, 2 threads): max |ours - pyiqa| / max |pyiqa| 0 for clipiqa, 1.0e-6 for musiq (our
    # MUSIQ computes its patch embedding on one thread, pyiqa's on all); values differ by 0 and 3.6e-8
    assert scale > 0 and (ours_x.grad - ref_x.grad).abs().max().item() <= 1e-5 * scale


@pytest.mark.parametrize("metric", sorted(DIFFERENTIABLE))
def test_gradient_reaches_the_sr_and_not_the_metric(metric, use_standins):
    loss = NRIQALoss(metric, 1.0, "cpu")
    # sides multiple of 32: CLIP's RN50 pools by 32 and never sees the last (side mod 32) rows and columns
    sr = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0), requires_grad=True)
    loss(sr).backward()
    g = sr.grad
    assert torch.isfinite(g).all() and torch.count_nonzero(g) > 0.99 * g.numel()
    # pyiqa's CLIP-IQA holds its CLIP model in a plain list, outside parameters(): looked up by hand here
    held = list(loss.net.net.clip_model[0].parameters()) if metric == "clipiqa" else list(loss.parameters())
    assert len(held) > 10
    assert all(not p.requires_grad and p.grad is None for p in held)
    assert {id(p) for p in held} <= {id(p) for p in loss.metric_parameters()}


def test_stays_in_eval_mode_after_train(use_standins):
    clip = NRIQALoss("clipiqa", 1.0, "cpu")
    clip.net.net.clip_model[0].train()  # as if something had reached it
    clip.train()
    assert not any(m.training for m in clip.net.net.clip_model[0].modules())  # BatchNorm in CLIP's RN50
    loss = NRIQALoss("musiq", 1.0, "cpu")
    sr = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = loss(sr)
        assert loss.train() is loss and loss.training
        assert not any(m.training for m in loss.net.modules())
        after = loss(sr)  # pyiqa's MUSIQ in train mode skips its preprocessing and fails on an image
    assert torch.equal(before, after)
    loss.train(False)
    assert not loss.training and not any(m.training for m in loss.net.modules())


def test_sign_follows_the_registry(use_standins):
    loss = NRIQALoss("clipiqa", 2.0, "cpu")
    assert loss.lower_better is get_spec("clipiqa").lower_better is False
    sr = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        s = loss.score(sr).mean().item()
        assert loss(sr).item() == pytest.approx(-2.0 * s, abs=1e-7)
        loss.lower_better = True  # a lower-is-better metric's term is +weight x score
        assert loss(sr).item() == pytest.approx(2.0 * s, abs=1e-7)


def test_differentiable_set_is_no_reference_metrics_of_the_registry():
    assert {"musiq", "clipiqa"} <= set(DIFFERENTIABLE)
    assert all(get_spec(n).kind is Kind.NO_REFERENCE for n in DIFFERENTIABLE)


def test_musiq_multiscale_preprocessing_passes_gradcheck():
    """pyiqa's get_multiscale_patches (bicubic resizes, SAME padding, unfold) in float64 on a small image and small
    scales: its autograd gradient equals the numerical one, so nothing in it detaches or rounds the pixels."""
    from pyiqa.data.multiscale_trans_util import get_multiscale_patches

    x = torch.rand(1, 3, 10, 14, dtype=torch.float64, generator=torch.Generator().manual_seed(3), requires_grad=True)

    def pixels(img):  # the patch values; the last three channels are positions, scale ids and masks
        return get_multiscale_patches(img, patch_size=4, patch_stride=4, hse_grid_size=3,
                                      longer_side_lengths=[8, 12])[..., :-3]
    assert torch.autograd.gradcheck(pixels, (x,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["niqe", "brisque", "pi", "psnr", "lpips", "nosuch"])
def test_non_differentiable_metrics_are_refused(name):
    with pytest.raises(ConfigError,
                       match=rf"nriqa metric '{name}' cannot be a loss.*choose one of musiq, clipiqa, topiq_nr"):
        NRIQALoss(name, 1.0, "cpu")


def test_maniqa_is_refused_with_its_reason():
    with pytest.raises(ConfigError, match=r"'maniqa' is refused as a loss: MANIQA scores 20 uniform 224x224 crops"):
        NRIQALoss("maniqa", 1.0, "cpu")


def test_bad_weight_and_input(use_standins):
    with pytest.raises(ConfigError, match="nriqa weight must be a number"):
        NRIQALoss("musiq", "heavy", "cpu")
    with pytest.raises(ConfigError, match="nriqa weight must be finite"):
        NRIQALoss("musiq", float("nan"), "cpu")
    loss = NRIQALoss("musiq", 1.0, "cpu")
    with pytest.raises(InputError, match=r"float \(N, 3, H, W\) RGB batch"):
        loss(torch.rand(1, 1, 32, 32))
    with pytest.raises(InputError, match=r"float \(N, 3, H, W\) RGB batch"):
        loss(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
