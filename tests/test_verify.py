"""``aesop-bench verify``: the status of a claimed number at its rounding boundaries (decimal arithmetic on the
printed digits), the shipped claims against the results page and the paper's tables, and an end-to-end run on
Set5/Set14 with MATLAB bicubic (whose published numbers are the known answer), a small stand-in network and a
zoo model whose weights are absent, offline."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import replace
from decimal import Decimal

import numpy as np
import pytest
import torch

from aesop_bench.cli import main
from aesop_bench.errors import ConfigError
from aesop_bench.report.claims import CONSISTENT, DIFFERS, NOT_VERIFIABLE, VERIFIED, judge, load_claims, rounds_to


@pytest.mark.parametrize("measured, expected", [
    (25.925, True),      # the lower boundary of 25.93 rounds up (half up), though the float lies below it
    (25.9249999, False),  # just under it
    (25.93499999, True),  # just under the upper boundary
    (25.935, False),     # the upper boundary rounds to 25.94
    (np.float64(25.925), True),  # a numpy float is its shortest decimal form too
])
def test_a_claim_covers_its_half_up_interval_of_printed_digits(measured, expected):
    assert rounds_to(measured, "25.93") is expected


def test_floats_below_their_printed_boundary_round_as_printed():
    """25.935 and 26.145 are stored a little below themselves, so the binary value (Python's round) falls on the
    other side of the boundary than the printed number does."""
    assert Decimal(25.935) < Decimal("25.935")  # noqa: RUF032 - the float's binary value and round(25.935, 2) == 25.93
    assert not rounds_to(25.935, "25.93") and rounds_to(25.935, "25.94")
    assert Decimal(26.145) < Decimal("26.145")  # noqa: RUF032 and round(26.145, 2) == 26.14
    assert rounds_to(26.145, "26.15") and not rounds_to(26.145, "26.14")  # Urban100's claim: 26.15


def test_the_papers_printed_digits_and_trailing_zeros_count():
    assert rounds_to(25.9295, "25.930") and not rounds_to(25.9305, "25.930") and not rounds_to(25.93, "25.9300001")
    assert rounds_to(0.085, "0.09") and not rounds_to(0.0849999, "0.09") and not rounds_to(0.095, "0.09")
    assert rounds_to(Decimal("0.0893"), "0.09") and rounds_to("27.421", "27.42")
    assert not rounds_to(float("inf"), "80.00") and not rounds_to(float("nan"), "0.09")


@pytest.mark.parametrize("measured, status, text", [
    (25.9295, VERIFIED, "verified"),          # rounds to 25.93 and to the paper's 25.930
    (25.925, CONSISTENT, "consistent"),       # rounds to 25.93, to the paper's digits 25.925
    (25.9349, CONSISTENT, "consistent"),
    (25.935, DIFFERS, "differs (by +0.005)"),
    (25.9249999, DIFFERS, "differs (by -0.005)"),
    (25.812, DIFFERS, "differs (by -0.118)"),
])
def test_status_at_the_boundaries_of_claim_and_paper(measured, status, text):
    v = judge("25.93", measured, "25.930", places=3)
    assert (v.status, v.text) == (status, text)
    assert v.delta == Decimal(repr(measured)) - Decimal("25.93")


def test_a_model_that_is_not_the_papers_is_never_verified_nor_consistent():
    v = judge("25.93", 25.930, "25.930", doubts=["not the paper's model: released 190K checkpoint"])
    assert v.status == NOT_VERIFIABLE and v.text == "not verifiable here (not the paper's model: released 190K " \
                                                    "checkpoint)"
    assert v.rounds_to_claim and v.rounds_to_paper and v.delta == 0  # the measured value is kept and shown
    missing = judge("25.93", None, "25.930", missing=["weights aesop_swinir missing"])
    assert missing.status == NOT_VERIFIABLE and missing.delta is None and "weights aesop_swinir missing" in missing.text


def test_which_models_are_the_papers_own():
    """The zoo's esrgan is the paper's RRDB ESRGAN (patch 128) column and nothing else; aesop_swinir's released file
    is 190K iterations where the paper's column is 300K; bicubic is no column of Table 1."""
    from aesop_bench.report.claims import Claim, model_doubts

    def claim(model, backbone, method, patch):
        return Claim("Set14 - 4x", "set14", "psnr", "27.42", "table1", backbone, method, patch, model, "paper", "t",
                     "27.421")

    assert model_doubts(claim("esrgan", "RRDB", "ESRGAN", "128")) == []  # its weights are not here: no hash to doubt
    [other] = model_doubts(claim("esrgan", "SwinIR", "AESOP", "256"))
    assert other.short == "not the paper's model: esrgan is the paper's RRDB ESRGAN 128"
    [released] = model_doubts(claim("aesop_swinir", "SwinIR", "AESOP", "256"))
    assert released.short == "not the paper's model: aesop_swinir is AESOP_SwinIR256_190K.pth"
    assert "300K" in released.detail
    assert model_doubts(claim("bicubic", "SwinIR", "AESOP", "256"))[0].short.startswith("not the paper's model")


def _seed_page(shared_data):
    page = shared_data.parent / "docs" / "seeds" / "000_a1f48f5db5a37b4b.txt"
    if not page.is_file():
        pytest.skip(f"{page}: the results page's text is not here")
    return re.findall(r"^(.+ - 4x upscaling)AESOP(PSNR|SSIM|LPIPS|DISTS)([\d.]+)Unverified$", page.read_text(),
                      re.MULTILINE)


def test_the_shipped_claims_are_the_results_pages_and_round_from_table1_swinir_aesop_256(shared_data,
                                                                                       reference_data):
    page = _seed_page(shared_data)
    claims = load_claims("aesop")
    assert len(page) == 6
    assert [(c.site_label, c.metric.upper(), c.claimed) for c in claims.claims] == page
    with open(reference_data / "aesop_paper_tables.csv") as f:
        column = {(r["set"], r["metric"]): r["value"] for r in csv.DictReader(f)
                  if (r["table"], r["backbone"], r["method"], r["train_patch"]) == ("table1", "SwinIR", "AESOP", "256")}
    for c in claims.claims:
        assert (c.table, c.backbone, c.method, c.train_patch, c.model, c.protocol) == \
            ("table1", "SwinIR", "AESOP", "256", "aesop_swinir", "paper")
        assert c.paper == column[(c.set, c.metric)]  # as printed: 25.930, 0.8880
        assert rounds_to(c.paper, c.claimed), c


HEADER = "site_label,set,metric,claimed,table,backbone,method,train_patch,model,protocol,source\n"


def test_unknown_claims_and_bad_rows_are_refused_naming_what_is_valid(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"unknown claims 'nope': give one of aesop, or the path"):
        load_claims("nope")
    assert main(["verify", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown claims 'nope'" in capsys.readouterr().err and not (tmp_path / "verify").exists()
    bad = tmp_path / "bad.csv"
    for row, message in [("Set14,set14,psnrr,27.42,table1,SwinIR,AESOP,256,aesop_swinir,paper,x",
                           r"bad.csv line 2: unknown metric 'psnrr'"),
                          ("Set14,set14,psnr,about 27,table1,SwinIR,AESOP,256,aesop_swinir,paper,x",
                           r"claimed 'about 27': give the number as the page prints it"),
                          ("Set5,set5,psnr,27.42,table1,SwinIR,AESOP,256,aesop_swinir,paper,x",
                           r"have no value for table1, SwinIR, AESOP, 256, set5, psnr"),
                          ("Set14,set14,psnr,27.42,table1,SwinIR,AESOP,256,no_model,paper,x",
                           r"unknown zoo model 'no_model'")]:
        bad.write_text(HEADER + row + "\n")
        with pytest.raises(ConfigError, match=message):
            load_claims(str(bad))
    bad.write_text("set,metric,claimed\nset14,psnr,27.42\n")
    with pytest.raises(ConfigError, match="no column site_label, table"):
        load_claims(str(bad))


@pytest.fixture()
def claims_setup(tmp_path, monkeypatch, reference_data, bench_root):
    """A claims file of four claims, and the paper's tables they map to (published bicubic numbers, the paper's
    SwinIR AESOP Set14 PSNR): MATLAB bicubic on Set5 (the zoo's bicubic given a paper row) under the matlab protocol,
    bicubic on Set14 under paper (LDL's files absent: a fallback), a small stand-in network under the zoo's esrgan
    (its weights are not the published file), and aesop_swinir (no weights here)."""
    from aesop_bench import weights as wm
    from aesop_bench.models.archs.rrdbnet_arch import RRDBNet
    from aesop_bench.models.zoo import ZOO

    from .small_zoo import SMALL_RRDB, small_entries

    with open(reference_data / "published_x4.csv") as f:
        published = {(r["method"], r["set"]): r["psnr_y"] for r in csv.DictReader(f)}
    with open(reference_data / "aesop_paper_tables.csv") as f:
        aesop_set14 = next(r["value"] for r in csv.DictReader(f) if (r["table"], r["backbone"], r["method"],
                           r["train_patch"], r["set"], r["metric"]) == ("table1", "SwinIR", "AESOP", "256", "set14",
                                                                         "psnr"))
    paper = tmp_path / "paper.csv"
    paper.write_text("table,backbone,method,train_patch,set,metric,value\n"
                     f"ref,Bicubic,Bicubic,-,set5,psnr,{published[('bicubic', 'set5')]}\n"
                     f"ref,Bicubic,Bicubic,-,set14,psnr,{published[('bicubic', 'set14')]}\n"
                     "ref,RRDB,ESRGAN,128,set5,psnr,30.00\n"
                     f"table1,SwinIR,AESOP,256,set14,psnr,{aesop_set14}\n")
    claims = tmp_path / "page.csv"
    claims.write_text(HEADER +
                      f"Set5 - 4x,set5,psnr,{published[('bicubic', 'set5')]},ref,Bicubic,Bicubic,-,bicubic,matlab,t\n"
                      f"Set14 - 4x,set14,psnr,{published[('bicubic', 'set14')]},ref,Bicubic,Bicubic,-,bicubic,paper,t\n"
                      "Set5 - 4x,set5,psnr,30.00,ref,RRDB,ESRGAN,128,esrgan,matlab,t\n"
                      "Set14 - 4x,set14,psnr,27.42,table1,SwinIR,AESOP,256,aesop_swinir,paper,t\n")
    monkeypatch.setitem(ZOO, "bicubic", replace(ZOO["bicubic"], paper=("Bicubic", "Bicubic", "-")))
    monkeypatch.setitem(ZOO, "esrgan", small_entries()["esrgan"])
    torch.manual_seed(0)
    sd = {k: v * 0.2 if v.is_floating_point() else v for k, v in RRDBNet(**SMALL_RRDB).state_dict().items()}
    standin = tmp_path / "standin.pth"
    torch.save({"params_ema": sd}, standin)
    digest = hashlib.sha256(standin.read_bytes()).hexdigest()
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"entries": [{"name": "esrgan_official", "file": "RRDB_ESRGAN_x4.pth", "urls": [],
                                                 "sha256": digest, "used_by": ["tests"]}]}))
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", str(manifest))
    target = wm.cache_path(wm.entry("esrgan_official"))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(standin.read_bytes())
    return {"claims": claims, "paper": paper, "data": bench_root, "standin_sha256": digest, "published": published}


