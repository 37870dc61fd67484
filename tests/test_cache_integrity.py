"""Damaged cache entries are never used: every entry (AE(HR) tensors, FID feature arrays, SR PNG images) carries the
sha256 of its key and bytes, and an entry that differs by one bit is computed again. A weights file changed after it
was checked is refused with a message that says so."""

from __future__ import annotations

import hashlib
import io
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aesop_bench import cache as cache_mod
from aesop_bench.cache import ARRAY, PNG, TENSORS, TRAILER, Store
from aesop_bench.errors import AesopBenchError
from aesop_bench.fileutil import cache_file, tensor_key
from aesop_bench.models.archs.autoencoder_arch import AutoEncoder


def _flip(path, byte: int, mask: int) -> None:
    data = bytearray(path.read_bytes())
    data[byte] ^= mask
    path.write_bytes(bytes(data))


def _ae_case(tmp_path):
    from aesop_bench.metrics.ae import ae_hr_side, ae_psnr_from_hr_side
    from aesop_bench.metrics.hrcache import HRCache

    torch.manual_seed(0)
    ae = AutoEncoder(num_feat=16, num_block=1, num_grow_ch=4, enc_blocks=1).eval()
    hr = torch.randint(0, 256, (1, 3, 48, 48), dtype=torch.uint8)
    sr = torch.randint(0, 256, (1, 3, 48, 48), dtype=torch.uint8)
    cache = HRCache("ae_psnr-test", "cpu")
    seen = []

    def side(x):
        seen.append(len(x))
        return ae_hr_side(ae, x)

    def compare(x, ae_hr):
        return ae_psnr_from_hr_side(x, ae_hr, ae, 4, False, 1e-8)

    return ae, hr, sr, cache, cache.around(side, compare), compare, seen


def test_flipped_exponent_bits_in_an_ae_hr_entry_are_computed_again(tmp_path):
    from aesop_bench.metrics.ae import ae_hr_side, ae_psnr

    ae, hr, sr, cache, score, compare, seen = _ae_case(tmp_path)
    fresh = ae_psnr(sr, hr, ae, 4, False, 1e-8)
    assert torch.equal(score(sr, hr), fresh) and seen == [1]
    [entry] = cache.folder.rglob("*.pt")
    # three exponent bits (bit 30 of three float32 values of AE(HR)), where the tensor's bytes lie in the file
    at = entry.read_bytes().find(ae_hr_side(ae, hr)[0].numpy().tobytes()[:64])
    assert at > 0
    for i in (100, 1000, 5000):
        _flip(entry, at + 4 * i + 3, 0x40)
    # the damage matters: the same bytes read without the check give another AE-PSNR
    damaged = torch.load(io.BytesIO(entry.read_bytes()[:-TRAILER]), weights_only=True)
    assert not torch.allclose(compare(sr, damaged), fresh)
    assert torch.equal(score(sr, hr), fresh) and seen == [1, 1]  # AE(HR) computed again
    assert torch.equal(score(sr, hr), fresh) and seen == [1, 1]  # and written again, whole
    assert cache.store.get(tensor_key(hr)) is not None


def test_an_ae_hr_entry_of_the_earlier_format_is_never_read(tmp_path):
    from aesop_bench.metrics.ae import ae_psnr

    ae, hr, sr, cache, score, _, seen = _ae_case(tmp_path)
    fresh = ae_psnr(sr, hr, ae, 4, False, 1e-8)
    key = tensor_key(hr)
    legacy = cache_file(cache.folder, key, ".pt")  # KEY.pt, no trailer: what the earlier format wrote
    legacy.parent.mkdir(parents=True)
    torch.save([torch.zeros(1, 3, 48, 48)], legacy)
    assert cache.store.get(key) is None
    assert torch.equal(score(sr, hr), fresh) and seen == [1]
    assert not legacy.exists()  # deleted when its key was written again
    assert [p.name for p in cache.folder.rglob("*.pt")] == [f"{key}.{cache_mod.FORMAT}.pt"]


