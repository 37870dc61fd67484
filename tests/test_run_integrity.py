"""A run folder never gives a number for something other than what was asked: a set stopped halfway, a set planned
again on other files, rows of an earlier torchrun, two folder sets of one name, result folders of other sizes.
Each test is built like the way the defect was met: commands a user types, one after the other, into one folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from aesop_bench.cli import main
from aesop_bench.errors import AesopBenchError

from .standin_models import ModelFailed, RecordingBicubic


def _copy_set(src: Path, dst: Path, names: list[str] | None = None) -> Path:
    (dst / "HR").mkdir(parents=True)
    for f in sorted(src.glob("*.png")):
        if names is None or f.stem in names:
            shutil.copy(f, dst / "HR" / f.name)
    return dst


def _evaluate(model, sets, out, metrics=("psnr", "ssim"), **kw):
    import aesop_bench as ab

    return ab.evaluate(model, sets=sets, metrics=list(metrics), download=False, out=out, progress=False, **kw)


def test_a_set_stopped_halfway_is_marked_and_never_averaged_as_whole(bench_root, tmp_path, capsys):
    """A run over a folder set killed after 3 of its 8 images, then another set evaluated into the same folder:
    the summary, the report's table, the CSV of per-image values and Result all say the folder set covers 3 of 8
    images, and none gives its mean as the set's value."""
    folder = _copy_set(bench_root / "BSD100" / "HR", tmp_path / "B8",
                       sorted(p.stem for p in (bench_root / "BSD100" / "HR").glob("*.png"))[:8])
    out = tmp_path / "run"
    with pytest.raises(ModelFailed):
        _evaluate(RecordingBicubic(fail_at=4), [str(folder)], out)
    result = _evaluate(RecordingBicubic(), ["set5"], out)

    entry = result.summary["sets"][str(folder)]
    assert entry["n_images"] == 8 and entry["complete"] is False and entry["metrics"] == {}
    assert entry["partial"]["psnr"]["n"] == 3 and entry["partial"]["psnr"]["of"] == 8
    assert result.complete(str(folder)) is False and result.mean(str(folder), "psnr") is None
    assert result.complete("set5") is True and result.mean("set5", "psnr") is not None
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["sets"][str(folder)]["complete"] is False and on_disk["sets"][str(folder)]["metrics"] == {}
    frame = result.per_image
    assert set(frame[frame["set"] == str(folder)]["set_complete"]) == {"false"}
    assert set(frame[frame["set"] == "set5"]["set_complete"]) == {"true"}

    assert main(["report", str(out), "--metrics", "psnr"]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("| PSNR") or "| B8 |" in line
               and "PSNR" not in line)
    mean3 = entry["partial"]["psnr"]["mean"]
    assert f"{mean3:.3f} (n=3/8)" in table and "**" + f"{mean3:.3f}" not in table, (row, table)

    from aesop_bench.report.runs import load_runs
    from aesop_bench.report.site import site_data

    page = site_data(load_runs([out]), tmp_path / "site", metrics=["psnr"])
    cell = next(c for c in page["summary"] if c["set"] == str(folder))["cells"][0]
    assert (cell["n"], cell["of"], cell["rank"]) == (3, 8, 0) and cell["value"] == pytest.approx(mean3)
    assert "psnr on 3 of 8 images" in page["runs"][0]["incomplete"][str(folder)]
    assert str(folder) not in page["runs"][0]["incomplete"] or "set5" not in page["runs"][0]["incomplete"]

    # paired statistics: against a whole run refused, against a run stopped at the same image marked
    fresh = _evaluate(RecordingBicubic(), [str(folder)], tmp_path / "fresh")
    assert main(["compare", str(tmp_path / "fresh"), str(out), "--metric", "psnr"]) == 2
    assert "cover different images (8 vs 3" in capsys.readouterr().err
    with pytest.raises(ModelFailed):
        _evaluate(RecordingBicubic(fail_at=4), [str(folder)], tmp_path / "also-stopped")
    assert main(["compare", str(tmp_path / "also-stopped"), str(out), "--metric", "psnr"]) == 0
    compared = capsys.readouterr().out
    assert f"| {folder} | 3* |" in compared and "incomplete in" in compared

    assert main(["report", str(out), "--metrics", "psnr", "--format", "csv,tex", "--out", str(tmp_path / "t")]) == 0
    capsys.readouterr()
    import csv

    cells = {r["set"]: r for r in csv.DictReader((tmp_path / "t.csv").open())}
    assert (cells[str(folder)]["n_images"], cells[str(folder)]["of_images"], cells[str(folder)]["rank"]) == \
        ("3", "8", "")
    assert (cells["set5"]["n_images"], cells["set5"]["rank"]) == ("", "1")
    assert f"{mean3:.3f} (n=3/8)" in (tmp_path / "t.tex").read_text()

    # finishing the set gives the value of an uninterrupted run
    again = _evaluate(RecordingBicubic(), [str(folder)], out)
    assert again.complete(str(folder)) is True
    assert again.mean(str(folder), "psnr") == fresh.mean(str(folder), "psnr")


