"""The evaluator end to end: published bicubic numbers, protocols, resumability, results files."""

from __future__ import annotations

from dataclasses import replace

import csv
import json
import os
from pathlib import Path

import pytest

from aesop_bench.cli import main
from aesop_bench.protocols import get_protocol
from aesop_bench.evaluation.config import EvalConfig, ResultFolder, as_source
from aesop_bench.evaluation.runner import run_evaluation as evaluate


def _published(reference_data: Path) -> dict:
    rows = csv.DictReader((reference_data / "published_x4.csv").read_text().splitlines())
    return {r["set"]: (float(r["psnr_y"]), float(r["ssim_y"])) for r in rows if r["method"] == "bicubic"}


def _cfg(bench_root, tmp_path, sets, metrics=("psnr", "ssim"), protocol="matlab", model="bicubic",
         **kw) -> EvalConfig:
    return EvalConfig(source=as_source(model), sets=list(sets), metrics=list(metrics), protocol=get_protocol(protocol, **kw),
                      data_root=bench_root, out_dir=tmp_path / "run", progress=False, download=False,
                      log=lambda m: None)


def test_bicubic_reproduces_published_numbers(bench_root, reference_data, tmp_path):
    """MATLAB protocol, bicubic: Set5 28.42/0.8104, Set14 26.00/0.7027, BSD100 25.96/0.6675 (published)."""
    published = _published(reference_data)
    summary = evaluate(_cfg(bench_root, tmp_path, ["set5", "set14", "bsd100"]))
    for s in ("set5", "set14", "bsd100"):
        got = summary["sets"][s]["metrics"]
        assert abs(got["psnr"] - published[s][0]) <= 0.02, (s, got)
        assert abs(got["ssim"] - published[s][1]) <= 0.002, (s, got)


def test_protocols_differ_where_they_should(bench_root, tmp_path):
    """Set14's grayscale bridge: single channel under matlab, RGB-replicated under basicsr."""
    m = evaluate(_cfg(bench_root, tmp_path / "m", ["set14"], protocol="matlab"))
    b = evaluate(_cfg(bench_root, tmp_path / "b", ["set14"], protocol="basicsr"))
    rows_m = _rows(tmp_path / "m" / "run")
    rows_b = _rows(tmp_path / "b" / "run")
    # Under basicsr the grayscale image's Y is 16 + 219/255 * gray: a scaled copy, so PSNR rises by
    # 20 log10(255/219) exactly when Y is not rounded.
    import math

    delta = rows_b[("set14", "bridge", "psnr")] - rows_m[("set14", "bridge", "psnr")]
    assert delta == pytest.approx(20 * math.log10(255 / 219), abs=1e-9)
    assert m["protocol"]["name"] == "matlab" and b["protocol"]["y_round"] is False


def _rows(run: Path) -> dict:
    with open(run / "per_image.csv") as f:
        return {(r["set"], r["image"], r["metric"]): float(r["value"]) for r in csv.DictReader(f)}


def test_results_files_have_the_documented_shape(bench_root, tmp_path):
    evaluate(_cfg(bench_root, tmp_path, ["set5"], metrics=("psnr", "ssim", "lr_psnr")))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["model"]["name"] == "bicubic"
    assert summary["protocol"]["name"] == "matlab"
    assert summary["sets"]["set5"]["n_images"] == 5
    assert set(summary["sets"]["set5"]["metrics"]) == {"psnr", "ssim", "lr_psnr"}
    with open(tmp_path / "run" / "per_image.csv") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames[:4] == ["set", "image", "metric", "value"]
        rows = list(reader)
    assert len(rows) == 15
    assert all(r["protocol"] == "matlab" and r["version"] for r in rows)
    means = {m: sum(float(r["value"]) for r in rows if r["metric"] == m) / 5 for m in ("psnr", "ssim")}
    for m, v in means.items():
        assert v == pytest.approx(summary["sets"]["set5"]["metrics"][m], abs=1e-12)


