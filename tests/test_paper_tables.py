"""The paper's tables, parsed from its text (../shared/docs/seeds), equal the shipped CSV value by value: a
transcription error cannot come back, and no printed number is missing."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SETS = {"Set14": "set14", "Manga109": "manga109", "Mg109": "manga109", "General100": "general100",
        "Gen100": "general100", "Urban100": "urban100", "Urb100": "urban100", "DIV2K-val": "div2k_val",
        "DIV2K": "div2k_val", "DIV2K100": "div2k_val", "BSD100": "bsd100", "B100": "bsd100", "LSDIR": "lsdir",
        "RealSRv3": "realsr_v3", "DRealSR": "drealsr"}
METRICS = {"LPIPS": "lpips", "DISTS": "dists", "PSNR": "psnr", "SSIM": "ssim", "FID": "fid", "pFID": "pfid",
           "NIQE": "niqe", "MANIQA": "maniqa", "MUSIQ": "musiq", "CLIP-IQA": "clipiqa", "AE-PSNR": "ae_psnr",
           "LR-PSNR": "lr_psnr", "AE-": "ae_psnr", "LR-": "lr_psnr"}


def _fields(line: str) -> list[str]:
    return [f.strip() for f in line.split("|") if f.strip()]


def _name(text: str) -> str:
    """A method as the CSV names it: citations and "(Ours)" dropped."""
    text = re.sub(r"\s*\[\d+\]", "", text).replace(" (Ours)", "").strip()
    return "AESOP" if text == "Ours" else text


def _block(lines: list[str], header: str, occurrence: int = 0) -> list[list[str]]:
    """The rows after the ``occurrence``-th line starting with ``header``, up to the first line without fields."""
    starts = [i for i, line in enumerate(lines) if line.startswith(header)]
    out = []
    for line in lines[starts[occurrence] + 1:]:
        f = _fields(line)
        if not f or not any(re.fullmatch(r"-|[\d.]+(/\.\d+)?", x) for x in f):
            if out:
                break
            continue
        out.append(f)
    return out


def _grid(rows, columns, table, out):
    """Tables 1, 7, 8: metric groups of set rows, one column per method."""
    metric = None
    for f in rows:
        if f[0] in METRICS:
            metric, f = METRICS[f[0]], f[1:]
        values = f[1:1 + len(columns)]
        assert len(values) == len(columns), f
        for (backbone, method, patch), v in zip(columns, values):
            if v != "-":
                out[(table, backbone, method, patch, SETS[f[0]], metric)] = v


def _per_method(rows, table, methods, metric_cols, out):
    """Tables 2, 6: a dataset column on the first row of each group, then method, then one column per metric."""
    dataset = None
    for f in rows:
        if f[0].split(" [")[0] in SETS:
            dataset, f = SETS[f[0].split(" [")[0]], f[1:]
        backbone, method, patch = methods[_name(f[0])]
        for metric, v in zip(metric_cols, f[1:]):
            out[(table, backbone, method, patch, dataset, metric)] = v


def _set_columns(rows, table, columns_sets, methods, out):
    """Tables 4, 9: metric groups of method rows, one column per set."""
    metric = None
    for f in rows:
        if f[0] in METRICS:
            metric, f = METRICS[f[0]], f[1:]
        backbone, method, patch = methods[_name(f[0])]
        for s, v in zip(columns_sets, f[1:]):
            out[(table, backbone, method, patch, s, metric)] = v


def parse_paper(text: str) -> dict[tuple, str]:
    lines = text.splitlines()
    out: dict[tuple, str] = {}
    _grid(_block(lines, "Patch Size (Training)"), [
        ("RRDB", "ESRGAN", "128"), ("RRDB", "SPSR", "128"), ("RRDB", "LDL", "128"), ("RRDB", "AESOP", "128"),
        ("RRDB", "AESOP", "256"), ("SwinIR", "SwinIR+GAN", "256"), ("SwinIR", "LDL", "256"),
        ("SwinIR", "AESOP-200K", "256"), ("SwinIR", "AESOP", "256")], "table1", out)
    _per_method(_block(lines, "Dataset | Method | Recon. Obj. | NIQE"), "table2",
                {"Real-ESRGAN": ("RRDB", "Real-ESRGAN", "real"), "AESOP": ("RRDB", "AESOP", "real")},
                ["niqe", "maniqa"], out)
    for f in _block(lines, "Decoder | Encoder | DISTS | PSNR"):  # Table 3: DIV2K-val, RRDB, patch 128
        method = {"Baseline (LDL)": "LDL", "Config-(c) (Ours)": "AESOP"}.get(f[0], f[0])
        dists, psnr = [x for x in f[1:] if x != "✓"]
        out[("table3", "RRDB", method, "128", "div2k_val", "dists")] = dists
        out[("table3", "RRDB", method, "128", "div2k_val", "psnr")] = psnr
    sets = [SETS[s] for s in _fields(next(x for x in lines if x.startswith("Method | Set14 | Mg109")))[1:]]
    _set_columns(_block(lines, "Method | Set14 | Mg109"), "table4", sets,
                 {"LDL": ("SwinIR", "LDL", "256"), "AESOP": ("SwinIR", "AESOP", "256")}, out)
    header5 = next(i for i, x in enumerate(lines) if x.startswith("Manga109 | General100 | Urban100 | DIV2K100"))
    for f in _block(lines, "Manga109 | General100 | Urban100 | DIV2K100"):  # Table 5: PSNR/LPIPS, RRDB, 128
        method = {"Ours": "AESOP"}.get(f[0], f[0])
        for s, pair in zip(_fields(lines[header5]), f[1:]):
            psnr, lpips = pair.split("/")
            out[("table5", "RRDB", method, "128", SETS[s], "psnr")] = psnr
            out[("table5", "RRDB", method, "128", SETS[s], "lpips")] = "0" + lpips
    real = {m: ("RRDB", m, "real") for m in ("BSRGAN", "Real-ESRGAN", "LDL", "AESOP")}
    _per_method(_block(lines, "Dataset | Method | NIQE | MANIQA | MUSIQ | CLIP-IQA"), "table6",
                {**real, "ESRGAN": ("RRDB", "ESRGAN", "128")}, ["niqe", "maniqa", "musiq", "clipiqa"], out)
    _grid(_block(lines, "Patch size (Training)"), [
        ("RRDB", "ESRGAN", "128"), ("RRDB", "SPSR", "128"), ("RRDB", "LDL*", "128"), ("RRDB", "LDL", "128"),
        ("RRDB", "AESOP", "128"), ("RRDB", "AESOP", "256"), ("SwinIR", "SwinIR+GAN", "256"), ("SwinIR", "LDL*", "256"),
        ("SwinIR", "LDL", "256"), ("SwinIR", "AESOP", "256")], "table7", out)
    _grid(_block(lines, "Backbone | RRDB | SwinIR | DRCT"), [
        ("RRDB", "CALGAN", ""), ("RRDB", "AESOP", "256"), ("SwinIR", "CALGAN", ""), ("SwinIR", "AESOP", "256"),
        ("DRCT", "LDL", "256"), ("DRCT", "AESOP", "256")], "table8", out)
    sets9 = [SETS[s] for s in _fields(next(x for x in lines if x.startswith("Metric | Method | Set14")))[2:]]
    _set_columns(_block(lines, "Metric | Method | Set14"), "table9", sets9,
                 {m: ("RRDB", m, "128") for m in ("ESRGAN", "SPSR", "LDL", "AESOP")}, out)
    return out


def _seed(paper_text: Path) -> str:
    return paper_text.read_text(encoding="utf-8")


def test_every_printed_number_is_in_the_shipped_csv(paper_text):
    parsed = parse_paper(_seed(paper_text))
    with open(REPO / "aesop_bench" / "report" / "aesop_paper_tables.csv", newline="") as f:
        shipped = {(r["table"], r["backbone"], r["method"], r["train_patch"], r["set"], r["metric"]): r["value"]
                   for r in csv.DictReader(f)}
    assert {k[0] for k in parsed} == {f"table{i}" for i in range(1, 10)}
    missing = sorted(set(parsed) - set(shipped))
    extra = sorted(set(shipped) - set(parsed))
    wrong = sorted(k for k in set(parsed) & set(shipped) if parsed[k] != shipped[k])  # the printed digits too
    assert not missing and not extra and not wrong, (missing[:5], extra[:5], wrong[:5])
    # the paper's printed precision is kept (CALGAN's three decimals)
    assert shipped[("table8", "RRDB", "CALGAN", "", "general100", "lpips")] == "0.077"


@pytest.mark.parametrize("table,n", [("table1", 244), ("table2", 8), ("table3", 8), ("table5", 32)])
def test_the_parser_reads_whole_tables(paper_text, table, n):
    assert sum(k[0] == table for k in parse_paper(_seed(paper_text))) == n