def _ldl_set14(data_root: Path, bench_root: Path, corrupt: str) -> None:
    """LDL's Set14 placed by hand under ``data_root/LDL``: the set's HR and its MATLAB-bicubic LR files, with one
    LR file damaged so a run stops at it."""
    from aesop_bench.data.imresize import imresize
    from aesop_bench.data.transforms import mod_crop, to_rgb
    from aesop_bench.imageio import read_image, write_image

    hr_dir, lr_dir = data_root / "LDL" / "Set14" / "HR", data_root / "LDL" / "Set14" / "LR"
    hr_dir.mkdir(parents=True)
    lr_dir.mkdir(parents=True)
    for f in sorted((bench_root / "Set14" / "HR").glob("*.png")):
        hr = mod_crop(to_rgb(read_image(f)), 4)
        write_image(hr_dir / f.name, hr)
        if f.stem == corrupt:
            (lr_dir / f.name).write_bytes(b"not a png")
        else:
            write_image(lr_dir / f.name, imresize(hr, 1 / 4))


def test_a_set_planned_again_on_other_files_does_not_mix_them(bench_root, tmp_path):
    """Set14 under ``paper`` read from its own files (LDL's not at hand), then LDL's files placed with one LR
    damaged, so that run stops after 8 images, then Set5 into the same folder: Set14 is not averaged over 8 LDL
    and 6 earlier rows; it is marked incomplete, with the 6 rows of other files named as not counted."""
    root = tmp_path / "data"
    root.mkdir()
    for s in ("Set5", "Set14"):
        (root / s).symlink_to(bench_root / s)
    names = sorted(p.stem for p in (bench_root / "Set14" / "HR").glob("*.png"))
    out = tmp_path / "run"
    first = _evaluate("bicubic", ["set14"], out, data_root=root)
    assert first.summary["sets"]["set14"]["data"].get("fallback") and first.complete("set14")
    _ldl_set14(root, bench_root, corrupt=names[8])
    with pytest.raises(AesopBenchError, match=names[8]):
        _evaluate("bicubic", ["set14"], out, data_root=root)
    result = _evaluate("bicubic", ["set5"], out, data_root=root)
    entry = result.summary["sets"]["set14"]
    assert entry["data"]["source"] == "ldl" and entry["complete"] is False and entry["metrics"] == {}
    assert entry["partial"]["psnr"] == {"n": 8, "of": 14, "mean": pytest.approx(entry["partial"]["psnr"]["mean"]),
                                        "other_files": 6}
    assert result.mean("set14", "psnr") is None
    rows = result.per_image[result.per_image["set"] == "set14"]
    assert sorted(set(rows["image"])) == names[:8]  # only the rows of the files the set now holds


