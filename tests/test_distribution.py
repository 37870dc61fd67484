"""FID features against pytorch-fid given the same weights; pFID patches; FID/pFID in the evaluator."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from aesop_bench import weights as wm
from aesop_bench.metrics import distribution as dist
from benchmarks.standins import write_manifest


@pytest.fixture(scope="module")
def random_inception_state():
    torch.manual_seed(0)
    net = dist.build_fid_inception()
    for m in net.modules():  # non-trivial batch-norm statistics, so that they are exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net.state_dict()


def test_features_equal_pytorch_fid(random_inception_state, monkeypatch):
    from pytorch_fid import inception as ref_mod

    monkeypatch.setattr(ref_mod, "load_state_dict_from_url", lambda *a, **k: random_inception_state)
    ref = ref_mod.InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True).eval()
    ours = dist.FIDFeatures(dist.build_fid_inception(random_inception_state))
    x = torch.rand(2, 3, 123, 211, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = ref(x)[0].flatten(1)
        got = ours(x)
    assert got.shape == (2, 2048)
    assert torch.allclose(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("h,w,n", [(300, 650, 2), (200, 500, 1), (598, 598, 4), (299, 299, 1), (137, 91, 1),
                                   (897, 300, 3)])
def test_patch_counts_and_padding(h, w, n):
    img = torch.rand(3, h, w)
    p = dist.patches(img)
    assert p.shape == (n, 3, 299, 299)
    if h >= 299 and w >= 598:
        assert torch.equal(p[1], img[:, 0:299, 299:598])
    if h < 299:
        assert torch.all(p[0, :, h:, :] == 0) and torch.equal(p[0, :, :h, : min(w, 299)], img[:, :, : min(w, 299)])


@pytest.fixture()
def stand_in_inception(random_inception_state, tmp_path, monkeypatch):
    p = tmp_path / "pt_inception-standin.pth"
    torch.save(random_inception_state, p)
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", str(write_manifest({"pt_inception": p}, tmp_path / "m.json")))
    wm.download("pt_inception", log=None)


def _span_sqrtm_fd(f1, f2):
    """pytorch-fid's Frechet distance (scipy's sqrtm of the covariance product), taken in the span of the
    samples: FD is invariant under rotations, and there the covariances of a few samples are well conditioned
    (in 2048 dimensions sqrtm of rank-deficient covariances is noise)."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    q, _ = np.linalg.qr(np.vstack([f1, f2]).T)
    p1, p2 = f1 @ q, f2 @ q
    return calculate_frechet_distance(p1.mean(0), np.cov(p1, rowvar=False), p2.mean(0), np.cov(p2, rowvar=False))


@pytest.mark.parametrize("batch", [None, 5])
def test_eval_fid_and_pfid(stand_in_inception, random_inception_state, bench_root, tmp_path, monkeypatch, batch):
    from pytorch_fid import inception as ref_mod

    from aesop_bench.data.transforms import mod_crop
    from aesop_bench.evaluation.config import EvalConfig, as_source
    from aesop_bench.evaluation.runner import run_evaluation as evaluate
    from aesop_bench.models.options import RunOptions
    from aesop_bench.imageio import read_image
    from aesop_bench.paths import home
    from aesop_bench.protocols import get_protocol

    def run(out):
        cfg = EvalConfig(source=as_source("bicubic"), sets=["set5"], metrics=["psnr", "fid", "pfid"],
                         protocol=get_protocol("basicsr"), data_root=bench_root, out_dir=tmp_path / out,
                         progress=False, download=False, log=lambda m: None, save_sr=True,
                         run=RunOptions(batch=batch))
        return evaluate(cfg)["sets"]["set5"]["metrics"]

    sizes = []  # inputs per forward of the feature network
    plain_forward = dist.FIDFeatures.forward
    monkeypatch.setattr(dist.FIDFeatures, "forward", lambda self, x, **k: sizes.append(len(x)) or
                        plain_forward(self, x, **k))
    out = run("run")
    # one image per forward, or the five images of Set5 together: SR and HR, whole images and patches
    assert sizes == ([1] * 20 if batch is None else [5] * 4)
    rows = list(csv.DictReader(open(tmp_path / "run" / "per_image.csv")))
    assert {r["metric"] for r in rows} == {"psnr"} and len(rows) == 5
    # the reference: pytorch-fid's own InceptionV3 (same weights) on the saved SR images and the modcropped HR;
    # whole images resized by it to 299, patches cut by hand (every Set5 image is one zero-padded 299 patch)
    monkeypatch.setattr(ref_mod, "load_state_dict_from_url", lambda *a, **k: random_inception_state)
    ref = ref_mod.InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True).eval()
    names = sorted(p.stem for p in (bench_root / "Set5" / "HR").glob("*.png"))
    sr = [read_image(tmp_path / "run" / "sr" / "set5" / f"{n}.png") for n in names]
    hr = [mod_crop(read_image(bench_root / "Set5" / "HR" / f"{n}.png"), 4) for n in names]

    def feats(images, patch):
        out = []
        for img in images:
            x = img.float()[None] / 255
            if patch:
                x = torch.nn.functional.pad(x, (0, 299 - x.shape[-1], 0, 299 - x.shape[-2]))[..., :299, :299]
            with torch.no_grad():
                out.append(ref(x)[0].flatten(1).double().numpy())
        return np.concatenate(out)

    assert all(max(i.shape[-2:]) <= 512 and min(i.shape[-2:]) < 598 for i in hr)
    assert out["fid"] == pytest.approx(_span_sqrtm_fd(feats(sr, False), feats(hr, False)), rel=1e-4)
    assert out["pfid"] == pytest.approx(_span_sqrtm_fd(feats(sr, True), feats(hr, True)), rel=1e-4)
    # 5 SR + 5 HR images, whole and patch features: 20 cached feature files
    cached = list((home() / "features").rglob("*.npy"))
    assert len(cached) == 20

    # a rerun computes nothing: not in the same run folder (results stored), and not in a new one either (the
    # features are cached): the feature network must not run
    def refuse(*a, **k):
        raise AssertionError("the feature network ran")

    monkeypatch.setattr(dist.FIDFeatures, "forward", refuse)
    assert run("run") == out
    assert run("fresh") == out


