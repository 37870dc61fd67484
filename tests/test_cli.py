"""The command line as a user meets it: run names, `--save-sr` on a finished run, argument errors, `--help` and
the messages of common mistakes, `aesop-bench cache`."""

from __future__ import annotations

import os
import re
import stat

import pytest
import torch

from aesop_bench.cli import build_parser, main
from aesop_bench.errors import AesopBenchError
from aesop_bench.models.zoo import short_name


def test_default_run_names_are_distinct():
    assert short_name("runs/train/aesop_x/ema.safetensors") == "aesop_x-ema"
    assert short_name("runs/train/ldl_x/ema.safetensors") == "ldl_x-ema"
    assert short_name("runs/train/aesop_x/ckpt/step_0005000/net_g_ema.safetensors") == "aesop_x-step_0005000-net_g_ema"
    assert short_name("weights/RRDB_ESRGAN_x4.pth") == "RRDB_ESRGAN_x4"
    a, b = (short_name(f"interp:runs/train/a/ema.safetensors,esrgan@{x}") for x in ("0.3", "0.35"))
    assert a == "a-ema->esrgan@0.3" and b == "a-ema->esrgan@0.35"
    assert short_name("aesop_swinir") == "aesop_swinir"


def test_save_sr_on_a_finished_run_writes_the_images(bench_root, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr", "--quiet", "--out", str(out),
            "--data-root", str(bench_root)]
    assert main(args) == 0
    assert not (out / "sr").exists()
    assert main(args + ["--save-sr"]) == 0
    assert sorted(p.stem for p in (out / "sr" / "set5").glob("*.png")) == ["baby", "bird", "butterfly", "head",
                                                                          "woman"]
    assert oct(stat.S_IMODE(os.stat(out / "summary.json").st_mode) & 0o044) == oct(0o044 & ~_umask() & 0o044)


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_arguments_say_what_is_wrong(tmp_path, capsys):
    assert main(["weights", "download"]) == 2
    assert "name the weights to download" in capsys.readouterr().err
    assert main(["weights", "verify", "nosuch"]) == 2
    assert "unknown weights nosuch" in capsys.readouterr().err
    assert main(["data", "extract-subimages", "--dst", str(tmp_path / "x")]) == 2
    assert "needs SRC, the folder of HR images" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["eval", "--model", "bicubic", "--sets", "set5", "--device", "cuda"]) == 2
        assert "no CUDA device is available" in capsys.readouterr().err
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in ("data", "plot", "compare", "weights"):
        text = sub.choices[name].format_help()
        assert "default" in text or name == "weights", name  # weights has no option with a default
        undocumented = [a.dest for a in sub.choices[name]._actions if a.help is None and a.dest != "help"]
        assert not undocumented, (name, undocumented)


def test_help_and_messages_say_what_a_user_needs(tmp_path, capsys, monkeypatch):
    """--help states each default once (none as "None"); the eval and train defaults it states are the real ones;
    a checkpoint path that does not exist, an auto-encoder checkpoint, a data root that does not exist and a
    failed set download each say what is wrong and what to do; a closed pipe ends the listing quietly."""
    import subprocess
    import sys

    from aesop_bench.data.manage import download_set
    from aesop_bench.models.zoo import resolve_model
    from aesop_bench.train.checkpoint import save_weights

    parser = build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name, sub in subs.items():
        text = sub.format_help()
        options = re.split(r"\n  (?=-)", text.split("options:", 1)[-1])
        for opt in options:
            flat = " ".join(opt.split())
            assert not re.search(r"default.*\(default: ", flat, re.I), (name, flat)  # said twice
            assert "(default: None)" not in flat and "(default: )" not in flat, (name, flat)
    helps = {a.dest: a.help for a in subs["eval"]._actions}
    assert "12 under paper" in helps["modcrop"]
    assert "runs/train/NAME" in {a.dest: a.help for a in subs["train"]._actions}["out"]
    from aesop_bench.protocols import get_protocol

    assert get_protocol("paper").effective_modcrop == 12 and get_protocol("basicsr").effective_modcrop == 4

    with pytest.raises(AesopBenchError, match=r"--model .*nope\.pth: file not found"):
        resolve_model(str(tmp_path / "nope.pth"))
    ae = tmp_path / "ae_ema.safetensors"
    save_weights(torch.nn.Conv2d(3, 3, 1), ae, {"arch": "ae", "opts": {}, "scale": 4, "step": 1})
    with pytest.raises(AesopBenchError, match=r"auto-encoder .* not an SR network; use it as the AE of ae_psnr") as e:
        resolve_model(str(ae))
    assert "--arch" not in str(e.value)

    assert main(["data", "verify", "set5", "--data-root", str(tmp_path / "nowhere")]) == 1  # a set not verified
    assert "the data root " + str(tmp_path / "nowhere") + " does not exist" in capsys.readouterr().out
    monkeypatch.setenv("AESOP_BENCH_GITHUB_RAW", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(AesopBenchError, match=r"If Set5 is already on this machine, give the folder that "
                                              r"holds it with --data-root \(or \$AESOP_BENCH_DATA\)"):
        download_set("set5", tmp_path / "data", log=None)

    proc = subprocess.Popen([sys.executable, "-m", "aesop_bench", "models", "list"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before anything is written (`| head` that has read its lines)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=3600) == 0 and "Traceback" not in err, err


def test_cache_lists_sizes_and_clears_only_what_is_recomputed(tmp_path, capsys):
    from aesop_bench.metrics.hrcache import HRCache
    from aesop_bench.paths import features_dir, hr_features_dir, sr_cache_dir, weights_dir

    hr = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    HRCache("lpips-test", "cpu").get_batch(hr, lambda x: [torch.ones(1, 500_000)])  # 2 MB of float32 and a header
    for folder, size in ((sr_cache_dir(), 3_000_000), (features_dir(), 1_000_000), (weights_dir(), 5_000_000)):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "x.bin").write_bytes(b"\0" * size)
    assert main(["cache"]) == 0
    listed = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()[1:-1]}
    assert (listed["sr"], listed["features"], listed["hr_features"], listed["weights"]) == ("3.0", "1.0", "2.0", "5.0")
    assert main(["cache", "clear", "weights"]) == 2
    assert "weights forget" in capsys.readouterr().err
    assert main(["cache", "clear", "hr_features"]) == 0 and not hr_features_dir().exists()
    assert sr_cache_dir().exists() and features_dir().exists()
    assert main(["cache", "clear", "all"]) == 0
    assert not sr_cache_dir().exists() and not features_dir().exists()
    assert (weights_dir() / "x.bin").is_file()  # downloads are not a cache