def test_rank_files_of_an_earlier_torchrun_never_replace_newer_rows(tmp_path):
    """Rows a torchrun rank wrote to ``rows.r1.jsonl`` are older than rows a later single-process run appends to
    ``rows.jsonl``; read back, the newer ones stand (they were lost for good when the rank file was read last)."""
    from aesop_bench.evaluation.runfolder import RunFolder
    from aesop_bench.evaluation.store import ResultStore

    model, prot = {"name": "m", "identity": "m"}, {"name": "paper"}
    rank0 = ResultStore(tmp_path / "run", model, prot)
    rank1 = ResultStore(tmp_path / "run", model, prot, rank=1)
    rank1.add("set5", "bird", {"psnr": (30.0, "v")}, digest="old")
    rank0.add("set5", "baby", {"psnr": (31.0, "v")}, digest="b")
    rank0.close()
    again = ResultStore(tmp_path / "run", model, prot)  # a later single-process run: the rank file is folded in
    assert not RunFolder(tmp_path / "run").rows_file(1).exists()
    assert again.rows[("set5", "bird", "psnr")] == (30.0, "v", "old")
    again.add("set5", "bird", {"psnr": (29.0, "v")}, digest="new")  # bird's HR changed: recomputed
    again.close()
    third = ResultStore(tmp_path / "run", model, prot)
    assert third.rows[("set5", "bird", "psnr")] == (29.0, "v", "new")
    assert third.rows[("set5", "baby", "psnr")] == (31.0, "v", "b")
    third.close()


@pytest.mark.slow
def test_a_rerun_after_torchrun_keeps_every_value(bench_root, tmp_path):
    """torchrun with 2 ranks on Set5, one HR pixel of bird edited, then single-process runs into the same folder:
    the first recomputes bird, the second recomputes nothing and stores nothing, and the folder's values equal a
    fresh run's on the edited set."""
    import os
    import socket
    import subprocess
    import sys

    from aesop_bench.imageio import read_image, write_image

    root = tmp_path / "data"
    _copy_set(bench_root / "Set5" / "HR", root / "Set5")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["-m", "aesop_bench", "eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr,ssim",
            "--data-root", str(root), "--no-download", "--quiet", "--out", str(tmp_path / "run")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(port), *args], env=env, timeout=3600, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "rows.r1.jsonl").is_file()
    bird = root / "Set5" / "HR" / "bird.png"
    img = read_image(bird)
    img[0, 10, 10] = (int(img[0, 10, 10]) + 50) % 256
    write_image(bird, img)

    def once():
        return subprocess.run([sys.executable, *args], env=env, timeout=3600, capture_output=True, text=True)

    first = once()
    assert first.returncode == 0 and "recomputing: bird" in first.stderr, first.stderr
    size = (tmp_path / "run" / "rows.jsonl").stat().st_size
    second = once()
    assert second.returncode == 0 and "recomputing" not in second.stderr, second.stderr
    assert (tmp_path / "run" / "rows.jsonl").stat().st_size == size
    fresh = subprocess.run([sys.executable, *args[:-1], str(tmp_path / "fresh")], env=env, timeout=3600,
                           capture_output=True, text=True)
    assert fresh.returncode == 0
    assert (tmp_path / "run" / "per_image.csv").read_text() == (tmp_path / "fresh" / "per_image.csv").read_text()


@pytest.mark.slow
def test_an_error_on_rank_0_alone_stops_every_rank_with_its_message(bench_root, tmp_path):
    """Under torchrun, a registered set missing under --no-download is found by rank 0 alone: every rank stops
    with rank 0's message, none with a raw connection error."""
    import os
    import socket
    import subprocess
    import sys

    (tmp_path / "empty").mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(port), "-m", "aesop_bench", "eval", "--model", "bicubic", "--sets", "set5",
                           "--metrics", "psnr", "--data-root", str(tmp_path / "empty"), "--no-download", "--quiet",
                           "--out", str(tmp_path / "run")], env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=3600,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    # one message per rank (the two processes' lines can interleave on the shared stderr)
    assert proc.stderr.count("aesop-bench: error:") == 2, proc.stderr[-3000:]
    assert "aesop-bench: error: rank 0 stopped: set 'set5' not found" in proc.stderr, proc.stderr[-3000:]
    # torchrun's own report of the failed ranks follows; nothing of ours raised past its error handling
    assert "Connection closed by peer" not in proc.stderr and "aesop_bench/" not in proc.stderr, proc.stderr[-3000:]


