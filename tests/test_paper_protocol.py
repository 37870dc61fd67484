"""The paper's protocol against the authors' evaluation conventions: HR cropped to a multiple of 12, 1e-8 in the
PSNR's MSE, NIQE without a border crop (IQA-PyTorch's default), LR-PSNR's kernel in its version, pFID's grid,
and paper comparisons that refuse other protocols."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import aesop_bench as ab
from aesop_bench.cli import main
from aesop_bench.data.imresize import imresize
from aesop_bench.protocols import PROTOCOLS, get_protocol
from aesop_bench.imageio import read_image


def _rows(run):
    return {(r["set"], r["image"], r["metric"]): float(r["value"]) for r in csv.DictReader(open(run / "per_image.csv"))}


def test_default_protocol_crops_hr_to_a_multiple_of_12_as_the_authors_data(bench_root, tmp_path, capsys):
    """Per image, the default protocol's bicubic PSNR equals BasicSR's calculate_psnr on the HR cropped to a
    multiple of 12 and the MATLAB-bicubic SR made from it (the authors' mod-12 test data: LR by MATLAB bicubic in
    double precision, rounded once, here by BasicSR's MATLAB-imresize port)."""

    from tests.references import basicsr_archs

    basicsr_archs()
    from basicsr.metrics.psnr_ssim import calculate_psnr
    from basicsr.utils.matlab_functions import imresize as basicsr_imresize

    assert main(["eval", "--model", "bicubic", "--sets", "set5,set14", "--metrics", "psnr", "--quiet",
                 "--data-root", str(bench_root), "--out", str(tmp_path / "paper")]) == 0
    assert main(["eval", "--model", "bicubic", "--sets", "set5,set14", "--metrics", "psnr", "--quiet",
                 "--protocol", "basicsr", "--data-root", str(bench_root), "--out", str(tmp_path / "basicsr")]) == 0
    paper, mod4 = _rows(tmp_path / "paper"), _rows(tmp_path / "basicsr")
    run = json.loads((tmp_path / "paper" / "run.json").read_text())
    assert run["protocol"]["name"] == "paper" and run["protocol"]["modcrop"] == 12
    moved = 0
    for (s, image, _), value in paper.items():
        folder = "Set5" if s == "set5" else "Set14"
        hr = read_image(bench_root / folder / "HR" / f"{image}.png")
        hr = hr.expand(3, -1, -1) if hr.shape[0] == 1 else hr
        h, w = hr.shape[-2:]
        hr = hr[:, : h - h % 12, : w - w % 12]
        hr01 = hr.permute(1, 2, 0).numpy().astype(np.float64) / 255
        lr = np.floor(np.clip(basicsr_imresize(hr01, 0.25), 0, 1) * 255 + 0.5).astype(np.uint8)
        sr = imresize(torch.from_numpy(lr).permute(2, 0, 1).contiguous(), 4.0)
        bgr = [x.permute(1, 2, 0).numpy()[..., ::-1].copy() for x in (sr, hr)]
        want = calculate_psnr(bgr[0], bgr[1], 4, test_y_channel=True)
        assert value == pytest.approx(want, abs=1e-4), image  # BasicSR converts Y in float32; 1e-8 moves ~1e-5 dB
        moved += abs(value - mod4[(s, image, "psnr")]) > 1e-3
    assert moved >= 5  # images whose size is not a multiple of 12 give other numbers than modcrop 4
    assert PROTOCOLS["matlab"].effective_modcrop == 4 == PROTOCOLS["basicsr"].effective_modcrop


def test_psnr_adds_1e8_to_the_mse_under_the_paper_protocol():
    hr = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    assert ab.metric("psnr", "paper")(hr, hr).item() == pytest.approx(80.0, abs=1e-12)  # 10 log10(1 / 1e-8)
    assert ab.metric("psnr", "basicsr")(hr, hr).item() == float("inf")
    assert ab.metric("psnr", "matlab")(hr, hr).item() == float("inf")
    assert ab.metric("lr_psnr", "paper")(hr, hr, lr=imresize(hr, 0.25)).item() <= 80.0


def test_niqe_under_the_paper_protocol_crops_no_border_as_iqa_pytorch(shared_data, bench_root):
    from pyiqa.archs.niqe_arch import calculate_niqe

    from aesop_bench import weights as wm
    from aesop_bench.metrics import niqe as N

    wm.add("niqe_pristine", shared_data / "weights" / "niqe" / "modelparameters.mat")
    mu, cov = N.load_pristine(shared_data / "weights" / "niqe" / "modelparameters.mat")
    paper, basicsr = ab.metric("niqe", "paper"), ab.metric("niqe", "basicsr")
    assert paper.version != basicsr.version  # their values differ (below): they must be stored apart
    for name in ("baby", "butterfly"):
        img = read_image(bench_root / "Set5" / "HR" / f"{name}.png")[None]
        ref = calculate_niqe(img.float() / 255, 0, mu_pris_param=mu, cov_pris_param=cov).item()
        assert paper(img).item() == pytest.approx(ref, abs=1e-3)
        assert abs(basicsr(img).item() - ref) > 1e-3


def test_lr_psnr_downscales_with_matlab_bicubic_and_keeps_another_kernels_values_apart(bench_root, tmp_path,
                                                                                       capsys):
    """LR-PSNR is BasicSR's Y-PSNR between the LR and the SR downscaled by its MATLAB-imresize port (double, not
    rounded); PyTorch's antialiased bicubic would give another number. Values stored under another definition's
    version (another kernel) are recomputed, never mixed with these."""
    from tests.references import basicsr_archs

    basicsr_archs()
    from basicsr.metrics.psnr_ssim import calculate_psnr
    from basicsr.utils.matlab_functions import imresize as basicsr_imresize

    hr = read_image(bench_root / "Set5" / "HR" / "bird.png")
    lr = imresize(hr, 0.25)
    sr = imresize(lr, 4.0)

    def y_psnr(down):  # down: (H, W, 3) float64 on the 0-255 scale, compared with the LR as BasicSR does (BGR)
        return calculate_psnr(down[..., ::-1], lr.permute(1, 2, 0).numpy()[..., ::-1].astype(np.float64), 0,
                              test_y_channel=True)

    want = y_psnr(basicsr_imresize(sr.permute(1, 2, 0).numpy().astype(np.float64) / 255, 0.25) * 255)
    other = y_psnr(torch.nn.functional.interpolate(sr[None].double() / 255, size=tuple(lr.shape[-2:]), mode="bicubic",
                                                   antialias=True)[0].permute(1, 2, 0).numpy() * 255)
    assert ab.metric("lr_psnr", "basicsr")(sr, lr=lr).item() == pytest.approx(want, abs=1e-4)  # float32 Y there
    assert abs(other - want) > 0.05

    def run(out):
        assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "lr_psnr", "--quiet",
                     "--protocol", "basicsr", "--data-root", str(bench_root), "--out", str(out)]) == 0
        return _rows(out)

    fresh = run(tmp_path / "fresh")
    rows = tmp_path / "run" / "rows.jsonl"
    run(tmp_path / "run")
    lines = [json.loads(line) for line in rows.read_text().splitlines()]
    rows.write_text("".join(json.dumps({**r, "version": r["version"].replace("matlab", "torch"), "value": 99.0}) + "\n"
                            for r in lines))  # as another kernel's values would be stored
    assert run(tmp_path / "run") == fresh
    assert len(rows.read_text().splitlines()) == 2 * len(lines)  # every value computed again