def test_killed_run_resumes_to_identical_results(bench_root, tmp_path):
    """A model that fails at its eighth image (and a half-written line left), resumed: same files as a clean run,
    and only the missing images run."""
    from .standin_models import ModelFailed, RecordingBicubic

    metrics = ("psnr", "ssim", "lr_psnr")
    clean = evaluate(_cfg(bench_root, tmp_path / "clean", ["set5", "set14"], metrics, model=RecordingBicubic()))
    cfg = _cfg(bench_root, tmp_path / "killed", ["set5", "set14"], metrics, model=RecordingBicubic(fail_at=8))
    with pytest.raises(ModelFailed):
        evaluate(cfg)
    rows_file = tmp_path / "killed" / "run" / "rows.jsonl"
    kept = rows_file.read_text().count("\n")
    assert kept == 7 * 3  # seven images stored before the interruption
    with open(rows_file, "a") as f:
        f.write('{"set": "set14", "image": "bar')  # a write cut short by a kill
    again = RecordingBicubic()
    resumed = evaluate(replace(cfg, source=as_source(again)))
    assert len(again.calls) == 19 - 7  # only the missing images were computed
    assert resumed["sets"] == clean["sets"]
    assert (tmp_path / "killed" / "run" / "per_image.csv").read_text() == \
        (tmp_path / "clean" / "run" / "per_image.csv").read_text()


def test_a_finished_run_reads_no_image(bench_root, tmp_path, monkeypatch):
    """Every image file is opened through Pillow's ``Image.open`` (pixels and headers alike), wherever the code
    that reads it imports it from: the first run opens the images, the finished rerun none."""
    from PIL import Image

    opened, real = [], Image.open

    def counting(fp, *a, **k):
        opened.append(fp)
        return real(fp, *a, **k)

    monkeypatch.setattr(Image, "open", counting)
    cfg = _cfg(bench_root, tmp_path, ["set5"])
    first = evaluate(cfg)
    assert {Path(f).name for f in opened} >= {"baby.png", "bird.png", "butterfly.png", "head.png", "woman.png"}
    opened.clear()
    assert evaluate(cfg)["sets"] == first["sets"]
    assert opened == []


def test_sr_cache_is_reused_by_other_metrics(bench_root, tmp_path):
    from .standin_models import RecordingBicubic

    evaluate(_cfg(bench_root, tmp_path / "a", ["set5"], metrics=("psnr",), model=RecordingBicubic(cache=True)))
    never = RecordingBicubic(cache=True, fail_at=1)  # the same model, failing if it runs: the SR cache answers
    out = evaluate(_cfg(bench_root, tmp_path / "a", ["set5"], metrics=("psnr", "ssim"), model=never))
    assert set(out["sets"]["set5"]["metrics"]) == {"psnr", "ssim"}


def test_results_of_another_protocol_are_not_mixed(bench_root, tmp_path):
    evaluate(_cfg(bench_root, tmp_path, ["set5"], protocol="matlab"))
    from aesop_bench.errors import AesopBenchError

    with pytest.raises(AesopBenchError, match="another --out folder"):
        evaluate(_cfg(bench_root, tmp_path, ["set5"], protocol="basicsr"))


def test_modcrop_12_changes_the_evaluated_area(bench_root, tmp_path):
    """--modcrop 12 equals evaluating HR files cropped to multiples of 12 beforehand (with Pillow, here), and
    differs from the default crop to the scale."""
    from PIL import Image

    a = evaluate(_cfg(bench_root, tmp_path / "a", ["set14"], protocol="basicsr"))
    b = evaluate(_cfg(bench_root, tmp_path / "b", ["set14"], protocol="basicsr", modcrop=12))
    assert b["protocol"]["modcrop"] == 12
    cropped = tmp_path / "data" / "Set14" / "HR"
    cropped.mkdir(parents=True)
    for f in sorted((bench_root / "Set14" / "HR").glob("*.png")):
        img = Image.open(f)
        img.crop((0, 0, img.width // 12 * 12, img.height // 12 * 12)).save(cropped / f.name)
    c = evaluate(_cfg(tmp_path / "data", tmp_path / "c", ["set14"], protocol="basicsr"))
    assert b["sets"]["set14"]["metrics"] == c["sets"]["set14"]["metrics"]
    assert a["sets"]["set14"]["metrics"]["psnr"] != b["sets"]["set14"]["metrics"]["psnr"]


def test_lr_from_folder_equals_made_lr_on_set5(bench_root, tmp_path):
    made = evaluate(_cfg(bench_root, tmp_path / "a", ["set5"], protocol="basicsr"))
    read = evaluate(_cfg(bench_root, tmp_path / "b", ["set5"], protocol="basicsr", lr_source="folder"))
    assert read["sets"]["set5"]["metrics"] == made["sets"]["set5"]["metrics"]


def test_cli_eval_prints_a_table_and_json(bench_root, tmp_path, capsys):
    rc = main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr,ssim,lr_psnr",
               "--protocol", "matlab", "--data-root", str(bench_root), "--out", str(tmp_path / "r"), "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "set5" in out and "28.41" in out
    rc = main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr", "--protocol", "matlab",
               "--data-root", str(bench_root), "--out", str(tmp_path / "r"), "--quiet", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert data["sets"]["set5"]["metrics"]["psnr"] == pytest.approx(28.4165, abs=1e-3)


@pytest.mark.slow
def test_torchrun_shards_images_between_two_ranks(bench_root, tmp_path):
    """Two gloo ranks share the images, also the SR images and Inception features of FID (the ranks make their
    shares, rank 0 the distance); the results equal those of one process."""
    import os
    import socket
    import subprocess
    import sys

    from benchmarks.standins import make_standins

    make_standins(tmp_path / "standins", which=("pt_inception",))  # deterministic random Inception weights

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["-m", "aesop_bench", "eval", "--model", "bicubic", "--sets", "set5,set14", "--metrics",
            "psnr,ssim,lr_psnr,fid", "--protocol", "matlab", "--data-root", str(bench_root), "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], check=True, env=env, timeout=3600,
                   capture_output=True)
    assert main(["cache", "clear", "all"]) == 0  # the ranks compute the SR images and features again
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(port), *args, "--out", str(tmp_path / "two")], env=env, timeout=3600,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "two" / "rows.r1.jsonl").is_file()  # rank 1 computed its share
    assert (tmp_path / "two" / "per_image.csv").read_text() == (tmp_path / "one" / "per_image.csv").read_text()
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert one["sets"] == two["sets"] and "fid" in two["sets"]["set14"]["metrics"]