def test_two_folder_sets_of_one_name_keep_their_own_sr_images_and_labels(bench_root, tmp_path, capsys):
    """``--sets a/Faces,b/Faces --save-sr``: each set's SR images in a folder of its own, and the table's rows
    named apart."""
    from aesop_bench.imageio import read_image

    a = _copy_set(bench_root / "Set5" / "HR", tmp_path / "a" / "Faces", ["baby", "bird"])
    b = _copy_set(bench_root / "Set14" / "HR", tmp_path / "b" / "Faces", ["baboon", "barbara"])
    out = tmp_path / "run"
    assert main(["eval", "--model", "bicubic", "--sets", f"{a},{b}", "--metrics", "psnr", "--save-sr",
                 "--no-download", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    folders = sorted(p for p in (out / "sr").iterdir())
    assert len(folders) == 2
    saved = {p.stem for f in folders for p in f.glob("*.png")}
    assert saved == {"baby", "bird", "baboon", "barbara"}
    for f in folders:
        for sr in f.glob("*.png"):
            hr = read_image((a if sr.stem in ("baby", "bird") else b) / "HR" / sr.name)
            assert read_image(sr).shape[-2:] == (hr.shape[-2] // 12 * 12, hr.shape[-1] // 12 * 12)
    assert str(a) in printed and str(b) in printed  # not two rows named "Faces"
    assert main(["report", str(out), "--metrics", "psnr"]) == 0
    table = capsys.readouterr().out
    assert f"| {a} |" in table and f"| {b} |" in table


def test_result_folder_records_accumulate_and_a_failed_call_keeps_them(bench_root, tmp_path, capsys):
    """``eval --sr`` on Set5, then on Set14 into the same --out: the summary keeps both sets' files; a call with a
    wrong --sr-suffix fails and leaves the record as it was. The record says the SR files' area was compared."""
    from aesop_bench.data.imresize import imresize
    from aesop_bench.data.transforms import mod_crop, to_rgb
    from aesop_bench.imageio import read_image, write_image

    results = tmp_path / "results"
    for s in ("Set5", "Set14"):
        (results / s).mkdir(parents=True)
        for f in sorted((bench_root / s / "HR").glob("*.png")):
            hr = mod_crop(to_rgb(read_image(f)), 4)
            write_image(results / s / f"{f.stem}_x4.png", imresize(imresize(hr, 1 / 4), 4))
    out = tmp_path / "run"
    common = ["--sr", str(results), "--metrics", "psnr", "--no-download", "--quiet", "--out", str(out)]
    assert main(["eval", "--sets", "set5", *common]) == 0
    assert main(["eval", "--sets", "set14", *common]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["sr_folder"]["files"]) == {"set5", "set14"}
    assert len(summary["sr_folder"]["files"]["set5"]) == 5 and len(summary["sr_folder"]["files"]["set14"]) == 14
    assert summary["sr_folder"]["cropped"]["set14"]  # Set14's images not of a size divisible by 4 were cropped
    assert "SR files' area" in summary["sets"]["set5"]["data"]["area"]
    assert "multiple of 12" not in summary["sets"]["set5"]["data"]["lr"]
    assert main(["eval", "--sets", "set5", *common, "--sr-suffix", "_x8"]) == 2
    assert "5 file(s) found without the suffix '_x8': baby_x4.png, bird_x4.png" in capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["sr_folder"] == summary["sr_folder"]


def test_result_folders_of_other_sizes_are_not_compared_as_one(bench_root, tmp_path, capsys):
    """The whole HR's size in one folder, the HR cropped to a multiple of 12 in another: report refuses to rank
    them (the values cover different areas) unless --allow-mixed, which labels them."""
    from aesop_bench.data.imresize import imresize
    from aesop_bench.data.transforms import mod_crop
    from aesop_bench.imageio import read_image, write_image

    for name, crop in (("whole", 4), ("mod12", 12)):
        (tmp_path / name).mkdir()
        for f in sorted((bench_root / "Set5" / "HR").glob("*.png")):
            hr = mod_crop(read_image(f), crop)
            write_image(tmp_path / name / f.name, imresize(imresize(hr, 1 / 4), 4))
        assert main(["eval", "--sr", str(tmp_path / name), "--sets", "set5", "--metrics", "psnr", "--no-download",
                     "--quiet", "--out", str(tmp_path / f"run-{name}")]) == 0
    capsys.readouterr()
    runs = [str(tmp_path / "run-whole"), str(tmp_path / "run-mod12")]
    assert main(["report", *runs, "--metrics", "psnr"]) == 2
    assert "different sizes on set5" in capsys.readouterr().err
    assert main(["report", *runs, "--metrics", "psnr", "--allow-mixed"]) == 0


def test_a_failed_evaluation_leaves_no_empty_run_folder(tmp_path, capsys):
    """A run that stops before computing anything (a set not on disk) leaves no folder it created."""
    out = tmp_path / "runs" / "bicubic-paper"
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr", "--no-download",
                 "--data-root", str(tmp_path / "nothing"), "--quiet", "--out", str(out)]) == 2
    assert "set5" in capsys.readouterr().err.lower()
    assert not (tmp_path / "runs").exists()


def test_rows_are_strict_json_and_fid_on_one_image_is_refused(bench_root, tmp_path):
    """PSNR of identical images is inf under ``basicsr``: stored as the text "inf" (every line of rows.jsonl is
    strict JSON) and read back as inf; FID of a one-image set has no covariance and is refused before computing,
    not stored as NaN."""
    import math

    same = tmp_path / "same"
    same.mkdir()
    shutil.copy(bench_root / "Set5" / "HR" / "baby.png", same / "baby.png")
    one = _copy_set(bench_root / "Set5" / "HR", tmp_path / "One", ["baby"])
    result = _evaluate(str(same), [str(one)], tmp_path / "run", protocol="basicsr")
    assert math.isinf(result.mean(str(one), "psnr"))

    def strict(text):
        return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))

    lines = (tmp_path / "run" / "rows.jsonl").read_text().splitlines()
    assert [strict(line)["value"] for line in lines if strict(line)["metric"] == "psnr"] == ["inf"]
    with pytest.raises(AesopBenchError, match="needs at least 2"):
        _evaluate("bicubic", [str(one)], tmp_path / "fid", metrics=("fid",))
    assert not (tmp_path / "fid").exists()