class _TinyTFInception(torch.nn.Module):
    """A stand-in with the interface of clean-fid's TorchScript Inception (``.layers`` -> 2048 features)."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, stride=2), torch.nn.ReLU(),
                                          torch.nn.Conv2d(16, 2048, 3, stride=4), torch.nn.AdaptiveAvgPool2d(1))

    def forward(self, x, return_features: bool = False):
        return self.layers(x)


def test_clean_mode_features_equal_clean_fid(tmp_path, monkeypatch, bench_root):
    from cleanfid import fid as cfid
    from cleanfid.inception_torchscript import InceptionV3W

    torch.manual_seed(3)
    folder = tmp_path / "ts"
    folder.mkdir()
    torch.jit.save(torch.jit.script(_TinyTFInception()), folder / "inception-2015-12-05.pt")
    p = folder / "inception-2015-12-05.pt"
    man = write_manifest({"inception_torchscript": p}, tmp_path / "m.json")
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", str(man))
    wm.download("inception_torchscript", log=None)
    ref_model = InceptionV3W(str(folder), download=False, resize_inside=False)
    hr_dir = bench_root / "Set5" / "HR"
    ref = cfid.get_folder_features(str(hr_dir), ref_model, num_workers=0, batch_size=8,
                                   device=torch.device("cpu"), mode="clean", verbose=False)
    from aesop_bench.imageio import read_image

    ours = np.concatenate(dist.images_features([read_image(f) for f in sorted(hr_dir.glob("*.png"))], "whole", "cpu",
                                               "clean"))
    assert ours.shape == ref.shape == (5, 2048)
    assert np.allclose(ours, ref, atol=1e-5)
    # patches are already 299: clean mode feeds them unresized
    img = read_image(hr_dir / "baby.png")
    [got] = dist.images_features([img], "patch", "cpu", "clean")
    with torch.no_grad():
        want = ref_model(dist.patches(img.float())).numpy()
    assert np.allclose(got, want, atol=1e-5)


def test_metric_features_of_one_image_and_of_a_list(stand_in_inception, random_inception_state, bench_root,
                                                    monkeypatch):
    from pytorch_fid import inception as ref_mod

    from aesop_bench.imageio import read_image
    from aesop_bench.metrics.metric import Metric

    imgs = [read_image(bench_root / "Set5" / "HR" / f"{n}.png") for n in ("bird", "head")]
    listed = Metric("fid").features(imgs)  # computed together
    one = Metric("fid").features(imgs[1])  # read back from the feature cache
    assert isinstance(listed, list) and len(listed) == 2 and one.shape == (1, 2048)
    assert np.array_equal(one, listed[1])
    monkeypatch.setattr(ref_mod, "load_state_dict_from_url", lambda *a, **k: random_inception_state)
    ref = ref_mod.InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True).eval()
    with torch.no_grad():
        want = [ref(x.float()[None] / 255)[0].flatten(1).double().numpy() for x in imgs]
    assert all(np.allclose(a, b, atol=1e-5, rtol=0) for a, b in zip(listed, want))


def test_a_list_of_batches_means_all_their_images(stand_in_inception, random_inception_state, tmp_path,
                                                  monkeypatch):
    """``fid([a[:2], a[2:]], ...)`` uses all four images of ``a``; and features are cached under the Inception
    weights' hash: another weights file in the same home computes them again."""
    from aesop_bench import weights as wm
    from aesop_bench.metrics.metric import Metric

    g = torch.Generator().manual_seed(3)
    a = torch.randint(0, 256, (4, 3, 40, 48), dtype=torch.uint8, generator=g)
    b = torch.randint(0, 256, (4, 3, 40, 48), dtype=torch.uint8, generator=g)
    fid = Metric("fid")
    whole = fid(a, b)
    assert fid([a[:2], a[2:]], [b[:2], b[2:]]) == whole == fid(list(a), list(b))
    assert fid([a[:2], a[2:]], [b[:2], b[2:]]) != fid([a[0], a[2]], [b[0], b[2]])
    # another pt_inception file (its batch-norm statistics changed) in the same home
    from pytorch_fid import inception as ref_mod

    old = fid.features(list(a))
    other = {k: v.clone() for k, v in random_inception_state.items()}
    for k in other:
        if k.endswith("running_mean"):
            other[k] += 0.05
    p = tmp_path / "pt_inception-other.pth"
    torch.save(other, p)
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", str(write_manifest({"pt_inception": p}, tmp_path / "o.json")))
    wm.download("pt_inception", log=None)
    got = Metric("fid").features(list(a))
    monkeypatch.setattr(ref_mod, "load_state_dict_from_url", lambda *a, **k: other)
    ref = ref_mod.InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True).eval()
    with torch.no_grad():
        want = [ref(x.float()[None] / 255)[0].flatten(1).double().numpy() for x in a]
    assert all(np.allclose(x, y, atol=1e-5, rtol=0) for x, y in zip(got, want))
    assert not any(np.allclose(x, y, atol=1e-3) for x, y in zip(got, old))
