"""Inputs that would give silently wrong numbers or write where they must not are refused with a clear error:
negative crops, 16-bit RGB images, weights-manifest file names outside the cache, malformed interpolation
alphas and tiles; table marks follow the displayed precision."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aesop_bench.cli import main
from aesop_bench.errors import AesopBenchError, ConfigError, InputError


def test_negative_crops_are_refused(bench_root, tmp_path, capsys):
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--crop-border", "-3", "--quiet",
                 "--out", str(tmp_path / "r"), "--data-root", str(bench_root)]) == 2
    assert "--crop-border -3: must be 0 or more" in capsys.readouterr().err
    assert not (tmp_path / "r" / "summary.json").exists()
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--modcrop", "0", "--quiet",
                 "--out", str(tmp_path / "r"), "--data-root", str(bench_root)]) == 2


def test_16_bit_rgb_png_is_refused(tmp_path):
    import cv2

    from aesop_bench.imageio import read_image

    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), np.full((8, 8, 3), 40000, dtype=np.uint16))
    with pytest.raises(InputError, match="16-bit"):
        read_image(path)
    cv2.imwrite(str(tmp_path / "ok.png"), np.full((8, 8, 3), 200, dtype=np.uint8))
    assert read_image(tmp_path / "ok.png").shape == (3, 8, 8)


@pytest.mark.parametrize("name", ["../../x.pth", "/tmp/x.pth", "sub/x.pth", ".."])
def test_manifest_file_names_stay_in_the_cache(name, tmp_path, monkeypatch):
    from aesop_bench import weights as wm

    extra = tmp_path / "m.json"
    extra.write_text(json.dumps({"entries": [{"name": "evil", "file": name, "urls": ["file:///dev/null"]}]}))
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", str(extra))
    with pytest.raises(AesopBenchError, match="must be a plain file name"):
        wm.manifest()
    assert not (tmp_path / "x.pth").exists()


def test_malformed_alpha_and_tiles_are_clear_errors(bench_root, tmp_path, capsys):
    from aesop_bench.models.zoo import resolve_model

    with pytest.raises(AesopBenchError, match="write interp:A,B@ALPHA"):
        resolve_model("interp:rrdb_psnr,esrgan@0.5.")
    for tile in ("0", "1", "7"):
        assert main(["eval", "--model", "bicubic", "--sets", "set5", "--tile", tile, "--quiet",
                     "--out", str(tmp_path / "r"), "--data-root", str(bench_root)]) == 2
        assert "the tile must be at least 8 LR pixels and larger than the overlap" in capsys.readouterr().err


def test_marks_follow_the_displayed_precision():
    from pathlib import Path

    from aesop_bench.report.runs import Run
    from aesop_bench.report.tables import build_table

    def run(label, v):
        return Run(path=Path(label), label=label, model=label, identity="", protocol={}, versions={},
                   sets={"set14": {"n_images": 14, "metrics": {"psnr": v}}})

    t = build_table([run("a", 14.0102), run("b", 14.0098), run("c", 13.9)], "generic", metrics=["psnr"],
                    sets=["set14"])
    ranks = [t.cells[("psnr", "set14", i)].rank for i in range(3)]
    assert ranks == [1, 1, 2]  # 14.010 and 14.010 are shown equal: both bold


def test_one_writer_per_run_folder(tmp_path):
    """A second evaluation into a run folder that another is writing is refused (the lock), and the folder is
    free again once the first has finished."""
    from aesop_bench.protocols import get_protocol
    from aesop_bench.evaluation.store import ResultStore

    model = {"name": "m", "identity": "m-1"}
    first = ResultStore(tmp_path / "run", model, get_protocol("paper").as_dict())
    with pytest.raises(AesopBenchError, match="being written by another evaluation"):
        ResultStore(tmp_path / "run", model, get_protocol("basicsr").as_dict())
    first.add("set5", "baby", {"psnr": (30.0, "psnr-y-v2")})
    first.close()
    with pytest.raises(AesopBenchError, match="holds results of model 'm' under protocol 'paper'"):
        ResultStore(tmp_path / "run", model, get_protocol("basicsr").as_dict())
    ResultStore(tmp_path / "run", model, get_protocol("paper").as_dict()).close()


def test_partial_sets_are_marked_not_ranked():
    from pathlib import Path

    from aesop_bench.report.runs import Run
    from aesop_bench.report.tables import build_table, to_markdown

    def run(label, v, n):
        return Run(path=Path(label), label=label, model=label, identity="", protocol={}, versions={},
                   sets={"set14": {"n_images": n, "metrics": {"psnr": v}}})

    t = build_table([run("a", 30.0, 2), run("b", 25.0, 14), run("c", 24.0, 14)], "generic", metrics=["psnr"])
    assert [t.cells[("psnr", "set14", i)].rank for i in range(3)] == [0, 1, 2]
    text = to_markdown(t)
    assert "30.000 (n=2/14)" in text and "covers K of the set's N images" in text


def _eval(model, sets, out, *extra):
    return main(["eval", "--model", model, "--sets", sets, "--metrics", "psnr", "--quiet", "--out", str(out),
                 *extra])


def test_tiny_images_are_refused_by_name(tmp_path, capsys):
    from PIL import Image

    for side in (1, 3):
        folder = tmp_path / f"tiny{side}"
        folder.mkdir()
        Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(folder / "dot.png")
        assert _eval("bicubic", str(folder), tmp_path / f"r{side}") == 2
        err = capsys.readouterr().err
        assert f"dot.png: {side}x{side} pixels is too small for the protocol" in err and "Traceback" not in err


def test_broken_checkpoints_and_cards_are_refused_by_name(tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    from aesop_bench.models.archs.rrdbnet_arch import RRDBNet

    folder = tmp_path / "set"
    folder.mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(folder / "a.png")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 100)
    whole = tmp_path / "whole.safetensors"
    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(whole),
              metadata={"arch": '"rrdb"', "opts": json.dumps({"num_feat": 8, "num_block": 1, "num_grow_ch": 4})})
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    not_json = tmp_path / "notjson.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(not_json), metadata={"arch": "rrdb"})
    unknown = tmp_path / "unknown.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(unknown),
              metadata={"arch": '"rrdb"', "opts": json.dumps({"num_feat": 8, "wings": 2})})
    for path, words in ((garbage, "not a readable safetensors file"), (truncated, "not a readable safetensors file"),
                        (not_json, "is not JSON"), (unknown, "wings")):
        assert _eval(str(path), str(folder), tmp_path / path.stem) == 2
        err = capsys.readouterr().err
        assert words in err and ("unknown" in str(path) or path.name in err) and "Traceback" not in err, err
    assert _eval(str(whole), str(folder), tmp_path / "ok") == 0  # the intact file evaluates
    card = tmp_path / "evil.yaml"
    card.write_text("arch: !!python/object/apply:os.system ['touch pwned']\nweights: whole.safetensors\n")
    assert _eval(str(card), str(folder), tmp_path / "card") == 2
    assert "the model card is refused" in capsys.readouterr().err
    assert not (tmp_path / "pwned").exists() and not torch.cuda.is_initialized()


def test_a_full_disk_is_one_clear_message(bench_root, tmp_path, monkeypatch, capsys):
    import errno

    from aesop_bench.evaluation.store import ResultStore

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.rows_path))

    monkeypatch.setattr(ResultStore, "add", full)
    assert _eval("bicubic", "set5", tmp_path / "r", "--data-root", str(bench_root)) == 2
    err = capsys.readouterr().err
    assert "no space left on the device writing" in err and "rows.jsonl" in err and "resumes" in err
    assert "Traceback" not in err


def test_image_formats_the_rules_do_not_define_are_refused(tmp_path, monkeypatch):
    """16-bit RGB TIFF and PPM (Pillow reads them as 8-bit), CMYK and LAB, animated PNG/WebP/TIFF, an EXIF
    orientation, and an image over the pixel limit: each refused naming the file; 8-bit files of the same formats
    are read."""
    import cv2
    from PIL import Image

    from aesop_bench.imageio import read_image

    deep = (np.arange(8 * 8 * 3).reshape(8, 8, 3) * 700).astype(np.uint16)
    frames = [Image.new("RGB", (8, 8), (40 * i, 0, 0)) for i in range(3)]
    exif = Image.Exif()
    exif[0x0112] = 6
    cases = {
        "deep.tif": (lambda p: cv2.imwrite(str(p), deep), "16-bit image"),
        "deep.ppm": (lambda p: cv2.imwrite(str(p), deep), "16-bit image"),
        "cmyk.tif": (lambda p: Image.new("CMYK", (8, 8), (1, 2, 3, 4)).save(p), "a CMYK image"),
        "lab.tif": (lambda p: Image.new("LAB", (8, 8), (1, 2, 3)).save(p), "a LAB image"),
        "anim.png": (lambda p: frames[0].save(p, save_all=True, append_images=frames[1:]), "3 frames"),
        "anim.webp": (lambda p: frames[0].save(p, save_all=True, append_images=frames[1:], lossless=True),
                      "3 frames"),
        "pages.tif": (lambda p: frames[0].save(p, save_all=True, append_images=frames[1:]), "3 frames"),
        "turned.jpg": (lambda p: frames[0].save(p, exif=exif.tobytes()), "EXIF orientation 6"),
    }
    for name, (make, msg) in cases.items():
        make(tmp_path / name)
        with pytest.raises(InputError, match=f"{name}: .*{msg}"):
            read_image(tmp_path / name)
    for name in ("ok.tif", "ok.ppm"):
        cv2.imwrite(str(tmp_path / name), deep.astype(np.uint8)[..., ::-1])
        assert read_image(tmp_path / name).permute(1, 2, 0).numpy().tolist() == deep.astype(np.uint8).tolist()
    monkeypatch.setenv("AESOP_BENCH_MAX_PIXELS", "60")  # the 8x8 image has 64
    with pytest.raises(InputError, match="ok.tif: .*AESOP_BENCH_MAX_PIXELS"):
        read_image(tmp_path / "ok.tif")
    monkeypatch.setenv("AESOP_BENCH_MAX_PIXELS", str(2 * 89478485))
    assert read_image(tmp_path / "ok.tif").shape == (3, 8, 8)
    monkeypatch.setenv("AESOP_BENCH_MAX_PIXELS", "lots")  # a setting, not an image, is wrong
    with pytest.raises(ConfigError, match=r"\$AESOP_BENCH_MAX_PIXELS='lots': give a whole number of pixels"):
        read_image(tmp_path / "ok.tif")


def test_damaged_run_files_are_clear_errors(tmp_path):
    from aesop_bench.evaluation.store import ResultStore
    from aesop_bench.protocols import get_protocol

    model, prot = {"name": "m", "identity": "m-1"}, get_protocol("paper").as_dict()
    run = tmp_path / "run"
    ResultStore(run, model, prot).close()
    (run / "run.json").write_bytes(b"\xff{not json")
    with pytest.raises(AesopBenchError, match="run.json is damaged"):
        ResultStore(run, model, prot)
    (run / "run.json").unlink()
    good = json.dumps({"set": "s", "image": "a", "metric": "psnr", "value": 30.0, "version": "v"})
    for bad, msg in ((json.dumps({"set": "s", "image": "b", "metric": "psnr", "version": "v"}), "'value'"),
                     (json.dumps({"set": "s", "image": "b", "metric": "psnr", "value": "x", "version": "v"}),
                      "value is not a number")):
        (run / "rows.jsonl").write_text(f"{good}\n{bad}\n{good}\n")
        with pytest.raises(AesopBenchError, match=f"rows.jsonl: line 2 is corrupt .*{msg}"):
            ResultStore(run, model, prot)
    # a binary tail (a kill mid-write) is dropped; a last row without its newline is ended before the next append
    (run / "rows.jsonl").write_bytes(f"{good}\n".encode() + b"\x00\xff\xfe")
    store = ResultStore(run, model, prot)
    assert list(store.rows) == [("s", "a", "psnr")]
    store.close()
    (run / "rows.jsonl").write_text(good)
    store = ResultStore(run, model, prot)
    store.add("s", "b", {"psnr": (31.0, "v")})
    store.close()
    assert sorted(ResultStore(run, model, prot).rows) == [("s", "a", "psnr"), ("s", "b", "psnr")]


def test_a_run_that_stored_nothing_leaves_its_folder_free(tmp_path):
    from aesop_bench.evaluation.store import ResultStore
    from aesop_bench.protocols import get_protocol

    ResultStore(tmp_path / "run", {"name": "Set14", "identity": "x"}, get_protocol("paper").as_dict()).close()
    ResultStore(tmp_path / "run", {"name": "bicubic", "identity": "y"}, get_protocol("basicsr").as_dict()).close()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["model"]["name"] == "bicubic"


def test_unknown_options_devices_and_mistyped_cards(bench_root, tmp_path, capsys):
    import aesop_bench as ab
    from aesop_bench.models.zoo import resolve_model

    with pytest.raises(AesopBenchError, match="protocol option foo unknown"):
        ab.protocol(foo=1)
    for device in ("mps", "foo"):
        assert main(["eval", "--model", "bicubic", "--sets", "set5", "--device", device, "--quiet",
                     "--data-root", str(bench_root), "--out", str(tmp_path / "r")]) == 2
        assert f"--device '{device}': use cpu, cuda or cuda:N" in capsys.readouterr().err
    with pytest.raises(AesopBenchError, match="--device 'mps'"):
        ab.evaluate("bicubic", sets="set5", device="mps", data_root=bench_root, download=False)
    (tmp_path / "w.pth").write_bytes(b"")
    cards = {"arch_opts: 1.5": "arch_opts: the architecture's options are a mapping",
             "arch_opts: [1]": "arch_opts: the architecture's options are a mapping",
             "arch_opts: {num_feat: -3}": "num_feat = -3; give a whole number from 1",
             "arch_opts: {num_block: 100000000}": "num_block = 100000000; give a whole number from 1 to 100",
             "arch_opts: {scale: 2}": "takes no option 'scale' .the scale comes from the protocol",
             "weights: 3": "weights 3: give a checkpoint path",
             "weights: null": "weights None: give a checkpoint path",
             "arch: [rrdb]": r"arch \['rrdb'\] unknown"}
    for line, msg in cards.items():
        fields = {"arch": "arch: rrdb", "weights": "weights: w.pth"}
        fields[line.split(":")[0]] = line
        (tmp_path / "card.yaml").write_text("\n".join(fields.values()) + "\n")
        with pytest.raises(AesopBenchError, match=msg):
            resolve_model(str(tmp_path / "card.yaml"))


def test_mistyped_training_configs_name_the_key(tmp_path):
    from aesop_bench.train.config import load_config
    from aesop_bench.train.nets import build_generator

    config = "smoke_ldl"
    cases = {"data.scale=0": "data.scale: 0", "data.batch=0": "data.batch: 0", "checkpoint_every=0":
             "checkpoint_every: 0", "log_every=0": "log_every: 0", "optim_g.lr=-1e-4": "optim_g.lr: -0.0001",
             "optim_d.betas=[0.9]": r"optim_d.betas: \[0.9\]", "data.workers=-1": "data.workers: -1",
             "seed=-1": "seed: -1", "steps=-5": "steps: -5", "ema=1.5": "ema: 1.5",
             "generator.opts={num_block: 100000000}": "generator.opts: num_block = 100000000"}
    for override, msg in cases.items():
        with pytest.raises(AesopBenchError, match=f"config {msg}"):
            load_config(config, [override])
    with pytest.raises(AesopBenchError, match="config losses .* weight: -1.0; a loss weight is 0 or more"):
        load_config(config, ["losses=[{type: ldl, weight: -1}, {type: gan, weight: 0.005}]"])
    with pytest.raises(AesopBenchError, match="config data.scale 3 / generator: rrdb at x3"):
        build_generator(load_config(config, ["data.scale=3", "data.patch=96"]))


def test_a_mistyped_validation_set_fails_before_training(tmp_path, shared_data):
    from aesop_bench.train.config import load_config
    from aesop_bench.train.trainer import Trainer

    for value, msg in (("set55", "config val.set: unknown benchmark set 'set55'"),):
        cfg = load_config("smoke_ae", [f"val.set={value}", "val.every=5"])
        with pytest.raises(AesopBenchError, match=msg):
            Trainer(cfg, tmp_path / "run", shared_data / "train", log=lambda m: None)
    assert not (tmp_path / "run" / "ckpt").exists()


def test_an_unvouched_model_never_resumes_but_its_torchrun_ranks_share_the_folder(tmp_path):
    from aesop_bench.evaluation.store import ResultStore
    from aesop_bench.protocols import get_protocol

    prot = get_protocol("paper").as_dict()
    first = ResultStore(tmp_path / "run", {"name": "Up", "identity": "module:Up-x4-0f-uncached-111"}, prot)
    first.add("s", "a", {"psnr": (30.0, "v")})
    other_rank = ResultStore(tmp_path / "run", {"name": "Up", "identity": "module:Up-x4-0f-uncached-222"}, prot,
                             rank=1)  # the same call on another rank drew its own suffix
    assert other_rank.model["identity"] == "module:Up-x4-0f-uncached-111"
    first.close()
    with pytest.raises(AesopBenchError, match="resumes a run folder only under the identity="):
        ResultStore(tmp_path / "run", {"name": "Up", "identity": "module:Up-x4-0f-uncached-333"}, prot)
    with pytest.raises(AesopBenchError, match="holds results of model"):
        ResultStore(tmp_path / "run", {"name": "Up", "identity": "module:Down-x4-0f-uncached-444"}, prot, rank=1)