def test_interpolations_differing_in_alpha_have_different_identities(tmp_path):
    """``@0.3``, ``@0.3000004`` and ``@0.30000049`` blend different weights: three identities (``%g`` made them
    one), and an alpha written before keeps its identity (``0.3``)."""
    from aesop_bench.models.zoo import ModelSpec

    for name in ("a", "b"):
        (tmp_path / f"{name}.pth").write_bytes(name.encode())
    a, b = ModelSpec("a", "rrdb", tmp_path / "a.pth"), ModelSpec("b", "rrdb", tmp_path / "b.pth")
    ids = [ModelSpec("i", "rrdb", None, parts=((a, b), float(alpha))).identity(4)
           for alpha in ("0.3", "0.3000004", "0.30000049")]
    assert len(set(ids)) == 3 and ids[0].endswith(",0.3)")


def test_ldl_folders_with_an_lr_file_too_many_are_refused(bench_root, tmp_path):
    """LDL's HR and LR folders pair one to one (BasicSR's ``paired_paths_from_folder`` asserts equal counts): an
    extra LR file is an error naming both folders, not silently ignored."""
    root = tmp_path / "data"
    root.mkdir()
    _ldl_set14(root, bench_root, corrupt="")
    shutil.copy(root / "LDL" / "Set14" / "LR" / "baboon.png", root / "LDL" / "Set14" / "LR" / "extra.png")
    with pytest.raises(AesopBenchError, match=r"holds 14 images but .* holds 15; LDL's HR and LR folders pair"):
        _evaluate("bicubic", ["set14"], tmp_path / "run", data_root=root)