class _Features(torch.nn.Module):
    """A cheap stand-in for the Inception network: 2048 features from the 4x4 average colours, scaled element by
    element (so that an image's features do not depend on the batch it is in)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.randn(2048, generator=torch.Generator().manual_seed(0))
        self.calls = 0

    def forward(self, x, resize=False):
        self.calls += 1
        return F.adaptive_avg_pool2d(x, 4).flatten(1).repeat(1, 43)[:, :2048] * self.scale


def test_a_flipped_bit_in_a_feature_entry_is_computed_again(tmp_path):
    from aesop_bench import weights as wm
    from aesop_bench.metrics import distribution as dist

    weights = wm.cache_path(wm.entry("pt_inception"))  # the cache is named after the weights' hash: any file will do
    weights.parent.mkdir(parents=True, exist_ok=True)
    weights.write_bytes(b"stand-in")
    g = torch.Generator().manual_seed(1)
    srs = [torch.randint(0, 256, (3, 40, 56), dtype=torch.uint8, generator=g) for _ in range(4)]
    hrs = [torch.randint(0, 256, (3, 40, 56), dtype=torch.uint8, generator=g) for _ in range(4)]
    net = _Features()

    def fid():
        return dist.set_distance(dist.images_features(srs, "whole", net=lambda: net),
                                 dist.images_features(hrs, "whole", net=lambda: net))

    fresh = fid()
    assert net.calls == 2 and fid() == fresh and net.calls == 2  # the second time from the cache
    entry = next(p for p in (tmp_path / "aesop-bench-home" / "features").rglob("*.npy")
                 if p.name.startswith(tensor_key(srs[0])))
    _flip(entry, entry.stat().st_size - TRAILER - 2, 0x08)  # the top mantissa bit of the last feature
    # the damage matters: the same bytes read without the check give another FID
    damaged = np.load(io.BytesIO(entry.read_bytes()[:-TRAILER]))
    others = dist.images_features(srs[1:], "whole", net=lambda: net)
    assert dist.set_distance([damaged] + others, dist.images_features(hrs, "whole", net=lambda: net)) != fresh
    assert fid() == fresh and net.calls == 3  # the damaged image's features computed again
    assert fid() == fresh and net.calls == 3


def test_a_flipped_bit_in_an_sr_png_entry_is_computed_again(bench_root):
    import aesop_bench as ab
    from aesop_bench.paths import sr_cache_dir

    class Up(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
            with torch.no_grad():
                self.conv.weight.zero_()
                self.conv.weight[:, :, 1, 1] = torch.eye(3) * 0.9
                self.conv.bias.fill_(0.05)

        def forward(self, x):
            return F.interpolate(self.conv(x), scale_factor=4, mode="bicubic", align_corners=False)

    net = Up()
    calls = []
    net.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))

    def per_image():
        res = ab.evaluate(net, sets="set5", metrics="psnr", data_root=bench_root, download=False, cache=True)
        return {r.image: r.value for r in res.per_image.itertuples()}

    fresh = per_image()
    assert len(calls) == 5 and per_image() == fresh and len(calls) == 5
    entries = sorted(sr_cache_dir().rglob("*.png"))
    assert len(entries) == 5 and all(p.name.endswith(f".{cache_mod.FORMAT}.png") for p in entries)
    for n, entry in enumerate(entries):  # one bit in the header, the image data, the end chunk, the trailer
        size = entry.stat().st_size
        _flip(entry, (20, size // 2, size - TRAILER - 5, size - 10, size - 1)[n], 1 << n)
    assert per_image() == fresh and len(calls) == 10  # each image computed again
    assert per_image() == fresh and len(calls) == 10


def _values():
    g = torch.Generator().manual_seed(2)
    return [(PNG, torch.randint(0, 256, (3, 6, 5), dtype=torch.uint8, generator=g), torch.equal),
            (PNG, torch.randint(0, 256, (1, 4, 7), dtype=torch.uint8, generator=g), torch.equal),
            (TENSORS, [torch.rand(1, 2, 3, 3, generator=g), torch.rand(1, 1, 2, 2, generator=g)],
             lambda a, b: all(torch.equal(x, y) for x, y in zip(a, b))),
            (ARRAY, np.random.default_rng(0).random((2, 16)), np.array_equal)]


@pytest.mark.parametrize("codec,value,same", _values(), ids=["png-rgb", "png-grey", "tensors", "array"])
def test_every_single_bit_flip_of_an_entry_reads_as_absent_and_is_deleted(tmp_path, codec, value, same):
    store = Store("features", tmp_path / "c", codec)
    key = "ab" * 32
    assert store.put(key, value) and same(store.get(key), value)
    path = store.path(key)
    good = path.read_bytes()
    assert good.endswith(cache_mod.MAGIC + hashlib.sha256(key.encode() + good[:-TRAILER]).digest())
    for byte in range(len(good)):
        for bit in range(8) if byte >= len(good) - TRAILER or byte < 64 else (byte % 8,):
            path.write_bytes(good[:byte] + bytes([good[byte] ^ (1 << bit)]) + good[byte + 1:])
            assert store.get(key) is None, (byte, bit)
            assert not path.exists()
    for damaged in (good[:-1], good[:-TRAILER], good[:10], b""):  # cut short
        path.write_bytes(damaged)
        assert store.get(key) is None and not path.exists()
    other = "cd" * 32  # a whole entry under another key's name
    store.path(other).parent.mkdir(parents=True, exist_ok=True)
    store.path(other).write_bytes(good)
    assert store.get(other) is None
    assert store.put(key, value) and same(store.get(key), value)


def test_a_damaged_entry_leaves_the_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("AESOP_BENCH_FEATURES_CACHE_GB", "0.000001")  # 1000 bytes: one entry of 512 values
    store = Store("features", tmp_path / "c", ARRAY)
    value = np.zeros((1, 64))
    assert store.put("ab" * 32, value)
    assert not store.put("cd" * 32, value)  # full
    _flip(store.path("ab" * 32), 200, 1)
    assert store.get("ab" * 32) is None  # deleted: its bytes no longer count
    assert store.put("cd" * 32, value)


def _weights(tmp_path, monkeypatch, sha256):
    src = tmp_path / "src.pth"
    torch.save({"w": torch.randn(4, 4, generator=torch.Generator().manual_seed(0))}, src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"entries": [{"name": "toy", "file": "toy.pth", "urls": [src.as_uri()],
                                                 "sha256": digest if sha256 else None}]}))
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", str(manifest))
    return digest


@pytest.mark.parametrize("published", [True, False], ids=["published", "recorded"])
def test_a_weights_file_changed_in_place_is_refused_saying_it_changed(tmp_path, monkeypatch, published):
    from aesop_bench import weights as wm

    digest = _weights(tmp_path, monkeypatch, published)
    path = wm.download("toy", log=None)
    assert wm.require("toy") == path
    st = path.stat()
    torch.save({"w": torch.randn(4, 4, generator=torch.Generator().manual_seed(1))}, path)  # same path and size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # and its old modification time
    assert path.stat().st_size == st.st_size
    found = hashlib.sha256(path.read_bytes()).hexdigest()
    for call in (lambda: wm.require("toy"), lambda: wm.get("toy", log=None), lambda: wm.download("toy", log=None)):
        with pytest.raises(AesopBenchError) as err:
            call()
        msg = str(err.value)
        assert msg.startswith(f"{path}: the file's content differs from the toy weights")
        assert f"sha256 {found}, expected {digest}" in msg
        assert ("published" if published else "recorded at its first download") in msg
        assert "aesop-bench weights download toy" in msg and "aesop-bench weights add toy FILE" in msg
        assert ("weights forget toy" in msg) is not published