@pytest.mark.slow
def test_a_slow_rank_0_download_is_waited_for_as_long_as_the_timeout_says(server, mirror_sets, bench_root,
                                                                         tmp_path):
    """Two gloo ranks; rank 0 downloads Set5 from a slow source (1 s per file) while rank 1 waits at a barrier.
    The wait is bounded by $AESOP_BENCH_DIST_TIMEOUT (gloo's own default is 30 minutes): 0.02 minutes is too short
    and the run stops; 0.5 minutes is enough and the run equals one process's."""
    import os
    import socket
    import subprocess
    import sys

    www, url, handler = server
    mirror_sets(["set5"])
    handler.delay = 1.0

    def run(out, minutes):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = dict(os.environ, OMP_NUM_THREADS="1", AESOP_BENCH_GITHUB_RAW=url, AESOP_BENCH_DIST_TIMEOUT=str(minutes))
        return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                               "--master_port", str(port), "-m", "aesop_bench", "eval", "--model", "bicubic",
                               "--sets", "set5", "--metrics", "psnr", "--protocol", "matlab", "--quiet",
                               "--data-root", str(tmp_path / out / "data"), "--out", str(tmp_path / out / "run")],
                              env=env, timeout=3600, capture_output=True, text=True)

    short = run("short", 0.02)
    assert short.returncode != 0 and "timed out" in short.stderr.lower(), short.stderr[-3000:]
    proc = run("enough", 0.5)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr", "--protocol", "matlab",
                 "--quiet", "--data-root", str(bench_root), "--out", str(tmp_path / "one")]) == 0
    assert (tmp_path / "enough" / "run" / "per_image.csv").read_text() == \
        (tmp_path / "one" / "per_image.csv").read_text()