def test_a_run_resumed_under_another_thread_count_equals_an_uninterrupted_one_and_says_so(bench_root, tmp_path,
                                                                                          monkeypatch, capsys):
    """A small RRDB on Set5 with PSNR, SSIM and LPIPS, stopped after two images under 2 threads and finished under
    1 (a core taken by other work): the values equal an uninterrupted run's (the SR cache off, so that nothing is
    shared through it) bit for bit, and the outputs name the two settings."""
    import torch

    import aesop_bench as ab
    from aesop_bench.models.archs.rrdbnet_arch import RRDBNet
    from benchmarks.standins import make_standins

    monkeypatch.setenv("AESOP_BENCH_SR_CACHE_GB", "0")
    make_standins(tmp_path / "standins", which=("alexnet", "lpips_alex_v0.1"))
    torch.manual_seed(0)
    net = RRDBNet(scale=4, num_feat=16, num_block=1, num_grow_ch=8).eval()

    class StopsAfter(torch.nn.Module):
        """The network, stopped as by a kill after ``after`` images."""

        def __init__(self, after=None):
            super().__init__()
            self.net, self.after, self.calls = net, after, 0

        def forward(self, x):
            self.calls += 1
            if self.after is not None and self.calls > self.after:
                raise KeyboardInterrupt
            return self.net(x)

    def run(out, threads, after=None):
        monkeypatch.setenv("AESOP_BENCH_THREADS", str(threads))
        return ab.evaluate(StopsAfter(after), sets="set5", metrics=["psnr", "ssim", "lpips"], download=False,
                           out=out, identity="tiny-rrdb", progress=False).summary

    saved = torch.get_num_threads()
    try:
        with pytest.raises(KeyboardInterrupt):
            run(tmp_path / "resumed", 2, after=2)
        resumed = run(tmp_path / "resumed", 1)
        whole = run(tmp_path / "whole", 2)
    finally:
        torch.set_num_threads(saved)
    assert (tmp_path / "resumed" / "per_image.csv").read_text() == (tmp_path / "whole" / "per_image.csv").read_text()
    assert resumed["sets"]["set5"]["metrics"] == whole["sets"]["set5"]["metrics"]
    assert [w.rsplit(", ", 1)[1] for w in resumed["sets"]["set5"]["computed_on"]] == ["1 thread", "2 threads"]
    assert len(whole["sets"]["set5"]["computed_on"]) == 1
    assert main(["report", str(tmp_path / "resumed"), "--metrics", "psnr"]) == 0
    assert "values computed under several settings" in capsys.readouterr().out


def test_a_pd_plot_names_an_unknown_metric_and_leaves_out_an_incomplete_set(bench_root, tmp_path, capsys):
    """`plot pd --x nique` is an unknown metric (not "no run has nique"); a run whose set is incomplete is left out
    of the set's plot with the reason."""
    folder = _copy_set(bench_root / "Set5" / "HR", tmp_path / "Five")
    with pytest.raises(ModelFailed):
        _evaluate(RecordingBicubic(fail_at=3), [str(folder)], tmp_path / "cut", metrics=("psnr", "ssim"))
    _evaluate(RecordingBicubic(), [str(folder)], tmp_path / "whole", metrics=("psnr", "ssim"))
    runs = [str(tmp_path / "cut"), str(tmp_path / "whole")]
    assert main(["plot", "pd", *runs, "--set", str(folder), "--x", "nique", "--y", "psnr", "--out",
                 str(tmp_path / "pd.png")]) == 2
    assert "unknown metric 'nique'" in capsys.readouterr().err
    assert main(["plot", "pd", *runs, "--set", str(folder), "--x", "ssim", "--y", "psnr", "--out",
                 str(tmp_path / "pd.png")]) == 0
    assert "incomplete: ssim on 2 of 5 images only; psnr on 2 of 5 images only" in capsys.readouterr().err