def test_pfid_leaves_the_strips_beyond_the_grid_unused():
    from aesop_bench.metrics.distribution import patches

    img = torch.randint(0, 256, (3, 827, 1170), dtype=torch.uint8)
    p = patches(img)
    assert p.shape[0] == 2 * 3  # 827 // 299 rows, 1170 // 299 columns
    other = img.clone()
    other[:, 598:, :] = 0  # the bottom strip (827 - 2 * 299 rows) and
    other[:, :, 897:] = 0  # the right strip (1170 - 3 * 299 columns) are not used
    assert torch.equal(patches(other), p)
    assert 1 - 6 * 299 * 299 / (827 * 1170) == pytest.approx(0.446, abs=1e-3)  # the README's 45%


def test_compare_paper_refuses_runs_of_another_protocol(bench_root, tmp_path, capsys):
    for protocol in ("paper", "basicsr"):
        assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr,ssim", "--quiet",
                     "--protocol", protocol, "--data-root", str(bench_root), "--out", str(tmp_path / protocol)]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "paper"), "--layout", "generic", "--metrics", "psnr,ssim",
                 "--compare-paper"]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "basicsr"), "--layout", "generic", "--metrics", "psnr,ssim",
                 "--compare-paper"]) == 2
    err = capsys.readouterr().err
    assert "differs from the paper's protocol in modcrop (4 vs 12)" in err and "psnr_eps (0.0 vs 1e-08)" in err
    assert main(["report", str(tmp_path / "basicsr"), "--layout", "generic", "--metrics", "psnr,ssim",
                 "--compare-paper", "--allow-mixed"]) == 0
    assert "not the paper's protocol" in capsys.readouterr().out


def test_runs_stored_before_the_new_protocol_fields_stay_valid(bench_root, tmp_path, capsys):
    """A basicsr run.json written before psnr_eps, niqe_crop and lr_precision existed is the same protocol."""
    run = tmp_path / "old"
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr", "--quiet", "--protocol",
                 "basicsr", "--data-root", str(bench_root), "--out", str(run)]) == 0
    meta = json.loads((run / "run.json").read_text())
    for k in ("psnr_eps", "niqe_crop", "lr_precision"):
        del meta["protocol"][k]
    (run / "run.json").write_text(json.dumps(meta))
    lines = (run / "rows.jsonl").read_text()
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr", "--quiet", "--protocol",
                 "basicsr", "--data-root", str(bench_root), "--out", str(run)]) == 0
    assert (run / "rows.jsonl").read_text() == lines  # nothing recomputed
    assert get_protocol("basicsr").as_dict()["niqe_crop"] == 4
    assert np.isfinite(json.loads((run / "summary.json").read_text())["sets"]["set5"]["metrics"]["psnr"])
