"""One namespace for every cache: one table (name, budget, what it holds, root), one folder-name sanitiser, one
function giving a cache's folder for a key's parts. The folders of the caches that exist today are unchanged, so
that their entries are still found: each is checked against a path written out by hand here."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch

from aesop_bench import cache
from aesop_bench.cache import CACHES, Store, device_tag, folder, safe_name
from aesop_bench.errors import ConfigError
from aesop_bench.paths import home

TORCH = f"torch{torch.__version__}"  # e.g. torch2.14.1+cu130: its "+" is kept, as it always was
PKG = Path(__file__).resolve().parents[1] / "aesop_bench"


def _weights(tmp_path, monkeypatch, files: dict[str, bytes]) -> dict[str, str]:
    """Weight files of the given entries in the weights folder, published by an extra manifest; their sha256."""
    from aesop_bench import weights as wm
    from aesop_bench.paths import weights_dir

    weights_dir().mkdir(parents=True, exist_ok=True)
    entries, digests = [], {}
    for name, data in files.items():
        (weights_dir() / f"{name}.bin").write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
        entries.append({"name": name, "file": f"{name}.bin", "urls": [], "sha256": digests[name]})
    (tmp_path / "m.json").write_text(json.dumps({"entries": entries}))
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", str(tmp_path / "m.json"))
    assert all(wm.digest(n) == d for n, d in digests.items())
    return digests


def test_one_table_names_every_cache_with_its_budget_and_folder():
    assert list(CACHES) == ["sr", "features", "hr_features", "hashes"]
    assert {n: c.root() for n, c in CACHES.items()} == {n: home() / n for n in CACHES}
    assert cache.BUDGETS == {"sr": ("AESOP_BENCH_SR_CACHE_GB", 50.0),
                             "features": ("AESOP_BENCH_FEATURES_CACHE_GB", 10.0),
                             "hr_features": ("AESOP_BENCH_HR_CACHE_GB", 20.0)}
    assert all(c.holds for c in CACHES.values())
    with pytest.raises(ConfigError, match="cache 'nope' unknown; one of sr, features, hr_features, hashes"):
        folder("nope", "x")
    with pytest.raises(ConfigError, match="cache 'hashes' unknown or without a budget"):
        Store("hashes", home() / "x", cache.ARRAY)


def test_the_sanitiser_keeps_letters_digits_and_dash_underscore_dot():
    assert safe_name("rrdb[num_feat=64,num_block=23]-x4-0123abcd-key=params|params_ema!") == \
        "rrdb_num_feat_64_num_block_23_-x4-0123abcd-key_params_params_ema_"
    assert safe_name("interp(rrdb[]-x4-01,rrdb[]-x4-23,0.3)") == "interp_rrdb__-x4-01_rrdb__-x4-23_0.3_"
    # the HR cache's names kept their form under the sanitiser the HR cache had (":", "=" and "/" -> "_")
    for name in ("lpips-alex-v0.1-whole-v2-0123456789ab-ba9876543210", "ae_psnr-ae=aesop_ae:0123456789ab",
                 "ae_psnr-ae=AE_x4.pth:0123456789ab"):
        assert safe_name(name) == name.replace(":", "_").replace("=", "_").replace("/", "_")


def test_device_tags_are_as_before(monkeypatch):
    assert device_tag("cpu") == f"{TORCH}-cpu"
    assert device_tag("cpu", threads=True) == f"{TORCH}-cpu-t{torch.get_num_threads()}"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda dev: "NVIDIA H100 80GB HBM3/MIG 1g.10gb")
    assert device_tag("cuda:0", threads=True) == f"{TORCH}-NVIDIA_H100_80GB_HBM3_MIG_1g.10gb"  # no threads on a GPU


def test_the_sr_cache_folders_are_where_they_were():
    from aesop_bench.evaluation.sources import _sr_model_dir, _sr_store

    net = "rrdb[num_feat=64]-x4-0123456789abcdef"
    assert _sr_store(net, 4, "cpu").folder == home() / "sr" / "rrdb_num_feat_64_-x4-0123456789abcdef" / "x4" / \
        f"{TORCH}-cpu"  # a thread-invariant architecture
    caller = "module:Net-x4-0123456789abcdef"
    assert _sr_store(caller, 4, "cpu").folder == home() / "sr" / "module_Net-x4-0123456789abcdef" / "x4" / \
        f"{TORCH}-cpu-t{torch.get_num_threads()}"
    assert _sr_model_dir(caller, 2) == home() / "sr" / "module_Net-x4-0123456789abcdef" / "x2"


def test_the_hr_feature_cache_folders_are_where_they_were(tmp_path, monkeypatch):
    from aesop_bench.metrics import scorers
    from aesop_bench.metrics.hrcache import HRCache
    from aesop_bench.metrics.registry import METRICS, MetricContext
    from aesop_bench.protocols import get_protocol

    d = _weights(tmp_path, monkeypatch, {"alexnet": b"a", "lpips_alex_v0.1": b"b", "aesop_ae": b"c",
                                         "vgg16": b"d", "dists_alpha_beta": b"e"})
    ctx = MetricContext(get_protocol("paper"), "cpu", {"ae": "aesop_ae"})
    lpips = home() / "hr_features" / f"lpips-alex-v0.1-whole-v2-{d['alexnet'][:12]}-{d['lpips_alex_v0.1'][:12]}"
    assert scorers._hr_cache(METRICS["lpips"], ctx).folder == lpips / f"{TORCH}-cpu"
    # DISTS's HR side in its packed layout (per-channel statistics, ReLU zeros as bits): a folder of its own
    dists = home() / "hr_features" / f"dists-vgg16-whole-v1-{d['vgg16'][:12]}-{d['dists_alpha_beta'][:12]}-ref2-sparse"
    assert scorers._hr_cache(METRICS["dists"], ctx).folder == dists / f"{TORCH}-cpu"
    assert HRCache(f"ae_psnr-{scorers.ae_tag('aesop_ae')}", "cpu").folder == \
        home() / "hr_features" / f"ae_psnr-ae_aesop_ae_{d['aesop_ae'][:12]}" / f"{TORCH}-cpu"


def test_the_feature_cache_folders_are_where_they_were(tmp_path, monkeypatch):
    from aesop_bench.metrics import distribution

    assert distribution._store("legacy_pytorch", "whole", "cpu") is None  # no weights: no cache
    d = _weights(tmp_path, monkeypatch, {"pt_inception": b"i", "inception_torchscript": b"t"})
    assert distribution._store("legacy_pytorch", "patch", "cpu").folder == home() / "features" / \
        "pt_inception-2015-12-05-pool3-v1" / f"w{d['pt_inception'][:12]}" / f"{TORCH}-cpu" / "patch"
    assert distribution._store("clean", "whole", "cpu").folder == home() / "features" / \
        "tf_inception-2015-12-05-torchscript-cleanresize-v1" / f"w{d['inception_torchscript'][:12]}" / \
        f"{TORCH}-cpu" / "whole"


def test_no_module_builds_a_cache_folder_by_hand():
    """Every cache's folder comes from cache.folder: no other module names a cache's root (the hashes memo's file
    excepted, which fileutil keeps below the core layer), nor sanitises a name itself."""
    roots = re.compile(r"\b(sr_cache_dir|features_dir|hr_features_dir|hashes_dir)\(")
    sanitiser = re.compile(r"isalnum\(\)|\.replace\(\":\", \"_\"\)")
    found = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).as_posix()
        text = path.read_text()
        if rel not in ("cache.py", "paths.py") and roots.search(text) and not (rel == "fileutil.py" and
                                                                             "hashes_dir()" in text):
            found.append(f"{rel}: {roots.search(text).group(0)}")
        if rel != "cache.py" and sanitiser.search(text):
            found.append(f"{rel}: {sanitiser.search(text).group(0)}")
    assert not found, found
