"""A stored value (row, SR image, features, summary) is used only while its key covers everything that made it:
each test changes one thing a stored value depends on and checks that the rerun equals a fresh run."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import aesop_bench as ab
from aesop_bench.cli import main
from aesop_bench.errors import AesopBenchError
from aesop_bench.models.archs.rrdbnet_arch import RRDBNet

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 8}


def _tiny_sd(seed: int) -> dict:
    torch.manual_seed(seed)
    net = RRDBNet(scale=4, **TINY)
    with torch.no_grad():
        net.conv_last.bias.fill_(0.4)
    return net.state_dict()


@pytest.fixture
def small_set(bench_root, tmp_path):
    """Three Set5 images in a folder of their own (a folder is a set)."""
    folder = tmp_path / "three"
    folder.mkdir()
    for name in ("baby", "bird", "butterfly"):
        shutil.copy(bench_root / "Set5" / "HR" / f"{name}.png", folder / f"{name}.png")
    return folder


def _eval(args, capsys) -> dict:
    rc = main(["eval", *args, "--quiet", "--no-download"])
    err = capsys.readouterr().err
    assert rc == 0, err
    return err


def _psnr(out) -> float:
    summary = json.loads((out / "summary.json").read_text())
    (only,) = summary["sets"].values()
    return only["metrics"]["psnr"]


def test_cards_with_different_keys_on_one_checkpoint_are_different_models(small_set, tmp_path, capsys):
    torch.save({"params": _tiny_sd(1), "params_ema": _tiny_sd(2)}, tmp_path / "tiny.pth")
    for key in ("params", "params_ema"):
        (tmp_path / f"{key}.yaml").write_text(f"arch: rrdb\nweights: tiny.pth\nkey: {key}\narch_opts: {TINY}\n")
    got = {}
    for key in ("params", "params_ema"):  # one home: the second must not read the first's SR cache
        _eval(["--model", str(tmp_path / f"{key}.yaml"), "--sets", str(small_set), "--metrics", "psnr",
               "--out", str(tmp_path / key)], capsys)
        got[key] = _psnr(tmp_path / key)
    shutil.rmtree(tmp_path / "aesop-bench-home" / "sr")
    _eval(["--model", str(tmp_path / "params_ema.yaml"), "--sets", str(small_set), "--metrics", "psnr",
           "--out", str(tmp_path / "fresh")], capsys)
    assert got["params_ema"] == _psnr(tmp_path / "fresh") != got["params"]
    (tmp_path / "typo.yaml").write_text(f"arch: rrdb\nweights: tiny.pth\nkey: net_g_typo\narch_opts: {TINY}\n")
    assert main(["eval", "--model", str(tmp_path / "typo.yaml"), "--sets", str(small_set), "--metrics", "psnr",
                 "--out", str(tmp_path / "typo"), "--quiet"]) == 2
    assert "no state dict under key 'net_g_typo'; its keys: params, params_ema" in capsys.readouterr().err


class Up(nn.Module):
    """No parameters: what it computes is an attribute, invisible to a state-dict hash."""

    def __init__(self, mode):
        super().__init__()
        self.mode = mode

    def forward(self, x):
        return F.interpolate(x, scale_factor=4, mode=self.mode).clamp(0, 1)


def test_modules_with_equal_state_dicts_are_not_confused(small_set):
    near = ab.evaluate(Up("nearest"), sets=str(small_set), metrics="psnr", download=False)
    bil = ab.evaluate(Up("bilinear"), sets=str(small_set), metrics="psnr", download=False)
    near_s = ab.evaluate(Up("nearest"), sets=str(small_set), metrics="psnr", download=False, identity="nearest")
    bil_s = ab.evaluate(Up("bilinear"), sets=str(small_set), metrics="psnr", download=False, identity="bilinear")
    assert near.mean(str(small_set), "psnr") == near_s.mean(str(small_set), "psnr")
    assert bil.mean(str(small_set), "psnr") == bil_s.mean(str(small_set), "psnr")
    assert near.mean(str(small_set), "psnr") != bil.mean(str(small_set), "psnr")
    with pytest.raises(AesopBenchError, match="cache=True needs identity="):
        ab.evaluate(lambda lr: lr, sets=str(small_set), download=False, cache=True)


def test_non_finite_and_out_of_range_values_are_refused(small_set):
    hr = torch.rand(1, 3, 32, 32)
    patch = hr.clone()
    patch[..., 8:16, 8:16] = float("nan")
    psnr = ab.metric("psnr")
    for bad in (patch, torch.full_like(hr, float("nan")), torch.full_like(hr, float("inf"))):
        with pytest.raises(AesopBenchError, match="non-finite value"):
            psnr(bad, hr)
    with pytest.raises(AesopBenchError, match=r"\[0\.5, 1\.0000009\d*\]"):
        psnr(torch.full_like(hr, 0.5).index_fill_(-1, torch.tensor([0]), 1.000001), hr)
    with pytest.raises(AesopBenchError, match="empty"):
        psnr(torch.zeros(0, 3, 8, 8), torch.zeros(0, 3, 8, 8))

    class Net(nn.Module):
        def __init__(self, out):
            super().__init__()
            self.out = out

        def forward(self, x):
            y = F.interpolate(x, scale_factor=4, mode="nearest")
            return {"nan": y * float("nan"), "255": y * 255, "tuple": (y, y)}[self.out]

    for out, msg in (("nan", "baby.png: model 'Net' returned .* non-finite"),
                     ("255", r"baby.png: model 'Net' returned values in \[.*, 25\d\]"),
                     ("tuple", "returned a tuple, not a tensor")):
        with pytest.raises(AesopBenchError, match=msg):
            ab.evaluate(Net(out), sets=str(small_set), metrics="psnr", download=False)


def test_lr_psnr_checks_the_lr_size():
    sr = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    m = ab.metric("lr_psnr")
    with pytest.raises(AesopBenchError, match=r"lr \(1, 3, 20, 20\) does not match sr \(1, 3, 64, 64\) at x4"):
        m(sr, lr=torch.randint(0, 256, (1, 3, 20, 20), dtype=torch.uint8))
    assert m(sr, lr=torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)).shape == (1,)


def _write_png_same_size(path, img) -> None:
    """Rewrite ``path`` in place with ``img`` (uncompressed PNG: same dimensions, same byte length), keeping its
    inode, size and modification time: only the content and the status-change time differ."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, format="PNG", compress_level=0)
    _rewrite_in_place(path, buf.getvalue())


