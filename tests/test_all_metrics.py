"""`aesop-bench eval --metrics all` end to end, every weight file in the cache (stand-ins where the real
files cannot be fetched here, registered through a manifest), each metric recorded with its version."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from PIL import Image

from aesop_bench.cli import main
from aesop_bench.metrics.registry import METRICS, Kind
from benchmarks.standins import make_standins


def _standins_and_mini_set(tmp_path, shared_data, bench_root, h, w):
    """Stand-ins for every metric's weights, and two real Set5 images cropped small so that the heavy networks
    stay quick on a CPU."""
    needs = tuple(sorted({n for spec in METRICS.values() for n in spec.weights}))
    make_standins(tmp_path / "standins", shared_data / "weights" / "niqe" / "modelparameters.mat", which=needs)
    folder = tmp_path / "mini"
    (folder / "HR").mkdir(parents=True)
    for name in ("baby", "bird"):
        arr = np.array(Image.open(bench_root / "Set5" / "HR" / f"{name}.png"))[:h, :w]
        Image.fromarray(arr).save(folder / "HR" / f"{name}.png")
    return folder


@pytest.mark.slow
def test_eval_all_metrics_and_metric_objects_equal_the_stored_values(tmp_path, shared_data, bench_root, capsys):
    """`eval --metrics all` stores every metric, finite, with its version; ``ab.metric(name)(sr, hr)`` on the
    images the run wrote gives that run's stored value, for every metric; FID and pFID on the two sets give the
    stored set-level value."""
    import torch

    import aesop_bench as ab
    from aesop_bench.imageio import read_image

    # multiples of 12: the paper's protocol evaluates them whole
    folder = _standins_and_mini_set(tmp_path, shared_data, bench_root, 192, 228)
    out = tmp_path / "run"
    rc = main(["eval", "--model", "bicubic", "--sets", str(folder), "--metrics", "all", "--out", str(out),
               "--quiet", "--save-sr", "--clipiqa-split-above", "20000"])
    assert rc == 0, capsys.readouterr().err
    stored = {(r["image"], r["metric"]): float(r["value"]) for r in csv.DictReader(open(out / "per_image.csv"))}
    summary = json.loads((out / "summary.json").read_text())
    got = summary["sets"][str(folder)]["metrics"]
    assert set(got) == set(METRICS) == set(summary["metric_versions"])
    assert all(math.isfinite(v) for k, v in got.items()), got
    # stand-in weights are not the published files: their hash is in every network metric's version
    assert "+split>20000+w=" in summary["metric_versions"]["clipiqa"]
    assert all("+w=" in summary["metric_versions"][m] for m in ("lpips", "dists", "fid", "maniqa", "musiq"))
    assert "w=" not in summary["metric_versions"]["niqe"]  # the real NIQE model, as published
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    per_image = {m for m, s in METRICS.items() if s.kind != Kind.DISTRIBUTION}
    assert {r["metric"] for r in rows} == per_image and len(rows) == 2 * len(per_image)
    assert all(r["version"] == summary["metric_versions"][r["metric"]] for r in rows)
    from aesop_bench.data.sets import sr_subfolder

    srs = {n: read_image(out / "sr" / sr_subfolder(str(folder)) / f"{n}.png") for n in ("baby", "bird")}
    hrs = {n: read_image(folder / "HR" / f"{n}.png") for n in ("baby", "bird")}
    for name, spec in METRICS.items():
        options = {"split_above": 20000} if name == "clipiqa" else {}
        m = ab.metric(name, **options)
        assert m.version == summary["metric_versions"][name]
        if spec.kind == Kind.DISTRIBUTION:
            got = m([srs[n] for n in srs], [hrs[n] for n in hrs])
            assert got == summary["sets"][str(folder)]["metrics"][name], name
            continue
        if name == "maniqa":  # 45 s per image on a CPU (20 crops through a ViT-B/8): test_iqa compares the
            continue  # metric object with IQA-PyTorch, and the run's values came through the same object
        for n in srs:
            # floats in [0, 1] are quantised as SR outputs are: the same value as the uint8 image
            sr = srs[n] if name != "lpips" else srs[n].float() / 255
            got = float(m(sr, hrs[n])[0])
            assert got == stored[(n, name)], (name, n, got, stored[(n, name)])
    assert isinstance(ab.metric("lpips")(torch.zeros(3, 32, 32), torch.zeros(3, 32, 32)), torch.Tensor)
