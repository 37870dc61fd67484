"""MANIQA, MUSIQ, CLIP-IQA: our wrappers equal pyiqa's own metric objects given the same (random) weights;
CLIP-IQA quadrant splitting."""

from __future__ import annotations

import pyiqa  # a test dependency: its absence fails
import pytest
import torch

from aesop_bench.data.transforms import mod_crop
from aesop_bench.imageio import read_image
from aesop_bench.metrics import iqa


@pytest.fixture(autouse=True)
def _offline_timm():
    from aesop_bench.metrics.iqa import no_timm_pretrained

    with no_timm_pretrained():
        yield


def _img(bench_root, name="bird", size=None):
    x = mod_crop(read_image(bench_root / "Set5" / "HR" / f"{name}.png"), 4)[None].float() / 255
    return x[..., : size, : size] if size else x


def test_musiq_equals_pyiqa(tmp_path, bench_root):
    from pyiqa.archs.musiq_arch import MUSIQ

    torch.manual_seed(0)
    path = tmp_path / "musiq.pth"
    torch.save(MUSIQ(pretrained=False).state_dict(), path)
    ours = iqa.build("musiq", str(path))
    ref = pyiqa.create_metric("musiq", device="cpu", pretrained_model_path=str(path))
    x = _img(bench_root)
    assert torch.allclose(iqa.score("musiq", x, net=ours).float(), ref(x).flatten().float().cpu(), atol=1e-5)


@pytest.mark.calibration
def test_maniqa_equals_pyiqa(tmp_path, bench_root):
    from pyiqa.archs.maniqa_arch import MANIQA

    torch.manual_seed(1)
    path = tmp_path / "maniqa.pth"
    torch.save({"params": MANIQA(pretrained=False, train_dataset="koniq", scale=0.8, test_sample=2).state_dict()},
               path)
    ours = iqa.build("maniqa", str(path), test_sample=2)
    ref = pyiqa.create_metric("maniqa", device="cpu", pretrained_model_path=str(path), test_sample=2)
    x = _img(bench_root, size=240)
    assert torch.allclose(iqa.score("maniqa", x, net=ours).float(), ref(x).flatten().float().cpu(), atol=1e-5)


def _random_clip(tmp_path):
    import clip.model

    torch.manual_seed(2)
    net = clip.model.CLIP(embed_dim=1024, image_resolution=224, vision_layers=(3, 4, 6, 3), vision_width=64, vision_patch_size=None,
                          context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8,
                          transformer_layers=12)
    path = tmp_path / "RN50-standin.pt"
    torch.save(net.state_dict(), path)
    return path


@pytest.mark.calibration
def test_clipiqa_equals_pyiqa_and_splits_into_quadrants(tmp_path, bench_root, monkeypatch):
    from pyiqa.archs import clipiqa_arch
    from pyiqa.archs.clip_model import build_model

    path = _random_clip(tmp_path)
    ours = iqa.build("clipiqa", str(path))
    sd = torch.load(path, weights_only=True)
    monkeypatch.setattr(clipiqa_arch, "load", lambda *a, **k: build_model(sd).float())
    ref = pyiqa.create_metric("clipiqa", device="cpu")
    x = _img(bench_root, "baby")
    whole = iqa.score("clipiqa", x, net=ours)
    assert torch.allclose(whole.float(), ref(x).flatten().float().cpu(), atol=1e-5)
    split = iqa.score("clipiqa", x, net=ours, split_above=256 * 256)
    h, w = x.shape[-2:]
    parts = [x[..., : h // 2, : w // 2], x[..., : h // 2, w // 2:], x[..., h // 2:, : w // 2], x[..., h // 2:, w // 2:]]
    separately = torch.stack([iqa.score("clipiqa", p, net=ours)[0] for p in parts]).mean()
    assert split.item() == pytest.approx(separately.item(), abs=1e-7)
    assert iqa.score("clipiqa", x, net=ours, split_above=h * w).item() == pytest.approx(whole.item())
    # the prompts were encoded once for all those images and quadrants, and the scores equal pyiqa's on others
    calls = []
    clip_model = ours.net.clip_model[0]
    real_encode = clip_model.encode_text
    monkeypatch.setattr(clip_model, "encode_text", lambda t: calls.append(1) or real_encode(t))
    fresh = iqa.build("clipiqa", str(path))
    fresh.net.clip_model[0].encode_text = clip_model.encode_text
    y = _img(bench_root, "bird")
    for img in (x, y, x):
        assert torch.allclose(iqa.score("clipiqa", img, net=fresh).float(), ref(img).flatten().float(), atol=1e-5)
    assert len(calls) == 1  # three images, one encoding of the prompts


def test_missing_weights_name_the_add_command(monkeypatch):
    with pytest.raises(Exception, match="aesop-bench weights add musiq_koniq"):
        iqa.score("musiq", torch.zeros(1, 3, 64, 64))


def test_clipiqa_reads_openai_torchscript_files_without_jit_load(tmp_path, bench_root, monkeypatch):
    """OpenAI ships CLIP as traced TorchScript: a small traced CLIP gives the same scores as its plain state
    dict, and torch.jit.load is never called."""
    import clip.model

    torch.manual_seed(3)
    net = clip.model.CLIP(embed_dim=32, image_resolution=64, vision_layers=(1, 1, 1, 1), vision_width=8,
                          vision_patch_size=None, context_length=77, vocab_size=49408, transformer_width=64,
                          transformer_heads=1, transformer_layers=1).eval()
    traced = tmp_path / "clip-traced.pt"
    torch.jit.save(torch.jit.trace(net, (torch.rand(1, 3, 64, 64), torch.zeros(1, 77, dtype=torch.long))), str(traced))
    plain = tmp_path / "clip-plain.pth"
    torch.save(net.state_dict(), plain)
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: pytest.fail("torch.jit.load was called"))
    x = _img(bench_root, "bird", size=128)
    from_script = iqa.score("clipiqa", x, net=iqa.build("clipiqa", str(traced)))
    from_plain = iqa.score("clipiqa", x, net=iqa.build("clipiqa", str(plain)))
    assert torch.equal(from_script, from_plain) and 0 < from_script.item() < 1
