"""NIQE against IQA-PyTorch's implementation of the official MATLAB algorithm, same parameter file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import aesop_bench as ab
from aesop_bench import weights as wm
from aesop_bench.cli import main
from aesop_bench.errors import AesopBenchError
from aesop_bench.imageio import read_image
from aesop_bench.metrics import niqe as N


def test_pristine_file_is_the_manifest_entry(shared_data):
    assert wm.check(wm.entry("niqe_pristine"), shared_data / "weights" / "niqe" / "modelparameters.mat").status \
        == "verified"


def test_niqe_equals_iqa_pytorch_on_set14(shared_data, bench_root):
    from pyiqa.archs.niqe_arch import calculate_niqe

    mat = shared_data / "weights" / "niqe" / "modelparameters.mat"
    mu, cov = N.load_pristine(mat)
    files = sorted((bench_root / "Set14" / "HR").glob("*.png"))
    assert len(files) == 14
    for f in files:
        img = read_image(f)[None]
        ref = calculate_niqe(img.float() / 255, 0, mu_pris_param=mu, cov_pris_param=cov).item()
        ours = N.niqe(img, pristine=(mu, cov)).item()
        assert abs(ours - ref) < 1e-3, (f.name, ours, ref)
    assert img.shape[1] == 3 and read_image(bench_root / "Set14" / "HR" / "bridge.png").shape[0] == 1


def test_niqe_through_the_manager_and_crop(shared_data, bench_root):
    from pyiqa.archs.niqe_arch import calculate_niqe

    mat = shared_data / "weights" / "niqe" / "modelparameters.mat"
    wm.add("niqe_pristine", mat)
    mu, cov = N.load_pristine(mat)
    img = read_image(bench_root / "Set14" / "HR" / "lenna.png")[None]
    for crop in (0, 4):  # the manager's pristine model and the border crop, as IQA-PyTorch applies it
        ref = calculate_niqe(img.float() / 255, crop, mu_pris_param=mu, cov_pris_param=cov).item()
        got = N.niqe(img, crop_border=crop)
        assert got.shape == (1,) and abs(got.item() - ref) < 1e-3, (crop, got.item(), ref)
    assert abs(N.niqe(img).item() - N.niqe(img, crop_border=4).item()) > 1e-3


def test_matlab_variant_differs_only_through_rounding_noise(bench_root):
    mu, cov = torch.zeros(36, dtype=torch.float64), torch.eye(36, dtype=torch.float64)
    img = read_image(bench_root / "Set14" / "HR" / "zebra.png")[None]
    a = N.niqe(img, pristine=(mu, cov)).item()
    b = N.niqe(img, pristine=(mu, cov), variant="matlab").item()
    assert abs(a - b) / a < 1e-3


def test_the_fast_window_and_table_search_equal_conv2d_and_argmin(bench_root):
    import torch.nn.functional as F

    img = N.luminance(read_image(bench_root / "Set14" / "HR" / "ppt3.png"))  # flat regions: signs matter there
    x = F.pad(img[None, None], (3, 3, 3, 3), mode="replicate")
    k = N._pyiqa_window()
    fast = N._window_sums(torch.cat([x, x * x], dim=1)[0], k[0, 0].tolist())
    for c, ref in enumerate((F.conv2d(x, k), F.conv2d(x * x, k))):
        assert torch.allclose(fast[c], ref[0], rtol=1e-14, atol=0)
        assert torch.equal(torch.sign(img - fast[0, 0]), torch.sign(img - F.conv2d(x, k)[0, 0]))
    gam, table = N._gamma_table()
    torch.manual_seed(0)
    values = torch.cat([torch.rand(10_000, dtype=torch.float64), table[::97], (table[1:] + table[:-1])[::89] / 2,
                        torch.tensor([float("nan"), float("inf"), -float("inf"), -1.0, 0.0, 5.0],
                                     dtype=torch.float64)])
    want = torch.argmin((table[None, :] - values[:, None]) ** 2, dim=1)
    assert torch.equal(N._nearest(table, values), want)


def test_niqe_on_an_image_with_one_block_is_a_clear_error(shared_data, tmp_path, capsys):
    from aesop_bench import weights as wm

    wm.add("niqe_pristine", shared_data / "weights" / "niqe" / "modelparameters.mat")
    small = next(f for f in sorted((shared_data / "train" / "T91").glob("*.bmp")) if max(Image.open(f).size) < 192)
    img = torch.from_numpy(np.array(Image.open(small).convert("RGB"))).permute(2, 0, 1)  # a single 96x96 block
    with pytest.raises(AesopBenchError, match=r"niqe: NIQE needs at least two 96x96 blocks"):
        ab.metric("niqe")(img)
    folder = tmp_path / "small"
    folder.mkdir()
    Image.open(small).convert("RGB").save(folder / "tiny.png")
    assert main(["eval", "--model", "bicubic", "--sets", str(folder), "--metrics", "niqe", "--quiet",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "tiny.png: niqe: NIQE needs at least two 96x96 blocks" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "summary.json").exists()  # a failed first run leaves no empty summary
