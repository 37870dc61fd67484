"""Environment variables with values that cannot be used are refused with an error naming the variable, its value
and what to write, never a traceback: the cache budgets, the folders, the extra weights manifest."""

from __future__ import annotations

import json

import pytest

from aesop_bench.cache import BUDGETS, budget_bytes, check_budgets
from aesop_bench.cli import main
from aesop_bench.errors import AesopBenchError

BUDGET_VARS = [env for env, _ in BUDGETS.values()]
NOT_SIZES = ["nan", "inf", "-inf", "1e400", "-1", "2e9", "ten"]


@pytest.mark.parametrize("value", NOT_SIZES)
@pytest.mark.parametrize("var", BUDGET_VARS)
def test_a_budget_that_is_not_a_size_is_refused_by_aesop_bench_cache(monkeypatch, capsys, var, value):
    monkeypatch.setenv(var, value)
    assert main(["cache"]) == 2
    err = capsys.readouterr().err
    assert f"${var}={value!r}: give the" in err and "size in GB, a number from 0 (off) to 1e9 (no limit)" in err
    assert "Traceback" not in err
    with pytest.raises(AesopBenchError, match=var):
        check_budgets()


@pytest.mark.parametrize("value,gb", [("0", 0.0), (" 2.5 ", 2.5), ("1e9", 1e9), ("", None)])
def test_a_budget_from_0_to_1e9_gb_is_taken(monkeypatch, capsys, value, gb):
    monkeypatch.setenv("AESOP_BENCH_SR_CACHE_GB", value)
    want = BUDGETS["sr"][1] if gb is None else gb
    assert budget_bytes("sr") == int(want * 1e9)
    assert main(["cache"]) == 0
    assert f"budget {want:g} GB ($AESOP_BENCH_SR_CACHE_GB)" in capsys.readouterr().out


@pytest.mark.parametrize("var", ["AESOP_BENCH_SR_CACHE_GB", "AESOP_BENCH_HR_CACHE_GB"])
@pytest.mark.parametrize("value", ["nan", "inf", "1e400"])
def test_eval_refuses_a_budget_that_is_not_a_size(bench_root, tmp_path, monkeypatch, capsys, var, value):
    """Before any work: no run folder is written, and the message is the variable's alone."""
    monkeypatch.setenv(var, value)
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr", "--out", str(tmp_path / "run"),
                 "--data-root", str(bench_root), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"aesop-bench: error: ${var}={value!r}") and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("var", ["AESOP_BENCH_HOME", "AESOP_BENCH_DATA", "AESOP_BENCH_WEIGHTS", "XDG_CACHE_HOME"])
def test_a_folder_under_an_unknown_users_home_is_refused(monkeypatch, capsys, var):
    value = "~no-such-user-aesop-bench/cache"
    if var == "XDG_CACHE_HOME":
        monkeypatch.delenv("AESOP_BENCH_HOME")
    monkeypatch.setenv(var, value)
    assert main(["cache"]) == 2
    err = capsys.readouterr().err
    assert f"${var}={value!r}: ~no-such-user-aesop-bench names no home folder" in err
    assert "give the folder's full path" in err


@pytest.mark.parametrize("content,says", [
    ("[1, 2]", 'expected a JSON object {"entries": [{"name"'),
    ('{"entries": 5}', 'expected a JSON object {"entries": [{"name"'),
    ('{"entries": ["toy"]}', "weights entry 'toy': give a JSON object"),
    ('{"entries": [{"file": "toy.pth"}]}', "weights entry None: name None is not a name"),
    ('{"entries": [{"name": "toy", "file": 7}]}', "weights entry 'toy': file 7 is not a file name"),
    ('{"entries": [{"name": "toy", "file": "toy.pth", "urls": "https://x/toy.pth"}]}', "is not a list of URLs"),
    ('{"entries": [{"name": "toy", "file": "toy.pth", "sha256": "ABC"}]}', "sha256 'ABC' is not 64 lowercase hex"),
    ('{"entries": [{"name": "toy", "file": "toy.pth", "size": "12"}]}', "size '12' is not a number of bytes"),
])
def test_an_extra_weights_manifest_that_is_not_one_is_refused(tmp_path, monkeypatch, capsys, content, says):
    manifest = tmp_path / "m.json"
    manifest.write_text(content)
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", str(manifest))
    assert main(["weights", "list"]) == 2
    err = capsys.readouterr().err
    assert f"AESOP_BENCH_WEIGHTS_MANIFEST={manifest}: " in err and says in err


def test_an_extra_weights_manifest_that_is_not_text_is_refused(tmp_path, monkeypatch, capsys):
    manifest = tmp_path / "m.json"
    manifest.write_bytes(b"\xff\xfe\x00{")
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", str(manifest))
    assert main(["weights", "list"]) == 2
    assert f"AESOP_BENCH_WEIGHTS_MANIFEST={manifest}: cannot read it" in capsys.readouterr().err


def test_a_well_formed_extra_manifest_is_taken(tmp_path, monkeypatch):
    from aesop_bench import weights

    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"entries": [{"name": "toy", "file": "toy.pth", "urls": [], "sha256": "a" * 64,
                                                 "sha256_prefix": None, "size": 12, "used_by": ["tests"]}]}))
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", str(manifest))
    assert weights.entry("toy").size == 12


@pytest.mark.parametrize("var, value", [("RANK", "x"), ("WORLD_SIZE", "-1"), ("LOCAL_RANK", "1.5")])
def test_a_torchrun_variable_that_is_not_a_rank_is_refused(bench_root, tmp_path, monkeypatch, capsys, var, value):
    monkeypatch.setenv(var, value)
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr", "--no-download", "--quiet",
                 "--out", str(tmp_path / "run")]) == 2
    assert f"${var}={value!r}: torchrun sets it to a whole number" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["inf", "1e400", "0", "soon"])
def test_a_rank_timeout_that_is_not_minutes_is_refused(monkeypatch, value):
    from aesop_bench.distributed import timeout

    monkeypatch.setenv("AESOP_BENCH_DIST_TIMEOUT", value)
    with pytest.raises(AesopBenchError, match=r"AESOP_BENCH_DIST_TIMEOUT=.*the minutes a rank may wait"):
        timeout()


@pytest.mark.parametrize("value", ["http://127.0.0.1/{}", "http://127.0.0.1/{name}", "http://127.0.0.1/{"])
def test_a_drive_template_without_its_id_field_is_refused(monkeypatch, value):
    from aesop_bench.download import http_url

    monkeypatch.setenv("AESOP_BENCH_GDRIVE_FILE", value)
    with pytest.raises(AesopBenchError, match=r"AESOP_BENCH_GDRIVE_FILE=.*with \{id\} where the Drive id goes"):
        http_url("gdrive://abc")
