"""The Python API: ``ab.evaluate`` on a network in memory equals the command line on the same weights saved to
disk; metric objects validate their inputs; runs as DataFrames; ``metrics list`` and ``results``."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

import aesop_bench as ab
from aesop_bench.cli import main
from aesop_bench.errors import AesopBenchError
from aesop_bench.models.archs.rrdbnet_arch import RRDBNet
from aesop_bench.train.checkpoint import save_weights

OPTS = {"num_feat": 8, "num_block": 1, "num_grow_ch": 8}


def _small_rrdb() -> RRDBNet:
    torch.manual_seed(7)
    net = RRDBNet(scale=4, **OPTS)
    with torch.no_grad():
        net.conv_last.bias.fill_(0.4)  # outputs inside [0, 1], so quantisation does not hide differences
    return net


def test_in_memory_network_equals_the_cli_on_its_checkpoint(bench_root, tmp_path, capsys):
    net = _small_rrdb().train()
    calls = []
    net.register_forward_hook(lambda *a: calls.append(1))
    res = ab.evaluate(net, sets="set5,set14", metrics="psnr,ssim,lr_psnr", data_root=bench_root, download=False)
    assert net.training, "the module's training mode is restored"
    assert len(calls) == 19
    ckpt = tmp_path / "small.safetensors"
    save_weights(net, ckpt, {"arch": "rrdb", "opts": OPTS})
    out = tmp_path / "cli"
    assert main(["eval", "--model", str(ckpt), "--arch", "rrdb", "--sets", "set5,set14", "--metrics",
                 "psnr,ssim,lr_psnr", "--out", str(out), "--quiet", "--data-root", str(bench_root)]) == 0, \
        capsys.readouterr().err
    cli = {(r["set"], r["image"], r["metric"]): float(r["value"]) for r in csv.DictReader(open(out / "per_image.csv"))}
    api = {(r.set, r.image, r.metric): r.value for r in res.per_image.itertuples()}
    assert len(api) == 19 * 3 and api == cli  # exactly, per image
    assert res.summary["sets"] == json.loads((out / "summary.json").read_text())["sets"]
    # nothing vouches for a module's identity: a second evaluation runs it again ...
    again = ab.evaluate(net, sets="set5", metrics="psnr", data_root=bench_root, download=False)
    assert len(calls) == 24 and again.mean("set5", "psnr") == res.mean("set5", "psnr")
    # ... unless cache=True declares that its state dict determines it: then the second call reads the SR cache
    ab.evaluate(net, sets="set5", metrics="psnr", data_root=bench_root, download=False, cache=True)
    cached = ab.evaluate(net, sets="set5", metrics="psnr", data_root=bench_root, download=False, cache=True)
    assert len(calls) == 29 and cached.mean("set5", "psnr") == res.mean("set5", "psnr")
    with torch.no_grad():
        net.conv_first.weight.add_(0.01)
    ab.evaluate(net, sets="set5", metrics="psnr", data_root=bench_root, download=False, cache=True)
    assert len(calls) == 34


def test_callables_folders_and_run_folders(bench_root, shared_data, tmp_path):
    import torch.nn.functional as F

    from aesop_bench.paths import sr_cache_dir

    def nearest(lr):
        return F.interpolate(lr, scale_factor=4, mode="nearest")

    res = ab.evaluate(nearest, sets="set5", metrics="psnr", data_root=bench_root, download=False)
    assert not sr_cache_dir().exists() or not any(sr_cache_dir().rglob("*.png")), "no identity: nothing cached"
    out = tmp_path / "run"
    named = ab.evaluate(nearest, sets="set5", metrics="psnr", data_root=bench_root, download=False, out=out,
                        identity="nearest-x4", name="nearest")
    assert any(sr_cache_dir().rglob("*.png"))
    assert named.mean("set5", "psnr") == res.mean("set5", "psnr")
    frame = ab.load_run(out)
    assert frame.attrs["summary"]["model"]["label"] == "nearest"
    assert list(frame.columns) == ["set", "image", "metric", "value", "version", "protocol", "set_complete"]
    assert frame["value"].mean() == pytest.approx(res.mean("set5", "psnr"), abs=1e-12)
    folder = ab.evaluate(shared_data / "results" / "RDN", sets="set5", metrics="psnr,ssim", data_root=bench_root,
                         download=False)
    assert folder.mean("set5", "psnr") == pytest.approx(32.47, abs=0.01)
    with pytest.raises(AesopBenchError, match="cannot evaluate a int"):
        ab.evaluate(3, sets="set5", data_root=bench_root)


def test_metric_inputs_are_validated():
    m = ab.metric("psnr")
    x = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
    cases = [
        ((x.int(), x), "dtype torch.int32"),
        ((x.float(), x), r"float sr must lie in \[0, 1\], got values in \[\d+, 25\d\]; divide 0-255 floats by 255"),
        ((x[:, :2], x[:, :2]), "has 2 channels"),
        ((x[0, 0], x[0, 0]), r"must be \(N, C, H, W\) or \(C, H, W\)"),
        ((x, x[..., :8]), "shapes differ"),
        ((x,), "full-reference metric: give hr"),
        (([1, 2], x), "must be a torch.Tensor, got list"),
    ]
    for args, msg in cases:
        with pytest.raises(AesopBenchError, match=msg):
            m(*args)
    with pytest.raises(AesopBenchError, match="unknown metric 'psnrr'"):
        ab.metric("psnrr")
    with pytest.raises(AesopBenchError, match="takes no option mode"):
        ab.metric("fid", mode="clean")
    with pytest.raises(AesopBenchError, match="give lr, or hr"):
        ab.metric("lr_psnr")(x)
    # float inputs are quantised as the protocol quantises SR outputs; grayscale is replicated under basicsr
    f = torch.rand(2, 1, 24, 24)
    q = torch.round(f * 255).to(torch.uint8)
    assert torch.equal(m(f, q), m(q.expand(2, 3, 24, 24), q))
    # lr_psnr without lr makes it from hr by MATLAB bicubic: a perfect downscale gives the 1e-8 ceiling
    assert ab.metric("lr_psnr")(q, q).shape == (2,)


def test_metrics_list_and_results_command(bench_root, tmp_path, capsys):
    assert main(["metrics", "list"]) == 0
    text = capsys.readouterr().out
    from aesop_bench.metrics.registry import METRICS

    for name, spec in METRICS.items():
        assert any(line.startswith(name + " ") and spec.version in line for line in text.splitlines()), name
    assert "alexnet:missing" in text and "option of clipiqa: split_above" in text
    assert main(["metrics", "list", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["better"] for r in listed}["lpips"] == "lower"

    run = tmp_path / "run"
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr,ssim", "--out", str(run),
                 "--quiet", "--data-root", str(bench_root)]) == 0
    capsys.readouterr()
    assert main(["results", str(run)]) == 0
    printed = capsys.readouterr().out
    stored = (run / "per_image.csv").read_text().splitlines()
    assert printed.splitlines() == [stored[0] + ",set_complete"] + [line + ",true" for line in stored[1:]]
    assert main(["results", str(run), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 10 and {r["metric"] for r in rows} == {"psnr", "ssim"}
    # every digit of the stored value (pandas' to_json would round to 10 decimals)
    assert [repr(r["value"]) for r in rows] == [line.split(",")[3] for line in stored[1:]]
    assert main(["results", str(run), "--format", "parquet"]) == 2
    assert "--out" in capsys.readouterr().err
    pq = tmp_path / "r.parquet"
    assert main(["results", str(run), "--format", "parquet", "--out", str(pq)]) == 0
    back = pd.read_parquet(pq)
    assert back.equals(ab.load_run(run).reset_index(drop=True).pipe(lambda f: f.set_axis(f.columns, axis=1)))
    assert main(["results", str(tmp_path)]) == 2
    assert "no per_image.csv" in capsys.readouterr().err


def test_determinism_flags_are_restored(bench_root):
    torch.backends.cudnn.benchmark = True
    try:
        ab.evaluate("bicubic", sets="set5", metrics="psnr", data_root=bench_root, download=False)
        assert torch.backends.cudnn.benchmark is True
    finally:
        torch.backends.cudnn.benchmark = False


def test_version_strings_of_stored_runs_are_unchanged(monkeypatch, tmp_path):
    """Runs written before metrics declared their options stored these versions; with the published weights they
    must still match. Weight files that are not the published ones add their hash."""
    import hashlib

    from aesop_bench import weights as wm
    from aesop_bench.metrics import version
    from aesop_bench.metrics.registry import METRICS
    from aesop_bench.paths import weights_dir

    weights_dir().mkdir(parents=True)
    (weights_dir() / "p.bin").write_bytes(b"published")
    (weights_dir() / "o.bin").write_bytes(b"other")
    extra = tmp_path / "m.json"
    extra.write_text(json.dumps({"entries": [
        {"name": "pub", "file": "p.bin", "urls": [], "sha256": hashlib.sha256(b"published").hexdigest()},
        {"name": "other", "file": "o.bin", "urls": [], "sha256": hashlib.sha256(b"else").hexdigest()}]}))
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", str(extra))
    monkeypatch.setattr(wm, "is_published", lambda name, digest: digest == hashlib.sha256(
        {"pub": b"published", "other": b"else"}[name]).hexdigest())  # as if the package published these two
    assert version.unpublished_weights_tag(["pub"]) == ""
    assert version.unpublished_weights_tag(["pub", "other"]) == \
        f"w={hashlib.sha256(b'published').hexdigest()[:12]}-{hashlib.sha256(b'other').hexdigest()[:12]}"
    assert version.unpublished_weights_tag(["pub", "clip_rn50"]) == "w=unavailable"
    assert ab.metric("lpips").version == "lpips-alex-v0.1-whole-v2+w=unavailable"  # no weights here
    monkeypatch.setattr(version, "unpublished_weights_tag", lambda names: "")  # as with the published files
    assert METRICS["clipiqa"].version_for({}) == "clipiqa-rn50-pyiqa0.1.16-v1+split>None"
    assert METRICS["clipiqa"].version_for({"split_above": 40000}) == "clipiqa-rn50-pyiqa0.1.16-v1+split>40000"
    assert METRICS["fid"].version_for({}) == "fid-whole299-v2+legacy_pytorch"
    assert METRICS["pfid"].version_for({"fid_mode": "clean"}) == "pfid-299patches-zeropad-v2+clean"
    assert METRICS["psnr"].version_for({}) == "psnr-y-v2"
    assert ab.metric("lpips").version == "lpips-alex-v0.1-whole-v2"


def test_evaluate_without_out_computes_in_memory_and_writes_nothing(bench_root, tmp_path):
    """`ab.evaluate(module)` without out=, as a training loop calls it: after a first call (which may record file
    hashes), further calls make no write system call at all (/proc/self/io), leave no file anywhere they could
    write, and give the values an `out=` run stores."""
    import subprocess
    import sys

    code = """