def test_version_and_the_missing_set_message(tmp_path, capsys):
    """`--version` names the installed version; a missing set's message is one sentence that says both ways to
    get it, and `eval --help` says --no-download covers weights too."""
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"aesop-bench {version('aesop-bench')}"
    assert main(["eval", "--model", "bicubic", "--sets", "manga109", "--metrics", "psnr", "--no-download",
                 "--data-root", str(tmp_path), "--quiet", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "Run `aesop-bench data download manga109`, or point --data-root / AESOP_BENCH_DATA at" in err, err
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "neither sets nor weights" in " ".join(capsys.readouterr().out.split())


def test_no_download_lists_every_missing_set_before_computing(bench_root, tmp_path, capsys):
    """`--no-download` with two of three sets missing: one error naming both, and nothing computed (no run
    folder), where the run used to compute Set5 and stop at the first missing set."""
    root = tmp_path / "data"
    root.mkdir()
    (root / "Set5").symlink_to(bench_root / "Set5")
    assert main(["eval", "--model", "bicubic", "--sets", "set5,manga109,urban100", "--metrics", "psnr",
                 "--no-download", "--data-root", str(root), "--quiet", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "2 of the 3 sets are not at hand" in err and "'manga109' not found" in err and "'urban100' not found" in err
    assert not (tmp_path / "run").exists()


def test_a_mistyped_option_is_named_by_its_command_with_the_nearest_one(capsys):
    with pytest.raises(SystemExit) as done:
        main(["eval", "--model", "bicubic", "--metrcis", "psnr"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.startswith("usage: aesop-bench eval")
    assert "aesop-bench eval: error: unrecognized arguments: --metrcis psnr; did you mean --metrics?" in err


def test_models_list_columns_line_up(capsys):
    """Every row's architecture starts where the header's `arch` does (the longest zoo name included)."""
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    col = lines[0].index("arch")
    assert all(line[col - 1] == " " and line[col] != " " for line in lines[1:]), lines


def test_each_command_is_built_beside_its_handler_and_only_handlers_print():
    """Every command's parser is added by the module that holds its handler; in the command modules only the
    handlers (``cmd_*``), ``main`` and the stderr log print: the functions they call return what to show."""
    import ast
    from pathlib import Path

    from aesop_bench import cli

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == ["eval", "data", "train", "report", "reproduce", "verify", "iqa-alignment", "plot",
                                 "compare", "metrics", "results", "models", "cache", "weights"]  # --help's order
    adders = {add.__name__.removeprefix("add_").replace("_", "-"): add.__module__ for add in cli.COMMANDS}
    for name, parser in sub.choices.items():
        handler = parser.get_default("func")
        assert handler.__module__ == adders[name] != "aesop_bench.cli", name
    printing = {}
    for path in Path(cli.__file__).parent.glob("*.py"):
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, ast.FunctionDef) and not (fn.name.startswith("cmd_") or fn.name in ("main", "_stderr")):
                calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "print"]
                if calls:
                    printing[f"{path.name}:{fn.name}"] = len(calls)
    assert not printing, printing


def test_clearing_caches_returns_what_it_deleted_and_prints_nothing(capsys):
    from aesop_bench.cli.inventory import clear_caches
    from aesop_bench.paths import features_dir, sr_cache_dir

    sr_cache_dir().mkdir(parents=True, exist_ok=True)
    (sr_cache_dir() / "x.bin").write_bytes(b"\0" * 1000)
    assert clear_caches(["sr", "features"]) == [("sr", 1000, sr_cache_dir()), ("features", 0, features_dir())]
    assert not sr_cache_dir().exists() and capsys.readouterr().out == ""
    with pytest.raises(AesopBenchError, match="weights and sets are not caches"):
        clear_caches(["sr", "weights"])
