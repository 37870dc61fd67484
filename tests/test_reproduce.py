"""``aesop-bench reproduce`` end to end with no network: sets and stand-in weights served from 127.0.0.1, a
reduced recipe (two RRDB models, Set5 and Set14, PSNR and SSIM), a kill midway, a rerun that computes nothing,
a dry run that touches nothing, and a recipe whose set has no pinned source."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from aesop_bench.cli import main
from aesop_bench.errors import AesopBenchError
from aesop_bench.report.recipes import RECIPES, load_recipe

RECIPE = """name: table1_reduced
layout: table1
models: {RRDB: [esrgan, aesop_rrdb]}
sets: [set5, set14]
metrics: [psnr, ssim]
"""


@pytest.fixture()
def served(server, mirror_sets, tmp_path, monkeypatch):
    """Set5 and Set14 on the local server, and stand-in RRDB weights for esrgan (published hash) and aesop_rrdb
    (no hash: trusted on first download once it loads as an RRDBNet)."""
    from aesop_bench.models.archs.rrdbnet_arch import RRDBNet

    from aesop_bench.models.zoo import ZOO

    from .small_zoo import SMALL_RRDB, small_entries

    www, url, _ = server
    mirror_sets(["set5", "set14"])
    for name, entry in small_entries().items():  # small RRDBs under the zoo's names (tests/small_zoo.py)
        monkeypatch.setitem(ZOO, name, entry)
    entries = []
    torch.manual_seed(0)
    # one stand-in network under both names: the same weights make the same model identity, so the SR cache
    # runs it once per image for both models
    sd = {k: v * 0.2 if v.is_floating_point() else v for k, v in RRDBNet(**SMALL_RRDB).state_dict().items()}
    torch.save({"params_ema": sd}, tmp_path / "standin.pth")
    for name, file, pinned in [("esrgan_official", "RRDB_ESRGAN_x4.pth", True),
                               ("aesop_rrdb", "AESOP_RRDB128_290K.pth", False)]:
        (www / file).write_bytes((tmp_path / "standin.pth").read_bytes())
        entries.append({"name": name, "file": file, "urls": [f"{url}/{file}"], "used_by": ["tests"],
                        "sha256": hashlib.sha256((www / file).read_bytes()).hexdigest() if pinned else None})
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"entries": entries}))
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", str(manifest))
    monkeypatch.setenv("AESOP_BENCH_GITHUB_RAW", url)
    recipe = tmp_path / "table1_reduced.yaml"
    recipe.write_text(RECIPE)
    return recipe


def _table(out):
    return (out / "table1_reduced.md").read_text()


def test_shipped_recipes_cover_the_papers_tables():
    assert set(RECIPES) == {f"table{i}" for i in range(1, 10)}
    assert RECIPES["table6"].eval_options("drealsr") == {"clipiqa": {"split_above": 1_000_000}}
    assert load_recipe("table1").model_names("swinir") == ["ldl_swinir", "aesop_swinir"]
    with pytest.raises(AesopBenchError, match="table1, table2, .*table9, all, or a recipe file"):
        load_recipe("table10")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_paper_cell_is_a_model_a_training_or_named_unavailable(name):
    """Each of the paper's cells of a table (the paper-tables CSV, typed from the paper) is a zoo model's of the
    recipe, a method a shipped training config produces, or a method the recipe names as not reproducible, with
    the reason; and every training the recipe names is a shipped config with valid overrides."""
    from aesop_bench.report.reproduce import paper_cells, train_command
    from aesop_bench.report.tables import load_paper
    from aesop_bench.train.config import shipped_configs

    recipe = RECIPES[name]
    cells = paper_cells(recipe)
    assert cells["unmapped"] == 0
    assert sum(cells.values()) == sum(1 for k in load_paper() if k[0] == name) > 0
    for method, configs in recipe.train.items():
        for spec in configs:
            assert spec.split()[0] in shipped_configs()
            assert train_command(spec).startswith("aesop-bench train ")
    assert all(len(why) > 20 for why in recipe.unavailable.values())


def test_the_public_baselines_and_the_never_released_columns_in_the_plan(tmp_path):
    """Table 6 computes BSRGAN and Real-ESRGAN (public release files with published hashes); Table 3 names the
    trainings of its ablations with their GPU time instead of a number; Table 8 names CAL-GAN with the paper's own
    words on its weights."""
    from aesop_bench.report.reproduce import plan

    six = plan(RECIPES["table6"], None, tmp_path / "data", tmp_path / "out")
    fetched = {w: u for w, u, _ in six.weight_downloads}
    assert fetched["bsrgan"] == "https://github.com/cszn/KAIR/releases/download/v1.0/BSRGAN.pth"
    assert fetched["realesrgan_x4plus"].endswith("/v0.1.0/RealESRGAN_x4plus.pth")
    assert not any("not reproducible" in line for line in six.lines("cpu"))
    # the real-world AESOP network is public, and its weights are not here: the plan names its two trainings too
    assert any(line.startswith("  or train real_aesop_rrdb here: `aesop-bench train ae --config real_ae_rrdb`, then "
                               "`aesop-bench train sr --config real_aesop_rrdb --opt ae=runs/train/real_ae_rrdb/"
                               "ae_ema.safetensors` (about ") for line in six.lines("cpu"))
    three = "\n".join(plan(RECIPES["table3"], None, tmp_path / "data", tmp_path / "out").lines("cuda"))
    assert re.search(r"not computed \(never released; no stand-in is used\): Config-\(b\); train it with "
                     r"`aesop-bench train ae --config ae_rrdb_no_lr`, then `aesop-bench train sr --config "
                     r"aesop_rrdb_cfg_b` \(about \d+(\.\d)? h on one A100", three)
    one = "\n".join(plan(RECIPES["table1"], "swinir", tmp_path / "data", tmp_path / "out").lines("cpu"))
    assert "`aesop-bench train sr --config aesop_swinir --opt steps=200000`" in one
    eight = "\n".join(plan(RECIPES["table8"], None, tmp_path / "data", tmp_path / "out").lines("cpu"))
    assert "not reproducible here: CALGAN: " in eight and "not publicly available" in eight


def test_dry_run_touches_nothing(served, tmp_path, capsys):
    from aesop_bench import weights

    data = tmp_path / "data"
    assert main(["reproduce", str(served), "--backbone", "rrdb", "--dry-run", "--data-root", str(data),
                 "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "set set5: 10 files" in out and "set set14:" in out and "weights esrgan_official" in out
    assert "weights aesop_rrdb" in out and "to compute: 4 (model, set) runs" in out and "estimate:" in out
    assert not data.exists() and not (tmp_path / "out").exists()
    assert not weights.cache_path(weights.entry("aesop_rrdb")).exists()


def test_dry_run_estimates_a_gpu_without_one_and_totals_the_tables(served, tmp_path, capsys):
    """`--device cuda --dry-run` on a machine with no GPU: an estimate from the declared per-pixel costs, saying
    so, then from the costs benchmarks/gpu_check.py measured once its file is there; `reproduce all` adds a
    grand total that is the sum of the tables' own lines."""
    from aesop_bench.paths import home
    from aesop_bench.report.reproduce import CPU_SECONDS_PER_MPIX, GPU_COSTS_FILE

    args = ["reproduce", str(served), "--backbone", "rrdb", "--dry-run", "--device", "cuda", "--data-root",
            str(tmp_path / "data"), "--out", str(tmp_path / "out")]
    assert main(args) == 0
    declared = capsys.readouterr().out
    assert "on one GPU (declared costs: FLOP counts" in declared and "on a 2-core CPU" in declared
    # measured costs: ten times the CPU's for everything gives a GPU estimate ten times the CPU one (a file of one
    # record, as benchmarks/gpu_check.py wrote it before it kept one record per GPU and torch version)
    (home() / GPU_COSTS_FILE).write_text(json.dumps({"device": "Test GPU", "date": "2026-01-01", "seconds_per_mpix": {
        k: 10 * v for k, v in CPU_SECONDS_PER_MPIX.items()}}))
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "measured by benchmarks/gpu_check.py on Test GPU (2026-01-01, torch ?)" in out
    gpu, cpu = re.search(r"estimate: about (\d+) min on one GPU .*; about (\d+) min on a 2-core CPU", out).groups()
    assert abs(int(gpu) - 10 * int(cpu)) <= 10

    assert main(["reproduce", "all", "--dry-run", "--device", "cuda", "--data-root", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    n_runs = sum(int(x) for x in re.findall(r"to compute: (\d+) \(model, set\) runs", out))
    assert re.search(rf"grand total over 9 tables: .* {n_runs} \(model, set\) runs to compute, .* on one GPU", out)
    cells = re.search(r"paper cells: (\d+); computable with public weights: (\d+); after training a shipped config: "
                      r"(\d+) \((\d+) trainings, .*\); not reproducible here: (\d+)$", out, re.M)
    total, public, train, _, unavailable = map(int, cells.groups())
    assert total == public + train + unavailable == 648
    assert not (tmp_path / "data").exists()


def test_a_set_with_no_pinned_source_stops_before_computing(served, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.replace("sets: [set5, set14]", "sets: [set5, drealsr]"))
    assert main(["reproduce", str(recipe), "--data-root", str(tmp_path / "data"), "--out",
                 str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert "stopped before computing anything" in captured.err and "DRealSR/LR" in captured.err
    assert not (tmp_path / "out" / "runs").exists() and not (tmp_path / "data").exists()


def test_reproduce_end_to_end_killed_resumed_and_idle_on_rerun(served, reference_data, tmp_path, monkeypatch,
                                                               capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    args = ["reproduce", str(served), "--backbone", "rrdb", "--data-root", str(data), "--quiet"]
    # killed midway (SIGKILL once the first model has stored rows)
    small_zoo = os.path.join(os.path.dirname(__file__), "small_zoo.py")  # the same small zoo entries
    proc = subprocess.Popen([sys.executable, small_zoo, *args, "--out", str(out), "--threads", "2"],
                            env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = out / "runs" / "esrgan-paper" / "rows.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not (rows.is_file() and rows.stat().st_size > 0):
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "table1_reduced.md").exists()
    # started again: it finishes, with the paper's value and the difference in every cell it has
    assert main([*args, "--out", str(out)]) == 0
    said = capsys.readouterr().out
    table = _table(out)
    import csv as _csv

    with open(reference_data / "aesop_paper_tables.csv") as f:
        published = next(float(r["value"]) for r in _csv.DictReader(f) if r["table"] == "table1"
                         and r["method"] == "ESRGAN" and r["set"] == "set14" and r["metric"] == "psnr")
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| PSNR"))
    psnr_row = next(line for line in lines[start:] if "| Set14 |" in line)
    assert re.search(rf"\d+\.\d{{3}}\**(</u>)? \({published:.3f}, [+-]\d+\.\d{{3}}\)", psnr_row), psnr_row
    assert "cells within the paper's rounding:" in said and "cells that differ:" in said
    assert (out / "table1_reduced.tex").is_file() and (out / "table1_reduced.csv").is_file()
    csv_rows = (out / "table1_reduced.csv").read_text().splitlines()
    header = csv_rows[0].split(",")
    assert "paper" in header and any(",set14," in r and r.split(",")[header.index("paper")] for r in csv_rows[1:])
    # a third invocation computes nothing: no network runs and no row is added
    from aesop_bench.models.inference import NetModel

    real_call = NetModel.__call__
    sizes = {p: p.stat().st_size for p in (out / "runs").rglob("rows*.jsonl")}
    monkeypatch.setattr(NetModel, "__call__", lambda *a, **k: pytest.fail("a network ran"))
    assert main([*args, "--out", str(out)]) == 0
    assert {p: p.stat().st_size for p in (out / "runs").rglob("rows*.jsonl")} == sizes
    assert _table(out) == table
    monkeypatch.setattr(NetModel, "__call__", real_call)
    # an uninterrupted run gives the same table
    fresh = tmp_path / "fresh"
    assert main([*args, "--out", str(fresh)]) == 0
    assert _table(fresh) == table


def test_metric_options_are_given_in_each_metrics_own_names_and_unknown_ones_are_named(tmp_path, capsys):
    """A recipe's per-set options in a metric's own option names reach the evaluation (the version records
    them); a flat `split_above` (the metric's name without the metric) is refused naming what is valid, as an
    unknown metric or option is through the API's and the command line's metric options."""
    from aesop_bench.evaluation.config import EvalConfig, as_source
    from aesop_bench.metrics.registry import METRICS
    from aesop_bench.protocols import get_protocol

    base = RECIPE.replace("metrics: [psnr, ssim]", "metrics: [psnr]")
    good = tmp_path / "good.yaml"
    good.write_text(base + "set_options: {set14: {clipiqa: {split_above: 1000}}}\n")
    opts = load_recipe(str(good)).eval_options("set14")
    assert opts == {"clipiqa": {"split_above": 1000}}
    cfg = EvalConfig(source=as_source("bicubic"), sets=["set14"], metrics=["psnr"], protocol=get_protocol("paper"),
                     data_root=tmp_path, out_dir=tmp_path / "o", metric_options=opts)
    spec = METRICS["clipiqa"]
    assert spec.version_for(cfg.options_for("clipiqa")) == spec.version_for({"split_above": 1000})
    assert spec.version_for(cfg.options_for("clipiqa")) != spec.version_for({})
    bad = tmp_path / "bad.yaml"
    bad.write_text(base + "set_options: {set14: {split_above: 1000}}\n")
    with pytest.raises(AesopBenchError, match=r"unknown option\(s\) split_above\. Give \{metric: \{option: "
                                              r"value\}\} with a metric's own options \(.*clipiqa: split_above"):
        load_recipe(str(bad))
    with pytest.raises(AesopBenchError, match=r"metric 'clipiqa' takes no option nope; its options: split_above"):
        EvalConfig(source=as_source("bicubic"), sets=["set14"], metrics=["psnr"], protocol=get_protocol("paper"),
                   data_root=tmp_path, out_dir=tmp_path / "o", metric_options={"clipiqa": {"nope": 1}})
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metric-option", "niqe.crop=3",
                 "--out", str(tmp_path / "o")]) == 2
    assert "metric 'niqe' takes no option crop" in capsys.readouterr().err


def test_measured_gpu_costs_are_kept_per_gpu_and_torch_version(tmp_path, monkeypatch):
    """Each GPU and torch version keeps its own record; the estimate uses the latest, or the GPU asked for, and
    names the others."""
    from aesop_bench.report.reproduce import add_cost_record, cost_records, gpu_costs

    path = tmp_path / "gpu_costs.json"
    measured = [("GPU A", "2.14.1", "2026-03-01", 0.5), ("GPU B", "2.14.1", "2026-05-01", 0.2),
                ("GPU A", "2.14.1", "2026-06-01", 0.4)]  # GPU A measured again: its record is replaced
    for device, torch_version, date, psnr in measured:
        add_cost_record({"device": device, "torch": torch_version, "date": date, "seconds_per_mpix": {"psnr": psnr}},
                        path)
    assert [(r["device"], r["seconds_per_mpix"]["psnr"]) for r in cost_records(path)] == [("GPU B", 0.2), ("GPU A", 0.4)]
    monkeypatch.setenv("AESOP_BENCH_HOME", str(tmp_path))
    costs, source = gpu_costs()
    assert costs["psnr"] == 0.4 and "on GPU A (2026-06-01, torch 2.14.1)" in source and "also measured: GPU B" in source
    assert gpu_costs("GPU B")[0]["psnr"] == 0.2


def _recipe(tmp_path, name: str, metrics: str, sets: str = "set5"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nlayout: table1\nmodels: {{RRDB: [esrgan]}}\nsets: [{sets}]\nmetrics: [{metrics}]\n")
    return load_recipe(str(path))


def test_dry_run_prefers_the_costs_measured_on_this_machine_and_says_which(tmp_path):
    """The CPU estimate takes this machine's measured costs (run_costs.json, which every evaluation adds to) in
    place of the declared ones, key by key, and says which; a record of another CPU is not used. Set5 is not on
    disk: 5 images of a typical 0.15 MP (the set registry)."""
    from aesop_bench.data.sets import SETS
    from aesop_bench.evaluation.timings import add_run_costs, machine
    from aesop_bench.report.reproduce import CPU_SECONDS_PER_MPIX, plan

    recipe = _recipe(tmp_path, "costs", "psnr, ssim")
    mpix = SETS["set5"].n_images * SETS["set5"].typical_mpix
    declared = plan(recipe, None, tmp_path / "data", tmp_path / "out")
    assert declared.estimate_s == pytest.approx(mpix * sum(CPU_SECONDS_PER_MPIX[k] for k in ("model:rrdb", "psnr",
                                                                                              "ssim")))
    assert declared.lines("cpu")[-1].endswith("on a 2-core CPU")
    timed = {"set5": {"model": {"seconds": 7.0, "mpix": 0.5}, "metrics": {"psnr": {"seconds": 0.25, "mpix": 0.5}}}}
    add_run_costs(timed, "model:rrdb", "cpu: Another CPU, 64 cores", "2.14.1")
    assert plan(recipe, None, tmp_path / "data", tmp_path / "out").estimate_s == pytest.approx(declared.estimate_s)
    add_run_costs(timed, "model:rrdb", machine("cpu"), "2.14.1")
    measured = plan(recipe, None, tmp_path / "data", tmp_path / "out")
    assert measured.estimate_s == pytest.approx(mpix * (14.0 + 0.5 + CPU_SECONDS_PER_MPIX["ssim"]))
    line = measured.lines("cpu")[-1]
    assert f"on this machine's CPU (measured in 1 earlier run(s) on this machine ({machine('cpu')}, " in line
    assert "torch 2.14.1) for model:rrdb, psnr; declared for the rest)" in line


def test_gpu_estimate_from_flop_counts_per_gpu_class_and_measured_runs_first(tmp_path):
    """Declared GPU costs: FLOP counts at a declared share of the GPU class's FP32 peak (no TF32), the network
    metrics included (DISTS: two VGG16 passes, 1224.5 GFLOP per HR megapixel); an unknown GPU is taken as the
    default class and the line says so; costs measured by earlier runs on that GPU come first."""
    from aesop_bench.evaluation.timings import add_run_costs
    from aesop_bench.report.reproduce import EFFICIENCY, estimate_gpu_costs, gpu_class, plan

    a100, h100 = estimate_gpu_costs("NVIDIA A100-SXM4-80GB"), estimate_gpu_costs("NVIDIA H100 80GB HBM3")
    assert a100.per_mpix["dists"] == pytest.approx(1224.5 / (19.5e3 * EFFICIENCY["conv"]))
    assert h100.per_mpix["model:rrdb"] == pytest.approx(2240 / (67e3 * EFFICIENCY["conv"]))
    assert h100.per_mpix["model:swinir"] == pytest.approx(1630 / (67e3 * EFFICIENCY["attention"]))
    assert a100.per_image["fid"] == pytest.approx(22.8 / (19.5e3 * EFFICIENCY["conv"]))  # 299 x 299 inputs
    assert a100.per_mpix["fid"] == 0.005  # the floor per megapixel
    assert "A100 class's FP32 peak (19.5 TFLOP/s" in a100.source
    unknown = estimate_gpu_costs("Some Future GPU")
    assert "Some Future GPU is not in the table, taken as A100" in unknown.source
    assert gpu_class("NVIDIA L4") == ("L4", 30.3, True) and gpu_class("Tesla V100-PCIE-16GB")[:2] == ("V100 PCIe", 14.0)
    add_run_costs({"set5": {"metrics": {"dists": {"seconds": 0.5, "mpix": 1.0}}}}, None, "NVIDIA A100-SXM4-80GB",
                  "2.14.1")
    measured = estimate_gpu_costs("NVIDIA A100-SXM4-80GB")
    assert measured.per_mpix["dists"] == 0.5 and measured.per_mpix["model:rrdb"] == a100.per_mpix["model:rrdb"]
    assert measured.source.startswith("measured in 1 earlier run(s) on this GPU (NVIDIA A100-SXM4-80GB, ")
    p = plan(_recipe(tmp_path, "g", "dists"), None, tmp_path / "data", tmp_path / "out", gpu_name="NVIDIA "
             "A100-SXM4-80GB")
    assert "for dists; for the rest declared costs: FLOP counts" in p.lines("cuda")[-1]


def test_grand_total_runs_the_model_of_a_pair_two_tables_share_once(bench_root, tmp_path):
    """Two tables evaluate esrgan on Set5 (psnr; psnr and ssim): the SR cache makes the model's pass once, and
    each table computes its metrics in its own run folder. Set5's size comes from its files."""
    from PIL import Image

    from aesop_bench.report.reproduce import CPU_SECONDS_PER_MPIX, grand_total, plan, totals

    mpix = 0.0
    for f in (bench_root / "Set5" / "HR").glob("*.png"):
        with Image.open(f) as im:
            mpix += im.size[0] * im.size[1] / 1e6
    a = plan(_recipe(tmp_path, "ta", "psnr"), None, bench_root, tmp_path / "a")
    b = plan(_recipe(tmp_path, "tb", "psnr, ssim"), None, bench_root, tmp_path / "b")
    c = CPU_SECONDS_PER_MPIX
    cpu, _, pairs = totals([a, b])
    assert pairs == 1
    assert cpu == pytest.approx(mpix * (c["model:rrdb"] + 2 * c["psnr"] + c["ssim"]))
    assert a.estimate_s + b.estimate_s == pytest.approx(cpu + mpix * c["model:rrdb"])  # each table alone counts it
    line = grand_total([a, b], "cpu")
    assert "2 (model, set) runs to compute" in line and "each of the 1 distinct (model, set) pairs runs its model " \
        "once" in line


def test_training_estimate_counts_each_pass_at_the_gpu_class_rate():
    """aesop_rrdb's step by hand from the pass counts of train/cost.py: RRDB forward and backward (3 x 2.24), the
    LDL term's EMA forward (2.24), the AE (3 x 2.43), VGG19 (3 x 0.78), the relativistic VGG-128 discriminator
    (9 x 0.27), over 64 patches of 128 x 128; on an A100 (19.5 TFLOP/s FP32) at half its peak, and on an H100 SXM
    (67)."""
    from aesop_bench.report.reproduce import training_gpu_seconds

    step = (3 * 2.24 + 2.24 + 3 * 2.43 + 3 * 0.78 + 9 * 0.27) * 64 * 128 ** 2 / 1e6
    assert training_gpu_seconds("aesop_rrdb") == pytest.approx(300_000 * step / (19.5 * 0.5))
    assert training_gpu_seconds("aesop_rrdb", "NVIDIA H100 80GB HBM3") == pytest.approx(300_000 * step / 33.5)
    assert training_gpu_seconds("aesop_rrdb steps=1000") == pytest.approx(1000 * step / 9.75)