def _rewrite_in_place(path, data: bytes) -> None:
    import os

    st = os.stat(path)
    assert len(data) == st.st_size, "the rewrite must keep the size"
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_ino, after.st_mtime_ns) == (st.st_size, st.st_ino, st.st_mtime_ns)


def test_every_input_of_a_stored_value_is_in_its_key(bench_root, tmp_path, monkeypatch):
    """Change, one at a time, each input a stored value depends on (model file, HR, SR, LR, metric option,
    metric weights, protocol field; the state-dict key and a module's attributes above), keeping sizes, inodes and
    modification times where a file is rewritten: the rerun in the same home (and, where the run folder allows it,
    the same run folder) equals a fresh run in an empty home."""
    import itertools

    from PIL import Image

    from aesop_bench.imageio import read_image
    from aesop_bench.models.archs.autoencoder_arch import AutoEncoder
    from aesop_bench.train.checkpoint import save_weights

    home = tmp_path / "aesop-bench-home"
    counter = itertools.count()

    def run(model, out=None, fresh=False, **kw):
        monkeypatch.setenv("AESOP_BENCH_HOME", str(tmp_path / f"fresh{next(counter)}" if fresh else home))
        res = ab.evaluate(model, sets=str(data), download=False, out=None if fresh else out, **kw)
        monkeypatch.setenv("AESOP_BENCH_HOME", str(home))
        return {(r.image, r.metric): r.value for r in res.per_image.itertuples()}, res.summary["sets"]

    def same(model, out, **kw):
        got = run(model, out, **kw)
        assert got == run(model, fresh=True, **kw)
        return got

    data = tmp_path / "three"
    (data / "HR").mkdir(parents=True)
    (data / "LR_bicubic" / "X4").mkdir(parents=True)
    for name in ("baby", "bird", "butterfly"):  # uncompressed PNGs: a rewrite with other pixels keeps the size
        Image.open(bench_root / "Set5" / "HR" / f"{name}.png").save(data / "HR" / f"{name}.png", compress_level=0)
        Image.open(bench_root / "Set5" / "LR_bicubic" / "X4" / f"{name}x4.png").save(
            data / "LR_bicubic" / "X4" / f"{name}x4.png", compress_level=0)
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.safetensors"
    net = RRDBNet(scale=4, **TINY)
    net.load_state_dict(_tiny_sd(1))
    save_weights(net, ckpt, {"arch": "rrdb", "opts": TINY})
    aes = {}
    for seed in (1, 2):
        torch.manual_seed(seed)
        aes[seed] = tmp_path / f"ae{seed}.safetensors"
        save_weights(AutoEncoder(num_feat=16, num_block=1, num_grow_ch=8, enc_blocks=1), aes[seed],
                     {"arch": "ae", "opts": {"num_feat": 16, "num_block": 1, "num_grow_ch": 8, "enc_blocks": 1}})

    metrics = ["psnr", "lr_psnr"]
    base = same(str(ckpt), tmp_path / "m1", metrics=metrics)
    # the model file, rewritten in place with other weights
    net.load_state_dict(_tiny_sd(2))
    save_weights(net, tmp_path / "other.safetensors", {"arch": "rrdb", "opts": TINY})
    _rewrite_in_place(ckpt, (tmp_path / "other.safetensors").read_bytes())
    with pytest.raises(AesopBenchError, match="holds results of model"):
        run(str(ckpt), tmp_path / "m1", metrics=metrics)  # the run folder is another model's
    new_weights = same(str(ckpt), tmp_path / "m2", metrics=metrics)
    assert new_weights != base
    # an HR image, rewritten in place
    hr_file = data / "HR" / "bird.png"
    _write_png_same_size(hr_file, 255 - read_image(hr_file))
    after_hr = same(str(ckpt), tmp_path / "m2", metrics=metrics)
    assert after_hr[0][("bird", "psnr")] != new_weights[0][("bird", "psnr")]
    assert after_hr[0][("baby", "psnr")] == new_weights[0][("baby", "psnr")]
    # a protocol field: another run folder, the same home
    assert same(str(ckpt), tmp_path / "m3", metrics=metrics, protocol=ab.protocol("paper", crop_border=0)) != \
        after_hr
    # an SR file and an LR file of a result folder (--lr-source folder)
    sr_dir = tmp_path / "sr"
    sr_dir.mkdir()
    for f in (data / "HR").iterdir():
        Image.open(f).save(sr_dir / f.name, compress_level=0)
    folder_protocol = ab.protocol("paper", lr_source="folder")
    before = same(sr_dir, tmp_path / "f1", metrics=metrics, protocol=folder_protocol)
    _write_png_same_size(sr_dir / "baby.png", read_image(sr_dir / "baby.png") // 2)
    after_sr = same(sr_dir, tmp_path / "f1", metrics=metrics, protocol=folder_protocol)
    lr_file = data / "LR_bicubic" / "X4" / "butterflyx4.png"
    _write_png_same_size(lr_file, 255 - read_image(lr_file))
    after_lr = same(sr_dir, tmp_path / "f1", metrics=metrics, protocol=folder_protocol)
    assert before[0][("baby", "psnr")] != after_sr[0][("baby", "psnr")]
    assert after_sr[0][("butterfly", "lr_psnr")] != after_lr[0][("butterfly", "lr_psnr")]
    # a metric option (the AE of ae_psnr), then the AE's weights rewritten in place
    with_ae1 = same(sr_dir, tmp_path / "a1", metrics=["ae_psnr"], ae=str(aes[1]))
    with_ae2 = same(sr_dir, tmp_path / "a1", metrics=["ae_psnr"], ae=str(aes[2]))
    _rewrite_in_place(aes[2], aes[1].read_bytes())
    assert same(sr_dir, tmp_path / "a1", metrics=["ae_psnr"], ae=str(aes[2]))[0] == with_ae1[0] != with_ae2[0]
    # a set stopped after its first image: no value of the set until it is whole, then a fresh run's
    from .standin_models import ModelFailed, RecordingBicubic

    with pytest.raises(ModelFailed):
        run(RecordingBicubic(fail_at=2), tmp_path / "p1", metrics=metrics)
    stopped = json.loads((tmp_path / "p1" / "summary.json").read_text())["sets"][str(data)]
    assert stopped["complete"] is False and stopped["metrics"] == {} and stopped["partial"]["psnr"]["n"] == 1
    assert same(RecordingBicubic(), tmp_path / "p1", metrics=metrics)[1][str(data)]["complete"] is True


def test_an_interrupted_run_never_averages_two_definitions(small_set, tmp_path, monkeypatch):
    from aesop_bench.metrics.metric import Metric
    from aesop_bench.models.archs.autoencoder_arch import AutoEncoder
    from aesop_bench.train.checkpoint import save_weights

    opts = {"num_feat": 16, "num_block": 1, "num_grow_ch": 8, "enc_blocks": 1}
    aes = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        aes.append(tmp_path / f"ae{seed}.safetensors")
        save_weights(AutoEncoder(**opts), aes[-1], {"arch": "ae", "opts": opts})
    out = tmp_path / "run"
    first = ab.evaluate(Up("bicubic"), sets=str(small_set), metrics="ae_psnr", ae=str(aes[0]), out=out,
                        identity="bicubic-up", download=False)
    v1 = first.summary["metric_versions"]["ae_psnr"]
    score, calls = Metric.score, []

    def interrupted(self, *a):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # SIGINT after two images
        return score(self, *a)

    monkeypatch.setattr(Metric, "score", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ab.evaluate(Up("bicubic"), sets=str(small_set), metrics="ae_psnr", ae=str(aes[1]), out=out,
                    identity="bicubic-up", download=False, batch=1)
    summary = json.loads((out / "summary.json").read_text())
    assert "ae_psnr" not in summary["sets"][str(small_set)]["metrics"]  # 2 of 3 images under the second AE
    versions = {r["version"] for r in __import__("csv").DictReader(open(out / "per_image.csv"))}
    assert len(versions) == 1 and versions != {v1}
    monkeypatch.setattr(Metric, "score", score)
    done = ab.evaluate(Up("bicubic"), sets=str(small_set), metrics="ae_psnr", ae=str(aes[1]), out=out,
                       identity="bicubic-up", download=False)
    assert len(calls) == 3  # the two stored images were not computed again
    fresh = ab.evaluate(Up("bicubic"), sets=str(small_set), metrics="ae_psnr", ae=str(aes[1]), download=False)
    assert done.summary["sets"] == fresh.summary["sets"] and done.summary["metric_versions"]["ae_psnr"] != v1


def test_an_image_named_like_the_set_row(small_set, tmp_path):
    shutil.copy(small_set / "bird.png", small_set / "*.png")
    res = ab.evaluate(Up("nearest"), sets=str(small_set), metrics="psnr", download=False, out=tmp_path / "r")
    assert sorted(res.per_image["image"]) == ["*", "baby", "bird", "butterfly"]
    assert res.summary["sets"][str(small_set)]["n_images"] == 4
    assert res.mean(str(small_set), "psnr") == pytest.approx(res.per_image["value"].mean(), abs=1e-12)


def test_cache_clear_forgets_file_hashes(tmp_path, capsys):
    from aesop_bench.fileutil import sha256_cached
    from aesop_bench.paths import hashes_dir

    big = tmp_path / "big.bin"
    big.write_bytes(b"a" * (2 << 20))
    sha256_cached(big, persist=True)
    assert (hashes_dir() / "hashes.json").is_file()
    assert main(["cache", "clear", "all"]) == 0
    assert "hashes" in capsys.readouterr().out and not hashes_dir().exists()


def test_sr_subfolders_differing_only_in_case_are_refused(bench_root, shared_data, tmp_path, capsys):
    sr = tmp_path / "sr"
    shutil.copytree(shared_data / "results" / "RDN" / "Set5", sr / "Set5")
    shutil.copytree(shared_data / "results" / "RDN" / "Set5", sr / "set5")
    assert main(["eval", "--sr", str(sr), "--sets", "set5,set14", "--metrics", "psnr", "--quiet",
                 "--out", str(tmp_path / "r"), "--data-root", str(bench_root)]) == 2
    assert "Set5/ and set5/ differ only in case" in capsys.readouterr().err


def test_caches_are_optional_and_summaries_are_json(small_set, tmp_path, capsys):
    want = ab.evaluate(Up("nearest"), sets=str(small_set), metrics="psnr", download=False, identity="near")
    sr_cache = tmp_path / "aesop-bench-home" / "sr"
    shutil.rmtree(sr_cache)
    sr_cache.write_bytes(b"")  # a file where the SR cache's folder would be: every write to it fails (OSError)
    got = ab.evaluate(Up("nearest"), sets=str(small_set), metrics="psnr", download=False, identity="near")
    assert got.summary["sets"] == want.summary["sets"]
    assert sr_cache.is_file() and sr_cache.stat().st_size == 0
    # identical images under basicsr: PSNR inf, written as text in strict JSON and read back as a float
    out = tmp_path / "same"
    _eval(["--sr", str(small_set), "--sets", str(small_set), "--metrics", "psnr", "--protocol", "basicsr",
           "--out", str(out)], capsys)
    strict = json.loads((out / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert strict["sets"][str(small_set)]["metrics"]["psnr"] == "inf"
    assert ab.load_run(out).attrs["summary"]["sets"][str(small_set)]["metrics"]["psnr"] == float("inf")


def test_an_unwritable_folder_is_a_clear_error(small_set, tmp_path, monkeypatch, capsys):
    import errno

    from aesop_bench.evaluation import store

    def refused(self, out_dir, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(out_dir))

    monkeypatch.setattr(store.ResultStore, "__init__", refused)
    assert main(["eval", "--model", "bicubic", "--sets", str(small_set), "--quiet", "--out", str(tmp_path / "r")]) == 2
    assert f"cannot write {tmp_path / 'r'}: Permission denied. Choose a folder you can write" in \
        capsys.readouterr().err


def test_an_ae_given_as_a_file_is_not_downloaded(small_set, tmp_path, monkeypatch):
    from aesop_bench import weights as wm
    from aesop_bench.evaluation.config import EvalConfig, as_source
    from aesop_bench.evaluation.prepare import fetch_weights
    from aesop_bench.protocols import get_protocol

    fetched = []
    monkeypatch.setattr(wm, "download", lambda name, **k: fetched.append(name))
    (tmp_path / "ae.pth").write_bytes(b"")
    cfg = EvalConfig(source=as_source("bicubic"), sets=[str(small_set)], metrics=["ae_psnr"], protocol=get_protocol("paper"),
                     data_root=tmp_path, out_dir=tmp_path / "r",
                     metric_options={"ae_psnr": {"ae": str(tmp_path / "ae.pth")}})
    fetch_weights(cfg)
    assert fetched == []


def test_checkpoints_of_equal_weights_are_equal_files(tmp_path):
    import os

    from aesop_bench.train.checkpoint import save_weights

    net = RRDBNet(scale=4, **TINY)
    meta = {"arch": "rrdb", "opts": TINY, "scale": 4, "step": 5, "kind": "sr", "name": "x"}
    for i in range(4):
        save_weights(net, tmp_path / f"{i}.safetensors", dict(reversed(list(meta.items()))) if i % 2 else meta)
    data = {(tmp_path / f"{i}.safetensors").read_bytes() for i in range(4)}
    assert len(data) == 1
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "0.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
    from safetensors.torch import load_file

    assert all(torch.equal(a, b) for a, b in zip(load_file(tmp_path / "0.safetensors").values(),
                                                 [net.state_dict()[k] for k in sorted(net.state_dict())]))


def test_an_undertrained_networks_overshoot_is_clamped_and_another_range_refused(small_set):
    """An early GAN's output reaching 1.58 in a few pixels (what the README's smoke training gives at its first
    validation) is clamped to [0, 1] as BasicSR does, and scores what its clamped output scores; an output of
    another range (0-255, a dark [-1, 1] image) has most of its values outside and is refused."""
    class Net(nn.Module):
        def __init__(self, out):
            super().__init__()
            self.out = out

        def forward(self, x):
            y = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
            if self.out == "overshoot":
                y = y.clone()
                y[..., :2, :] = 1.58  # two rows of a tall image: under 1% of the values (the smoke run: 1.5%)
                y[..., -1:, :5] = -0.0445
                return y
            if self.out == "clamped":
                return self.__class__("overshoot")(x).clamp(0, 1)
            return {"255": y * 255, "dark [-1, 1]": y * 2 - 1.6}[self.out]

    over = ab.evaluate(Net("overshoot"), sets=str(small_set), metrics="psnr", download=False)
    clamped = ab.evaluate(Net("clamped"), sets=str(small_set), metrics="psnr", download=False)
    assert over.per_image["value"].tolist() == clamped.per_image["value"].tolist()
    for out in ("255", "dark [-1, 1]"):
        with pytest.raises(AesopBenchError, match=r"returned values in .*% of them outside \[-0\.5, 1\.5\]"):
            ab.evaluate(Net(out), sets=str(small_set), metrics="psnr", download=False)
