"""Multi-GT evaluation on an HGGT-style test set: each full-reference value is the mean over the positive GTs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aesop_bench.errors import InputError, MissingFileError
from aesop_bench.evaluation.multigt import evaluate_multigt

P, S, N = "Positive", "Similar", "Negative"
GTS = ("original", "01", "02", "03", "04")


def y_psnr(sr: np.ndarray, hr: np.ndarray, border: int = 4) -> float:
    """BasicSR's Y-channel PSNR in closed form: ITU-R BT.601 luma of 8-bit RGB, border cropped, no offset."""
    def y(a):
        a = a.astype(np.float64)
        return 16.0 + (65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255.0

    d = (y(sr) - y(hr))[border:-border, border:-border]
    return 10 * math.log10(255.0 ** 2 / np.mean(d ** 2))


def write_labels(labels: Path, name: str, votes: dict[str, list[str]]):
    for a, labs in votes.items():
        entry = {"Picture_1": {"Name": f"{name}.png", "File": "original", "Label": None}}
        for i, lab in enumerate(labs):
            entry[f"Picture_{i + 2}"] = {"Name": f"{name}_0{i + 1}.png", "File": f"0{i + 1}", "Label": lab}
        (labels / a).mkdir(parents=True, exist_ok=True)
        (labels / a / f"{name}.json").write_text(json.dumps(entry))


@pytest.fixture
def hggt_set(tmp_path, bench_root):
    """Two sets cut from Set5 images: five GTs each (noisy versions of one crop), an SR file each."""
    root, sr_dir = tmp_path / "Test-100", tmp_path / "sr"
    sr_dir.mkdir()
    rng = np.random.default_rng(3)
    arrays = {}
    for name, src in (("imgA-0-0", "baby"), ("imgB-8-16", "bird")):
        base = np.asarray(Image.open(bench_root / "Set5" / "HR" / f"{src}.png").convert("RGB"))[40:88, 60:108]
        for gt in GTS:
            a = np.clip(base.astype(int) + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
            path = root / "images" / gt / (f"{name}.png" if gt == "original" else f"{name}_{gt}.png")
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(a).save(path)
            arrays[(name, gt)] = a
        sr = np.clip(base.astype(int) + rng.integers(-10, 11, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(sr).save(sr_dir / f"{name}_model.png")
        arrays[(name, "sr")] = sr
    write_labels(root / "labels", "imgA-0-0", {"A": [P, P, N, S], "B": [P, N, N, S], "C": [S, P, P, P]})
    write_labels(root / "labels", "imgB-8-16", {"A": [N, P, P, P], "B": [N, S, P, N], "C": [P, P, S, P]})
    return root, sr_dir, arrays


def test_psnr_is_the_mean_over_positive_gts(hggt_set, tmp_path):
    root, sr_dir, arrays = hggt_set
    summary = evaluate_multigt(sr_dir, root, ["psnr"], protocol="basicsr", out=tmp_path / "run")
    positives = {"imgA-0-0": ("01", "02"), "imgB-8-16": ("02", "03", "04")}  # effective labels worked by hand
    want = {n: np.mean([y_psnr(arrays[(n, "sr")], arrays[(n, g)]) for g in gs]) for n, gs in positives.items()}
    rows = [line.split(",") for line in (tmp_path / "run" / "per_image.csv").read_text().splitlines()]
    head = rows[0]
    got = {r[head.index("image")]: float(r[head.index("value")]) for r in rows[1:]}
    assert got == pytest.approx(want, abs=1e-9)
    assert summary["sets"]["hggt-test-100"]["metrics"]["psnr"] == pytest.approx(np.mean(list(want.values())),
                                                                                 abs=1e-9)
    # not the original HR, not every GT: the convention is the positives only
    every = np.mean([y_psnr(arrays[("imgA-0-0", "sr")], arrays[("imgA-0-0", g)]) for g in GTS])
    assert abs(got["imgA-0-0"] - every) > 1e-3


def test_changing_a_label_recomputes(hggt_set, tmp_path):
    root, sr_dir, arrays = hggt_set
    out = tmp_path / "run"
    first = evaluate_multigt(sr_dir, root, ["psnr"], protocol="basicsr", out=out)
    again = evaluate_multigt(sr_dir, root, ["psnr"], protocol="basicsr", out=out)
    assert again["sets"] == first["sets"]
    # annotator B now calls imgA's 03 positive: 01, 02 and 03 are positives
    write_labels(root / "labels", "imgA-0-0", {"B": [P, N, P, S]})
    changed = evaluate_multigt(sr_dir, root, ["psnr"], protocol="basicsr", out=out)
    want_a = np.mean([y_psnr(arrays[("imgA-0-0", "sr")], arrays[("imgA-0-0", g)]) for g in ("01", "02", "03")])
    want_b = np.mean([y_psnr(arrays[("imgB-8-16", "sr")], arrays[("imgB-8-16", g)]) for g in ("02", "03", "04")])
    assert changed["sets"]["hggt-test-100"]["metrics"]["psnr"] == pytest.approx((want_a + want_b) / 2, abs=1e-9)


def test_missing_gt_is_refused(hggt_set, tmp_path):
    root, sr_dir, _ = hggt_set
    (root / "images" / "03" / "imgB-8-16_03.png").unlink()
    with pytest.raises(MissingFileError, match="imgB-8-16_03.png"):
        evaluate_multigt(sr_dir, root, ["psnr"], protocol="basicsr")


def test_image_without_positive_is_refused(hggt_set):
    root, sr_dir, _ = hggt_set
    write_labels(root / "labels", "imgB-8-16", {a: [N, S, N, N] for a in "ABC"})
    with pytest.raises(InputError, match="imgB-8-16"):
        evaluate_multigt(sr_dir, root, ["psnr"], protocol="basicsr")


def test_hggt_layout_shows_uncomputed_columns_as_such(hggt_set, tmp_path):
    from aesop_bench.report.runs import read_run
    from aesop_bench.report.tables import report, to_csv, to_markdown

    root, sr_dir, arrays = hggt_set
    evaluate_multigt(sr_dir, root, ["psnr"], protocol="basicsr", out=tmp_path / "run")
    table = report([read_run(tmp_path / "run")], "hggt")
    md = to_markdown(table)
    want = np.mean([np.mean([y_psnr(arrays[(n, "sr")], arrays[(n, g)]) for g in gs])
                    for n, gs in {"imgA-0-0": ("01", "02"), "imgB-8-16": ("02", "03", "04")}.items()])
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("|")}
    psnr_row = next(v for k, v in rows.items() if k.startswith("PSNR"))
    assert f"{want:.3f}" in psnr_row
    for name in ("LPIPS-ST", "Q-Align"):
        row = next(v for k, v in rows.items() if k.startswith(name))
        assert row.split("|")[-2].strip() == "n/c"
    assert "LPIPS-ST (shift-tolerant LPIPS" in md and "Q-Align (a 7B multimodal model)" in md
    csv_rows = [r.split(",") for r in to_csv(table).splitlines()[1:]]
    assert all(r[7] == "" for r in csv_rows if r[1] in ("lpips_st", "qalign"))


def test_eval_command_evaluates_a_folder_on_a_multigt_set(hggt_set, tmp_path, capsys):
    """`aesop-bench eval --sr DIR --sets hggt:ROOT` gives the same values as the function (positives only), and a
    model on a multi-GT set is refused with what to do."""
    from aesop_bench.cli import main

    root, sr_dir, arrays = hggt_set
    out = tmp_path / "cli"
    assert main(["eval", "--sr", str(sr_dir), "--sets", f"hggt:{root}", "--metrics", "psnr", "--protocol",
                 "basicsr", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    positives = {"imgA-0-0": ("01", "02"), "imgB-8-16": ("02", "03", "04")}
    want = np.mean([np.mean([y_psnr(arrays[(n, "sr")], arrays[(n, g)]) for g in gs]) for n, gs in positives.items()])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sets"]["hggt-test-100"]["metrics"]["psnr"] == pytest.approx(want, abs=1e-9)
    assert f"psnr {want:.4f}" in printed and "mean over its positive GTs" in printed
    assert main(["eval", "--model", "bicubic", "--sets", f"hggt:{root}"]) == 2
    assert "evaluates a folder of SR images (--sr DIR)" in capsys.readouterr().err