import os, sys, torch
import aesop_bench as ab
def io():
    with open('/proc/self/io') as f:
        return {k: int(v) for k, v in (line.split(': ') for line in f)}
net = torch.nn.Sequential(torch.nn.Upsample(scale_factor=4, mode='bicubic'))
first = ab.evaluate(net, sets='set5', metrics=['psnr', 'ssim'], download=False)
before = io()
for _ in range(3):
    again = ab.evaluate(net, sets='set5', metrics=['psnr', 'ssim'], download=False)
after = io()
stored = ab.evaluate(net, sets='set5', metrics=['psnr', 'ssim'], download=False, out=sys.argv[1])
same = again.per_image.sort_values(['image', 'metric']).reset_index(drop=True).equals(
    stored.per_image.sort_values(['image', 'metric']).reset_index(drop=True))
print('WRITES', after['syscw'] - before['syscw'], 'SAME', same, again.mean('set5', 'psnr') == stored.mean('set5', 'psnr'))
"""
    home, tmp, cwd = tmp_path / "home", tmp_path / "tmp", tmp_path / "cwd"
    for d in (home, tmp, cwd):
        d.mkdir()
    env = dict(os.environ, AESOP_BENCH_HOME=str(home), TMPDIR=str(tmp), AESOP_BENCH_DATA=str(bench_root),
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "WRITES 0 SAME True True" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert not any(tmp.iterdir()) and not any(cwd.iterdir())
