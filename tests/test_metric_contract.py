"""The contract every registered metric keeps, checked for each by being registered (as timm's tests/test_models.py
runs every model and torchmetrics' MetricTester every metric): its registry entry, its version string (the default
options' versions are known answers: stored run folders and caches are keyed by them), its options (a bad value is a
ConfigError naming the valid ones; every spelling of a value gives one version), its input checks (InputError,
before any network loads), its output (float64 ``(N,)`` on the CPU) and direction, and the equality of the metric
object's values with those a run folder stores.

Weight files that cannot be fetched here are deterministic stand-ins (``benchmarks/standins.py``), made once per
test process in a weights folder its tests share; the NIQE model is the real one. IQA-PyTorch's networks (MANIQA,
MUSIQ, CLIP-IQA, TOPIQ-NR, NIMA, PaQ-2-PiQ, LIQE, ARNIQA: seconds to minutes per image on a CPU, stand-ins of hundreds
of MB) are computed in the slow lane.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch

import aesop_bench as ab
from aesop_bench.errors import ConfigError, InputError
from aesop_bench.metrics import scorers
from aesop_bench.metrics.registry import METRICS, Kind, metric_options
from aesop_bench.protocols import get_protocol

HEAVY = {"maniqa", "musiq", "clipiqa", "topiq_nr", "nima", "paq2piq", "liqe", "arniqa"}
SLOWEST = {"maniqa"}  # 20 crops through a ViT-B/8: about 45 s per image on a CPU, whatever its size
COMPUTED = [pytest.param(n, marks=[pytest.mark.slow] if n in HEAVY else []) for n in METRICS]

# the versions of the default options with no weight file at hand, under the paper protocol; a run folder or a cache
# stored under one of them must still be found, so they never change
DEFAULT_VERSIONS = {
    "psnr": "psnr-y-v2",
    "ssim": "ssim-y-gauss11-v2",
    "lr_psnr": "lr-psnr-y-matlabbicubic-nocrop-v3",
    "lpips": "lpips-alex-v0.1-whole-v2+w=unavailable",
    "dists": "dists-vgg16-whole-v1+w=unavailable",
    "ae_psnr": "ae-psnr-y-float-v3+ae=aesop_ae:unavailable",
    "niqe": "niqe-live-yiq-round-v2+w=unavailable+crop0",
    "maniqa": "maniqa-koniq-pyiqa0.1.16-v1+w=unavailable",
    "musiq": "musiq-koniq-pyiqa0.1.16-v2+w=unavailable",
    "clipiqa": "clipiqa-rn50-pyiqa0.1.16-v1+split>None+w=unavailable",
    "topiq_nr": "topiq-nr-koniq-res50-pyiqa0.1.16-v1+w=unavailable",
    "nima": "nima-ava-inceptionresnetv2-pyiqa0.1.16-v1+w=unavailable",
    "paq2piq": "paq2piq-res18-pyiqa0.1.16-v1+w=unavailable",
    "liqe": "liqe-koniq-vitb32-pyiqa0.1.16-v1+w=unavailable",
    "arniqa": "arniqa-koniq-pyiqa0.1.16-v1+w=unavailable",
    "fid": "fid-whole299-v2+legacy_pytorch+w=unavailable",
    "pfid": "pfid-299patches-zeropad-v2+legacy_pytorch+w=unavailable",
}
# the same under the matlab protocol, where it differs (the protocol tags)
MATLAB_VERSIONS = {
    "lr_psnr": "lr-psnr-y-matlabbicubic-nocrop-v3+grayround",
    "ae_psnr": "ae-psnr-y-float-v3+ae=aesop_ae:unavailable+yfloat",
    "niqe": "niqe-live-yiq-round-v2+w=unavailable+crop4",
}
# bad values of each option type, and spellings of one value
BAD = {int: ["abc", "1e6x", [1, 2], True, -1, 1.5, "nan", "inf", {}], str: ["", "  ", 3, [1, 2], Path]}
SAME = {int: [1000, 1000.0, "1000", "1e3", " 1_000 "]}

_MADE: set[str] = set()  # the weights entries whose stand-ins this test process has made


@pytest.fixture(scope="session")
def standin_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("contract-weights")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)  # hundreds of MB


@pytest.fixture
def weights_for(standin_folder, shared_data, monkeypatch):
    """``weights_for(names)``: the weight files of these manifest entries in the weights folder this process's
    tests share (stand-ins made on first use, merged into one manifest)."""
    from benchmarks.standins import make_standins

    store, merged = standin_folder / "weights", standin_folder / "manifest.json"

    def use(names) -> None:
        monkeypatch.setenv("AESOP_BENCH_WEIGHTS", str(store))
        missing = tuple(n for n in names if n not in _MADE)
        if missing:
            monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", "")  # make_standins sets it: undone at the test's end
            made = make_standins(standin_folder / f"src{len(_MADE)}",
                                 shared_data / "weights" / "niqe" / "modelparameters.mat", which=missing)
            entries = json.loads(merged.read_text())["entries"] if merged.is_file() else []
            merged.write_text(json.dumps({"entries": entries + json.loads(made.read_text())["entries"]}))
            _MADE.update(missing)
        monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", str(merged))
    return use


@pytest.fixture
def options_for(standin_folder):
    """``options_for(name)``: the options the computed tests give a metric: ae_psnr a small auto-encoder (a
    checkpoint as the trainer exports it, its size in its metadata: the paper's AE takes seconds per 96x192 image on
    a CPU), clipiqa a split threshold that splits one image of three into quadrants (as the paper did on DRealSR)."""
    def get(name: str) -> dict:
        if name == "clipiqa":
            return {"split_above": 10_000}
        if name != "ae_psnr":
            return {}
        path = standin_folder / "ae-small.safetensors"
        if not path.is_file():
            from safetensors.torch import save_file

            from aesop_bench.models.archs.autoencoder_arch import AutoEncoder

            opts = {"num_feat": 16, "num_block": 1, "num_grow_ch": 4, "enc_blocks": 1}
            torch.manual_seed(0)
            save_file(AutoEncoder(**opts).state_dict(), str(path), metadata={"arch": '"ae"', "opts": json.dumps(opts)})
        return {"ae": str(path)}
    return get


def _crops(bench_root, names=("baby", "bird", "butterfly"), h=96, w=192) -> list[torch.Tensor]:
    """Set5 HR images cropped at the top-left: multiples of 12 (the paper protocol evaluates them whole), and two
    96x96 blocks for NIQE."""
    from aesop_bench.imageio import read_image

    return [read_image(bench_root / "Set5" / "HR" / f"{n}.png")[:, :h, :w].contiguous() for n in names]


def _blurred(img: torch.Tensor) -> torch.Tensor:
    """Bicubic down and up by 4 (MATLAB's), as 8 bits: what a weak SR model gives."""
    from aesop_bench.data.imresize import imresize

    return imresize(imresize(img, 0.25), 4.0)


def _pyiqa_table() -> dict:
    """IQA-PyTorch's metric table (``pyiqa/default_model_configs.py``), read without importing pyiqa."""
    found = importlib.util.find_spec("pyiqa")
    if found is None or not found.submodule_search_locations:
        pytest.skip("IQA-PyTorch (pyiqa) is not installed")
    path = Path(list(found.submodule_search_locations)[0]) / "default_model_configs.py"
    spec = importlib.util.spec_from_file_location("pyiqa_default_model_configs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DEFAULT_CONFIGS


# -- the registry entry and the version ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", METRICS)
def test_each_entry_is_complete_and_has_a_scorer(name):
    from aesop_bench import weights as wm

    spec = METRICS[name]
    assert spec.name == name and isinstance(spec.kind, Kind) and spec.kind == spec.kind.value  # stored as its text
    assert isinstance(spec.lower_better, bool) and spec.label and 0 <= spec.decimals <= 6 and spec.cpu_s_per_mpix > 0
    assert re.fullmatch(r"[a-z][a-z0-9.\-]*-v\d+", spec.version), spec.version
    assert name in scorers.MAKERS
    for n in spec.weights:
        wm.entry(n)  # a manifest entry
    for o in spec.options:  # each default is the option's canonical value
        assert o.canonical(o.default, name) == o.default and o.help and o.valid()


def test_directions_and_kinds_agree_with_iqa_pytorch():
    """The direction of every metric, and the kind of those IQA-PyTorch has, are those of its table (a metric it
    lacks is compared with its family's: AE-PSNR and LR-PSNR with PSNR, pFID with FID)."""
    table = _pyiqa_table()
    family = {"ae_psnr": "psnr", "lr_psnr": "psnr", "pfid": "fid"}
    for name, spec in METRICS.items():
        theirs = table[family.get(name, name)]
        assert spec.lower_better == theirs.get("lower_better", False), name
        if name in table and spec.kind in (Kind.FULL_REFERENCE, Kind.NO_REFERENCE):
            assert theirs["metric_mode"] == {Kind.FULL_REFERENCE: "FR", Kind.NO_REFERENCE: "NR"}[spec.kind], name


@pytest.mark.parametrize("name", METRICS)
def test_default_versions_are_the_stored_ones(name):
    spec, version = METRICS[name], DEFAULT_VERSIONS[name]
    assert ab.metric(name).version == spec.version_for({}) == spec.version_for(None, get_protocol("paper")) == version
    assert ab.metric(name, protocol="matlab").version == MATLAB_VERSIONS.get(name, version)
    # the form: the definition's version, then non-empty tags without spaces
    assert version.startswith(spec.version) and all(re.fullmatch(r"\S+", t) for t in version.split("+"))


# -- options ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", METRICS)
def test_a_bad_option_value_is_refused_naming_the_valid_ones(name):
    spec = METRICS[name]
    with pytest.raises(ConfigError, match=f"metric {name!r} takes no option nope; its options: "
                                          f"{', '.join(o.name for o in spec.options) or 'none'}"):
        ab.metric(name, nope=1)
    for o in spec.options:
        bad = BAD[o.type] + (["cleen", "LEGACY-PYTORCH"] if o.choices else [])
        for value in bad:
            for make in (lambda: ab.metric(name, **{o.name: value}), lambda: metric_options({name: {o.name: value}}),
                         lambda: spec.version_for({o.name: value})):
                with pytest.raises(ConfigError) as err:
                    make()
                msg = str(err.value)
                assert f"metric {name!r}" in msg and f"{o.name}={value!r}" in msg and o.valid() in msg, msg
    if name == "fid":  # the reviewer's case: named with every valid mode, before any feature is computed
        with pytest.raises(ConfigError, match=r"fid_mode='cleen' is not valid; give one of legacy_pytorch, clean$"):
            ab.metric("fid", fid_mode="cleen")


@pytest.mark.parametrize("name", [n for n, s in METRICS.items() if s.options])
def test_every_spelling_of_a_value_gives_one_version(name):
    spec = METRICS[name]
    for o in spec.options:
        if o.choices:
            groups = [[c, c.upper(), f" {c} "] for c in o.choices]
        elif o.type is int:
            groups = [SAME[int]]
        else:  # a weights name or a checkpoint path, as text or a path
            groups = [[o.default, Path(o.default)]]
        for group in groups:
            canonical = {o.canonical(v, name) for v in group}
            assert len(canonical) == 1, (o.name, group, canonical)
            versions = {ab.metric(name, **{o.name: v}).version for v in group}
            versions |= {spec.version_for(metric_options({name: {o.name: v}})[name]) for v in group}
            assert len(versions) == 1, (o.name, group, versions)
        # the default, given or not, is one version too
        assert ab.metric(name, **{o.name: None}).version == ab.metric(name).version == \
            spec.version_for({o.name: o.default})
    if name == "clipiqa":  # what the command line's YAML reads as text
        assert metric_options({"clipiqa": {"split_above": "1e6"}}) == {"clipiqa": {"split_above": 1_000_000}}
        assert "+split>1000000+" in ab.metric("clipiqa", split_above=1e6).version


# -- inputs ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", METRICS)
def test_bad_inputs_are_refused_before_any_network_loads(name):
    m = ab.metric(name)
    kind = m.spec.kind
    x = torch.randint(0, 256, (2, 3, 24, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    nan = x.float() / 255
    nan[0, 0, 0, 0] = math.nan
    bad = [(x.int(), r"dtype torch\.int32; give uint8 \(0-255\) or float in \[0, 1\]"),
           (x.float(), r"must lie in \[0, 1\], got values in \[\d+, \d+\]; divide 0-255 floats by 255"),
           (nan, r"1 non-finite value\(s\) \(NaN or inf\)"),
           (x[0, 0], r"must be \(N, C, H, W\) or \(C, H, W\), got shape \(24, 24\)"),
           (x[:, :2], r"has 2 channels"),
           (x[:, :, :0], r"is empty"),
           (x.numpy(), r"must be a torch\.Tensor, got ndarray" if kind != Kind.DISTRIBUTION else
            r"sr must be a non-empty \(N, C, H, W\) tensor or a list")]
    for value, msg in bad:
        with pytest.raises(InputError, match=msg) as err:
            m(value, x)
        assert str(err.value).startswith(name), err.value
        if kind in (Kind.FULL_REFERENCE, Kind.DISTRIBUTION):  # the reference is checked as well
            with pytest.raises(InputError, match=msg.replace("sr must", "hr must")):
                m(x, value)
    calls = {
        Kind.FULL_REFERENCE: [((x,), "is a full-reference metric: give hr"),
                              ((x, x[..., :12]), r"sr and hr shapes differ: \(2, 3, 24, 24\) vs \(2, 3, 24, 12\)")],
        Kind.LR_REFERENCE: [((x,), "give lr, or hr to make it from"),
                            ((x, None, x), r"lr \(2, 3, 24, 24\) does not match sr \(2, 3, 24, 24\) at x4")],
        Kind.NO_REFERENCE: [],
        Kind.DISTRIBUTION: [((x,), "compares two sets of images"), ((x, x, x), "compares two sets of images"),
                            (([], x), "must be a non-empty")],
    }[kind]
    for args, msg in calls:
        with pytest.raises(InputError, match=msg):
            m(*args)
    assert m._scorer is None  # refused before any network was built


# -- outputs and values -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", COMPUTED)
def test_output_is_float64_per_image_on_the_cpu_and_better_goes_the_declared_way(name, weights_for, options_for,
                                                                                  bench_root):
    spec, options = METRICS[name], options_for(name)
    weights_for(spec.weights if "ae" not in options else ())
    m = ab.metric(name, **options)
    hr = torch.stack(_crops(bench_root, ("baby", "bird")))
    worse = _blurred(hr)
    if spec.kind == Kind.NO_REFERENCE:
        worse = (hr.float() + torch.randn(hr.shape, generator=torch.Generator().manual_seed(0)) * 40) \
            .round().clamp(0, 255).to(torch.uint8)
    if spec.kind == Kind.DISTRIBUTION:
        same, far = m(list(hr), list(hr)), m(list(worse), list(hr))
        assert isinstance(same, float) and isinstance(far, float) and math.isfinite(far)
        # a set against itself is at distance 0 (a stand-in Inception's features are tiny: so are its distances)
        assert far > 0 and abs(same) < 1e-6 * far, (same, far)
        return
    out = m(worse, hr)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.shape == (2,)
    assert out.device.type == "cpu" and bool(torch.isfinite(out).all())
    if name not in SLOWEST:
        one = m(worse[1], hr[1])  # one image, as (C, H, W), is a batch of one (a network's float32 sums may differ)
        assert one.shape == (1,) and torch.allclose(one, out[1:], rtol=1e-5, atol=0)
    if spec.kind == Kind.NO_REFERENCE and spec.weights and name != "niqe":
        return  # a stand-in network's scores have no direction
    best = m(hr) if spec.kind == Kind.NO_REFERENCE else m(hr, hr)  # lr_psnr: the LR made from hr
    assert bool(((best < out) if spec.lower_better else (best > out)).all()), (best, out)


@pytest.mark.parametrize("name", COMPUTED)
def test_the_metric_object_gives_the_values_a_run_folder_stores(name, weights_for, options_for, bench_root, tmp_path):
    """`ab.evaluate` of a folder of SR images into a run folder, then the metric object on the same images: every
    stored per-image value (or the set's value of FID and pFID), to the last bit, under the same version."""
    from aesop_bench.imageio import write_image

    spec, options = METRICS[name], options_for(name)
    weights_for(spec.weights if "ae" not in options else ())
    hr_dir, sr_dir = tmp_path / "hr", tmp_path / "sr"
    hr_dir.mkdir(), sr_dir.mkdir()
    names = ("baby", "bird", "butterfly")[:1 if name in SLOWEST else 3]
    hrs = dict(zip(names, _crops(bench_root, names)))
    srs = {n: _blurred(h) for n, h in hrs.items()}
    for n in names:
        write_image(hr_dir / f"{n}.png", hrs[n])
        write_image(sr_dir / f"{n}.png", srs[n])
    out = tmp_path / "run"
    ab.evaluate(str(sr_dir), sets=str(hr_dir), metrics=name, out=out, download=False,
                metric_options={name: options} if options else None)
    m = ab.metric(name, **options)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metric_versions"][name] == m.version
    if spec.kind == Kind.DISTRIBUTION:
        assert m(list(srs.values()), list(hrs.values())) == summary["sets"][str(hr_dir)]["metrics"][name]
        return
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert sorted(r["image"] for r in rows) == sorted(names) and {r["version"] for r in rows} == {m.version}
    for r in rows:
        assert float(m(srs[r["image"]], hrs[r["image"]])[0]) == float(r["value"]), r
