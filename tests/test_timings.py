"""Where a run's time goes: each set's model and metric seconds per HR megapixel, recorded apart from the values
(the summary's ``timings``), printed by ``eval --timings``, never a key of what is stored, and this machine's
measured costs kept for ``reproduce --dry-run``."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from aesop_bench.cli import main
from aesop_bench.evaluation import timings as tm


def _set5_hr_mpix(bench_root, modcrop: int) -> float:
    """Set5's HR megapixels after cropping to a multiple of ``modcrop``, from the files' sizes."""
    total = 0
    for f in sorted((bench_root / "Set5" / "HR").glob("*.png")):
        with Image.open(f) as im:
            w, h = im.size
        total += (h // modcrop * modcrop) * (w // modcrop * modcrop)
    return total / 1e6


def test_eval_records_prints_and_never_keys_on_timings(bench_root, tmp_path, capsys, monkeypatch):
    """Every part of a run is timed per set on the images it computed (Set5: 5 images, the HR megapixels after
    the paper protocol's mod-12 crop); `--timings` prints them; the values' part of the summary holds none. A
    rerun whose stored timings differ (here: edited to absurd figures) computes nothing, stores the same values and
    keeps the stored timings as they are."""
    from aesop_bench.evaluation.runfolder import RunFolder

    out = tmp_path / "run"
    args = ["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr,ssim", "--out", str(out), "--quiet",
            "--no-download"]
    assert main([*args, "--timings"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    timed = summary["timings"]["set5"]
    mpix = _set5_hr_mpix(bench_root, 12)
    for part in [timed["model"], timed["metrics"]["psnr"], timed["metrics"]["ssim"]]:
        assert part["images"] == 5 and part["mpix"] == pytest.approx(mpix, abs=1e-5)
        assert part["seconds"] > 0 and part["s_per_mpix"] > 0 and part["on"].startswith("cpu: ")
        assert part["steady_mpix"] < part["mpix"]  # the first call of each part (building it) left out of the rate
    lines = printed.splitlines()
    table = lines[lines.index("seconds per HR megapixel (MP: megapixels timed)"):]
    assert table[1].split() == ["set", "model", "psnr", "ssim", "total", "s"]
    line = table[2]
    assert f"({mpix:.2f} MP)" in line and len(line.split("MP)")) == 4  # model, psnr, ssim
    assert not any("timing" in k or "seconds" in k for e in summary["sets"].values() for k in e)
    # stored timings that differ are not a reason to compute anything again
    assert RunFolder(out).read_timings() == summary["timings"]
    summary["timings"]["set5"]["model"]["seconds"] = 1e9
    (out / "summary.json").write_text(json.dumps(summary))
    rows = (out / "rows.jsonl").read_bytes()
    from aesop_bench.metrics.metric import Metric
    from aesop_bench.models.bicubic import Bicubic

    monkeypatch.setattr(Metric, "score", lambda *a: pytest.fail("a metric was computed again"))
    monkeypatch.setattr(Bicubic, "__call__", lambda *a: pytest.fail("the model ran again"))
    assert main([*args, "--timings"]) == 0
    again = json.loads((out / "summary.json").read_text())
    assert (out / "rows.jsonl").read_bytes() == rows
    assert again["sets"] == summary["sets"] and again["timings"]["set5"]["model"]["seconds"] == 1e9
    assert f"({mpix:.2f} MP)" in capsys.readouterr().out


def test_timings_of_one_device_add_up_and_another_device_replaces_them():
    a = {"set5": {"model": {"seconds": 2.0, "mpix": 1.0, "images": 5, "steady_seconds": 1.0, "steady_mpix": 0.8,
                            "on": "cpu"},
                  "metrics": {"psnr": {"seconds": 0.1, "mpix": 1.0, "images": 5, "on": "cpu"}}}}
    b = {"set5": {"model": {"seconds": 1.0, "mpix": 0.5, "images": 2, "steady_seconds": 1.0, "steady_mpix": 0.5,
                            "on": "cpu"},
                  "metrics": {"psnr": {"seconds": 0.01, "mpix": 1.0, "images": 5, "on": "gpu"}}},
         "set14": {"metrics": {"ssim": {"seconds": 3.0, "mpix": 2.0, "images": 14, "on": "cpu"}}}}
    got = tm.merge(a, b)
    model = got["set5"]["model"]
    assert (model["seconds"], model["mpix"], model["images"]) == (3.0, 1.5, 7)
    assert model["s_per_mpix"] == pytest.approx(2.0 / 1.3)  # the steady calls: (1 + 1) s over (0.8 + 0.5) MP
    assert got["set5"]["metrics"]["psnr"] == b["set5"]["metrics"]["psnr"]  # measured elsewhere: replaced
    assert got["set14"] == b["set14"] and a["set5"]["model"]["seconds"] == 2.0  # the stored dict is not changed


def test_a_run_adds_this_machines_costs_under_a_lock(tmp_path):
    """Two runs' timings add up per key in this machine's record; a model's time counts only for a zoo
    architecture in float32, untiled."""
    path = tmp_path / "run_costs.json"
    run = {"set5": {"model": {"seconds": 10.0, "mpix": 1.0, "steady_seconds": 8.0, "steady_mpix": 0.5},
                    "metrics": {"psnr": {"seconds": 0.2, "mpix": 1.0, "steady_seconds": 0.0, "steady_mpix": 0.0}}}}
    tm.add_run_costs(run, "model:rrdb", "cpu: Test CPU, 2 cores", "2.14.1", path)
    tm.add_run_costs(run, None, "cpu: Test CPU, 2 cores", "2.14.1", path)
    (rec,) = tm.run_cost_records(path)
    assert rec["runs"] == 2 and rec["machine"] == "cpu: Test CPU, 2 cores"
    assert tm.measured_rates(rec) == {"model:rrdb": pytest.approx(16.0), "psnr": pytest.approx(0.2)}
    assert tm.cost_key("swinir[embed_dim=180]-x4-0123abcd") == "model:swinir"
    assert tm.cost_key("swinir[]-x4-0123abcd-bf16") is None and tm.cost_key("recording-bicubic-x4") is None