def _rows(out):
    return json.loads((out / "verify" / "page" / "claims.json").read_text())


def test_dry_run_writes_nothing_and_says_what_is_known(claims_setup, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["verify", str(claims_setup["claims"]), "--dry-run", "--no-download", "--out", str(out),
                 "--paper-tables", str(claims_setup["paper"]), "--data-root", str(claims_setup["data"])]) == 0
    said = capsys.readouterr().out
    assert "bicubic on set5 (psnr, protocol matlab): to compute" in said
    assert "aesop_swinir on set14 (psnr, protocol paper): not computed: weights aesop_swinir missing" in said
    assert "not the paper's model: aesop_swinir is AESOP_SwinIR256_190K.pth" in said
    assert not out.exists()


def test_verify_end_to_end_offline_then_resumed(claims_setup, tmp_path, monkeypatch, capsys):
    from aesop_bench.models.zoo import ZOO

    out = tmp_path / "out"
    args = ["verify", str(claims_setup["claims"]), "--no-download", "--quiet", "--out", str(out), "--paper-tables",
            str(claims_setup["paper"]), "--data-root", str(claims_setup["data"])]
    assert main(args) == 0
    said = capsys.readouterr().out
    report = _rows(out)
    bicubic5, bicubic14, standin, swinir = report["rows"]
    # MATLAB bicubic reproduces the published Set5 PSNR (28.42, MATLAB's convention) to its two decimals
    assert bicubic5["status"] == VERIFIED and bicubic5["paper"] == claims_setup["published"][("bicubic", "set5")]
    assert rounds_to(bicubic5["measured"], "28.42")
    # under the paper protocol Set14 is read from LDL's files, absent here: the set's own files are a fallback
    assert bicubic14["status"] == NOT_VERIFIABLE and bicubic14["measured"] is not None
    assert "not the authors' test data: fallback" in bicubic14["status_text"] and bicubic14["delta"] is not None
    # the stand-in network is measured, but it is not the published ESRGAN file
    assert standin["status"] == NOT_VERIFIABLE and standin["measured"] is not None
    assert "weights esrgan_official are not the published file" in standin["status_text"]
    # aesop_swinir: no weights here, and the released checkpoint is not the paper's column anyway
    assert swinir["status"] == NOT_VERIFIABLE and swinir["measured"] is None and swinir["delta"] is None
    assert "weights aesop_swinir missing" in swinir["status_text"]
    assert "not the paper's model: aesop_swinir is AESOP_SwinIR256_190K.pth" in swinir["status_text"]
    assert any("aesop-bench weights add aesop_swinir" in r["detail"] for r in swinir["reasons"])
    # the three files: the table's columns, and provenance
    folder = out / "verify" / "page"
    md = (folder / "claims.md").read_text()
    assert "| Dataset | Metric | Claimed | Paper | Measured | Δ | Status |" in md and md in said
    assert re.search(r"\| Set5 - 4x \| PSNR ↑ \| 28\.42 \| 28\.42 \| 28\.4\d\d \| [+-]0\.00\d\d? \| verified \|",
                     md), md
    with open(folder / "claims.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0][:7] == ["Dataset", "Metric", "Claimed", "Paper", "Measured", "Δ", "Status"] and len(table) == 5
    assert table[1][6] == "verified"
    prov = report["provenance"]
    assert {"created", "command", "project", "torch", "device", "protocols", "metrics", "weights", "sets",
            "paper_tables"} <= set(prov)
    assert prov["project"]["commit"] or prov["project"]["version"]
    assert prov["torch"] == torch.__version__ and prov["device"]["asked"] == "cpu"
    assert prov["command"].startswith("aesop-bench verify ") and "--no-download" in prov["command"]
    assert prov["weights"]["esrgan_official"]["sha256"] == claims_setup["standin_sha256"]
    assert prov["weights"]["aesop_swinir"]["sha256"] is None
    hr = claims_setup["data"] / "Set5" / "HR"
    assert prov["sets"]["set5@matlab"]["files"] == {f"Set5/HR/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
                                                    for p in sorted(hr.glob("*.png"))}
    assert "fallback" in prov["sets"]["set14@paper"]["data"]
    assert set(prov["protocols"]) == {"matlab", "paper"} and "psnr-y-v2" in prov["metrics"]["psnr"]["computed_as"]
    assert prov["paper_tables"]["sha256"] == hashlib.sha256(claims_setup["paper"].read_bytes()).hexdigest()

    # run again once the zoo doubts bicubic's match to its paper row: nothing is computed again, the same measured
    # value is no longer verified
    rows_files = {p: p.stat().st_size for p in (folder / "runs").rglob("rows*.jsonl")}
    monkeypatch.setitem(ZOO, "bicubic", replace(ZOO["bicubic"], paper_note="a stand-in doubt"))
    from aesop_bench.models.inference import NetModel

    monkeypatch.setattr(NetModel, "__call__", lambda *a, **k: pytest.fail("a network ran"))
    assert main(args) == 0
    again = _rows(out)["rows"][0]
    assert again["measured"] == bicubic5["measured"] and again["rounds_to_claim"] and again["rounds_to_paper"]
    assert again["status"] == NOT_VERIFIABLE and "not the paper's model: bicubic" in again["status_text"]
    assert {p: p.stat().st_size for p in (folder / "runs").rglob("rows*.jsonl")} == rows_files