def test_stored_values_follow_the_images_they_came_from(bench_root, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(bench_root / "Set5", data / "Set5")

    def run(out, root=data, sets=("set5",)):
        said = []
        cfg = EvalConfig(source=as_source("bicubic"), sets=list(sets), metrics=["psnr"], protocol=get_protocol("matlab"),
                         data_root=root, out_dir=tmp_path / out, progress=False, download=False, log=said.append)
        return evaluate(cfg), said

    run("run")
    # baby.png is replaced by another image (bird's pixels): the same run folder recomputes exactly that image
    shutil.copy(bench_root / "Set5" / "HR" / "bird.png", data / "Set5" / "HR" / "baby.png")
    again, said = run("run")
    fresh, _ = run("fresh")
    assert again["sets"]["set5"]["metrics"] == fresh["sets"]["set5"]["metrics"]
    assert any("recomputing: baby" in m for m in said)
    rows = _rows(tmp_path / "run")
    assert rows[("set5", "baby", "psnr")] == rows[("set5", "bird", "psnr")]
    # in a folder given as a set, a removed image is left out of the mean, with a line saying so
    folder = data / "Set5" / "HR"
    first, _ = run("folder", sets=(str(folder),))
    (folder / "woman.png").unlink()
    second, said = run("folder", sets=(str(folder),))
    per = {i: v for (s, i, m), v in _rows(tmp_path / "folder").items()}
    assert second["sets"][str(folder)]["n_images"] == 4 and "woman" not in per
    assert second["sets"][str(folder)]["metrics"]["psnr"] == pytest.approx(sum(per.values()) / 4, rel=1e-12)
    assert any("left out: woman" in m for m in said)


def test_temporary_files_of_a_killed_run_are_removed(bench_root, tmp_path):
    import os

    from aesop_bench.paths import sr_cache_dir

    evaluate(_cfg(bench_root, tmp_path, ["set5"], metrics=("psnr",)))
    run = tmp_path / "run"
    left = [run / ".summary.json.k2j3.tmp", run / ".rows.jsonl.x9.tmp"]
    cache_pngs = list(sr_cache_dir().rglob("*.png"))
    assert cache_pngs
    old = cache_pngs[0].parent / ".partial.png.q1.tmp"
    young = cache_pngs[0].parent / ".other.png.q2.tmp"  # another run may be writing it right now: kept
    for p in left + [old, young]:
        p.write_bytes(b"partial")
    os.utime(old, (0, 0))
    evaluate(_cfg(bench_root, tmp_path, ["set5"], metrics=("psnr",)))
    assert not any(p.exists() for p in left + [old]) and young.exists()


def test_a_finished_rerun_imports_no_torch_and_repeats_the_values(bench_root, tmp_path):
    """A run whose values are all stored answers from the store alone: a fresh process repeating it never imports
    torch, and prints the values of the first run."""
    import subprocess
    import sys

    env = {**os.environ, "AESOP_BENCH_HOME": str(tmp_path / "home"), "AESOP_BENCH_DATA": str(bench_root)}
    args = ["eval", "--model", "bicubic", "--sets", "set5,set14", "--metrics", "psnr,ssim", "--protocol", "matlab",
            "--no-download", "--quiet", "--out", str(tmp_path / "run")]
    probe = ("import sys; from aesop_bench.cli import main; rc = main(sys.argv[1:]); "
             "print('torch imported:', 'torch' in sys.modules); sys.exit(rc)")
    first, again = (subprocess.run([sys.executable, "-c", probe, *args], env=env, capture_output=True, text=True,
                                   timeout=3600) for _ in range(2))
    assert first.returncode == 0 and "torch imported: True" in first.stdout, first.stderr[-2000:]
    assert again.returncode == 0 and "torch imported: False" in again.stdout, again.stderr[-2000:]
    def table(proc):
        return [line for line in proc.stdout.splitlines() if line.startswith(("set5", "set14"))]
    assert len(table(first)) == 2 and table(first) == table(again)


def test_the_runner_asks_a_source_only_what_the_source_interface_declares(bench_root, shared_data, reference_data,
                                                                          tmp_path):
    """A model and a result folder, each behind a wrapper that holds only what ``Source`` declares, still give
    their published Set5 x4 PSNR: bicubic 28.42 dB (MATLAB protocol), RDN's released images 32.47 dB (basicsr)."""
    from aesop_bench.evaluation.runner import Runner
    from aesop_bench.evaluation.sources import Source

    class OnlyTheInterface:
        def __init__(self, inner):
            self._inner = inner
            self.name, self.identity = inner.name, inner.identity
            self.source_type, self.writes_sr = inner.source_type, inner.writes_sr

        def prepare_set(self, *a):
            return self._inner.prepare_set(*a)

        def row_digest(self, *a):
            return self._inner.row_digest(*a)

        def images(self, *a):
            return self._inner.images(*a)

        def describe_set(self, *a):
            return self._inner.describe_set(*a)

        def record(self, *a):
            return self._inner.record(*a)

    def psnr(cfg):
        runner = Runner(cfg)
        runner.source = OnlyTheInterface(runner.source)
        assert isinstance(runner.source, Source)  # it has every member the interface declares
        return runner.run()[0]["sets"]["set5"]["metrics"]["psnr"]

    assert psnr(_cfg(bench_root, tmp_path / "model", ["set5"], ("psnr",))) == pytest.approx(
        _published(reference_data)["set5"][0], abs=0.02)
    folder = EvalConfig(source=ResultFolder(shared_data / "results" / "RDN"), sets=["set5"], metrics=["psnr"],
                        protocol=get_protocol("basicsr"), data_root=bench_root, out_dir=None, progress=False,
                        download=False, log=lambda m: None)
    assert psnr(folder) == pytest.approx(32.47, abs=0.005)
