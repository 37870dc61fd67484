"""Reports: tables in Markdown, LaTeX and CSV, PD plots, crop sheets and paired statistics, from run folders
written through the results store with chosen values (three models on Set5, Set14 and BSD100), and one
end-to-end eval-then-report run."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from aesop_bench.cli import main
from aesop_bench.errors import AesopBenchError
from aesop_bench.report.runs import load_runs
from aesop_bench.report.tables import build_table, load_paper, paper_value, to_csv, to_latex, to_markdown

SETS = {"set5": "Set5", "set14": "Set14", "bsd100": "BSD100"}  # name -> folder
# mean value of each (model, metric); per-image values scatter around it
MEANS = {"bicubic": {"psnr": 25.9, "ssim": 0.67, "lpips": 0.52, "lr_psnr": 38.0, "ae_psnr": 30.1},
         "trained": {"psnr": 26.6, "ssim": 0.70, "lpips": 0.33, "lr_psnr": 45.0, "ae_psnr": 33.2},
         "interp": {"psnr": 26.3, "ssim": 0.69, "lpips": 0.41, "lr_psnr": 41.0, "ae_psnr": 32.0}}
MODELS = {"bicubic": ("bicubic", "bicubic-matlab-uint8-v1"),
          "trained": ("runs/trained.safetensors", "rrdb[num_feat=16]-x4-0123456789abcdef"),
          "interp": ("interp:runs/init.safetensors,runs/trained.safetensors@0.5",
                     "interp(rrdb[num_feat=16]-x4-fedcba9876543210,rrdb[num_feat=16]-x4-0123456789abcdef,0.5)")}


def _write_run(folder, bench_root, key, protocol="paper", seed=0, metrics=("psnr", "ssim", "lpips", "lr_psnr")):
    """A run folder written through the results store, as the evaluator writes it, with chosen values."""
    from aesop_bench.evaluation.store import ResultStore
    from aesop_bench.protocols import get_protocol

    name, identity = MODELS[key]
    store = ResultStore(folder, {"name": name, "identity": identity, "precision": "fp32", "source": "model"},
                        get_protocol(protocol).as_dict())
    rng = np.random.default_rng(seed)
    images = {}
    for s in SETS:
        images[s] = sorted(p.stem for p in (bench_root / SETS[s] / "HR").glob("*.png"))
        store.plan_set(s, {image: None for image in images[s]}, "-", {})
        for image in images[s]:
            ms = list(metrics) + (["ae_psnr"] if s == "set5" else [])
            store.add(s, image, {m: (MEANS[key][m] * (1 + 0.02 * rng.standard_normal()), f"{m}-v1") for m in ms})
    store.finalize()
    store.close()
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory, bench_root):
    """Run folders of three models on Set5, Set14 and BSD100 (PSNR, SSIM, LPIPS, LR-PSNR; AE-PSNR on Set5) and
    SR images of Set5 (bicubic of the LR, and a sharpened copy), built through the results store."""
    from aesop_bench.data.transforms import mod_crop, protocol_lr
    from aesop_bench.data.imresize import imresize
    from aesop_bench.imageio import read_image, write_image
    from aesop_bench.protocols import get_protocol

    tmp = tmp_path_factory.mktemp("report")
    out = {key: _write_run(tmp / key, bench_root, key, seed=i) for i, key in enumerate(MODELS)}
    out["bicubic_matlab"] = _write_run(tmp / "bicubic_matlab", bench_root, "bicubic", "matlab", metrics=("psnr",))
    protocol = get_protocol("paper")
    for f in sorted((bench_root / "Set5" / "HR").glob("*.png")):
        hr = read_image(f)
        sr = imresize(protocol_lr(hr, protocol), 4.0)
        write_image(out["bicubic"] / "sr" / "set5" / f.name, sr)
        write_image(out["trained"] / "sr" / "set5" / f.name, mod_crop(hr, 12))
    return out


def test_eval_then_report_end_to_end(bench_root, tmp_path, capsys):
    """The one end-to-end path: eval through the command line, then report and compare its run folder."""
    run = tmp_path / "bicubic"
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr,ssim", "--data-root",
                 str(bench_root), "--quiet", "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())["sets"]["set5"]["metrics"]
    capsys.readouterr()
    assert main(["report", str(run), "--layout", "generic", "--metrics", "psnr,ssim"]) == 0
    md = capsys.readouterr().out
    assert f"| PSNR ↑ | Set5 | **{summary['psnr']:.3f}** |" in md and f"**{summary['ssim']:.4f}**" in md


def test_table1_markdown_and_csv(runs):
    rs = load_runs([runs["bicubic"], runs["trained"], runs["interp"]])
    t = build_table(rs, "table1")
    md = to_markdown(t)
    assert t.sets == ["set5", "set14", "bsd100"]  # the canonical order
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| Metric | Set | bicubic | trained |")
    assert len(lines) == 1 + 4 * 3  # header + (LPIPS, DISTS, PSNR, SSIM) x three sets
    psnr_row = next(line for line in lines if "PSNR ↑" in line)
    values = {r.label: r.value("set5", "psnr") for r in rs}
    best = max(values, key=values.get)
    assert f"**{values[best]:.3f}**" in psnr_row
    assert "| DISTS ↓ | Set5 | - | - |" in md  # not computed: a dash
    rows = list(csv.DictReader(to_csv(t).splitlines()))
    got = {(r["metric"], r["set"], r["run"]): r["value"] for r in rows}
    assert float(got[("lpips", "bsd100", "trained")]) == pytest.approx(rs[1].value("bsd100", "lpips"))
    # lower is better for LPIPS: the bold one is the smallest
    lp = {r.label: r.value("bsd100", "lpips") for r in rs}
    assert t.cells[("lpips", "bsd100", [r.label for r in rs].index(min(lp, key=lp.get)))].rank == 1


def test_table1_latex_compiles_or_is_well_formed(runs, tmp_path):
    rs = load_runs([runs["bicubic"], runs["trained"], runs["interp"]])
    tex = to_latex(build_table(rs, "table1"), caption="x4 results")
    assert tex.count("\\begin{tabular}") == 1 and "\\toprule" in tex and "\\bottomrule" in tex
    body = tex.split("\\midrule", 1)[1].split("\\bottomrule")[0]
    rows = [r for r in body.replace("\\midrule", "").split("\\\\") if r.strip()]
    assert len(rows) == 12 and all(r.count("&") == 4 for r in rows)
    assert "$\\downarrow$" in tex and "\\textbf{" in tex and "\\underline{" in tex
    if shutil.which("pdflatex"):
        doc = tmp_path / "t.tex"
        doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\begin{document}" + tex + "\\end{document}")
        proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", doc.name], cwd=tmp_path,
                              capture_output=True, timeout=3600)
        assert proc.returncode == 0 and (tmp_path / "t.pdf").is_file()


def test_table4_layout(runs):
    rs = load_runs([runs["bicubic"], runs["trained"], runs["interp"]])
    md = to_markdown(build_table(rs, "table4", sets=["set5", "set14", "bsd100"]))
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert lines[0] == "| Metric | Method | Set5 | Set14 | BSD100 |"
    assert len(lines) == 1 + 2 * 3
    ae_row = next(line for line in lines if line.startswith("| AE-PSNR ↑ | bicubic |"))
    assert re.search(r"\| \S*\d+\.\d{3}\S* \| - \| - \|$", ae_row)  # AE-PSNR on Set5 only


def test_report_cli_writes_files_and_refuses_mixed_protocols(runs, tmp_path, capsys):
    out = tmp_path / "reports" / "table1"
    assert main(["report", str(runs["bicubic"]), str(runs["trained"]), "--format", "md,tex,csv",
                 "--out", str(out)]) == 0
    assert all(out.with_suffix(s).is_file() for s in (".md", ".tex", ".csv"))
    assert main(["report", str(runs["bicubic"]), str(runs["bicubic_matlab"]), "--layout", "generic",
                 "--metrics", "psnr"]) == 2
    assert "different protocols" in capsys.readouterr().err
    assert main(["report", str(runs["bicubic"]), str(runs["bicubic_matlab"]), "--layout", "generic",
                 "--metrics", "psnr", "--allow-mixed"]) == 0
    assert "[matlab]" in capsys.readouterr().out


def test_pd_plot_renders(runs, tmp_path):
    out = tmp_path / "pd_bsd100.png"
    assert main(["plot", "pd", str(runs["bicubic"]), str(runs["trained"]), str(runs["interp"]), "--set", "bsd100",
                 "--x", "lpips", "--y", "psnr", "--out", str(out), "--title", "My title"]) == 0
    from PIL import Image

    img = Image.open(out)
    assert img.size[0] >= 600 and img.size[1] >= 500
    assert np.asarray(img.convert("L")).std() > 10  # not blank
    assert out.with_suffix(".pdf").stat().st_size > 1000


def _sweep(runs, tmp_path) -> list:
    """Copies of the interp run as a sweep at alphas 0.25, 0.5 and 0.75 (the same values under each alpha)."""
    import shutil

    sweep = []
    for a in ("0.25", "0.5", "0.75"):
        d = tmp_path / f"interp{a}"
        shutil.copytree(runs["interp"], d)
        meta = json.loads((d / "summary.json").read_text())
        meta["model"]["name"] = meta["model"]["name"].replace("@0.5", f"@{a}")
        (d / "summary.json").write_text(json.dumps(meta))
        sweep.append(d)
    return sweep


def test_pd_figure_labels_do_not_overlap_and_end_points_are_not_repeated(runs, tmp_path):
    """A sweep init -> trained at 0.25, 0.5, 0.75 drawn with the trained run itself: the legend names the runs,
    the trained end point is its run's marker only (no second '1' label), and no two text boxes overlap."""

    from aesop_bench.report.plots import pd_figure

    sweep = _sweep(runs, tmp_path)  # the same values under other alphas: labels that would collide
    rs = load_runs([runs["bicubic"], runs["trained"], *sweep])
    fig = pd_figure(rs, "bsd100", "lpips", "psnr", title="T", xlabel="X", ylabel="Y")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["interp init -> trained", "bicubic", "trained"]
    texts = [t for t in ax.texts]
    assert {t.get_text() for t in texts} <= {"0.25", "0.5", "0.75"} and len(texts) >= 2  # no "1"
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(r) for t in texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("T", "X", "Y")


def test_crop_sheet(runs, tmp_path, bench_root):
    from aesop_bench.report.plots import crop_panels

    out = tmp_path / "crops.png"
    assert main(["plot", "crops", str(runs["bicubic"]), str(runs["trained"]), "--set", "set5", "--image",
                 "butterfly", "--data-root", str(bench_root), "--out", str(out)]) == 0
    assert out.is_file() and out.with_suffix(".pdf").is_file()
    hr, box, panels = crop_panels(load_runs([runs["bicubic"], runs["trained"]]), "set5", "butterfly", None,
                                  bench_root)
    assert [p[0] for p in panels] == ["HR", "bicubic", "trained"]  # the bicubic run, no second bicubic panel
    assert all(tuple(p[1].shape[-2:]) == (96, 96) for p in panels) and box[2:] == (96, 96)
    assert panels[2][2].startswith("PSNR ") and "LPIPS " in panels[2][2]


def test_paired_statistics_against_scipy(runs, capsys):
    from scipy.stats import wilcoxon

    from aesop_bench.report.stats import paired

    a, b = load_runs([runs["bicubic"], runs["trained"]])
    x, y = a.images("bsd100", "psnr"), b.images("bsd100", "psnr")
    r = paired(x, y, "bsd100", "psnr")
    keys = sorted(x)
    d = np.array([y[k] - x[k] for k in keys])
    assert r.n == 100 and r.mean_diff == pytest.approx(d.mean())
    assert r.ci_low <= r.mean_diff <= r.ci_high
    assert r.p_value == pytest.approx(wilcoxon([x[k] for k in keys], [y[k] for k in keys]).pvalue)
    assert main(["compare", str(runs["bicubic"]), str(runs["trained"]), "--metric", "psnr"]) == 0
    assert "| bsd100 | 100 |" in capsys.readouterr().out


def test_significance_marker(runs):
    rs = load_runs([runs["bicubic"], runs["bicubic"]])
    t = build_table(rs, "generic", metrics=["psnr"], significance=True)
    # identical runs: the second is "not significantly different" from the best
    assert any(c.insignificant for c in t.cells.values())
    assert "~" in to_markdown(t)


def test_paper_values_come_from_the_papers_tables(shared_data, reference_data):
    from aesop_bench.report.runs import Run

    paper = load_paper()
    with open(reference_data / "aesop_paper_tables.csv") as f:
        rows = list(csv.DictReader(f))
    want = next(float(r["value"]) for r in rows if r["table"] == "table1" and r["method"] == "AESOP"
                and r["backbone"] == "RRDB" and r["train_patch"] == "128" and r["set"] == "lsdir"
                and r["metric"] == "lpips")
    run = Run(path=shared_data, label="x", model="aesop_rrdb", identity="rrdb[]", protocol={}, sets={}, versions={})
    assert paper_value(paper, run, "lsdir_val", "lpips") == want
    run.model = "aesop_rrdb256"
    assert paper_value(paper, run, "set14", "psnr") == next(
        float(r["value"]) for r in rows if r["table"] == "table1" and r["method"] == "AESOP"
        and r["backbone"] == "RRDB" and r["train_patch"] == "256" and r["set"] == "set14" and r["metric"] == "psnr")
    with pytest.raises(AesopBenchError):
        build_table([run], "table99")


def test_paper_values_match_a_model_only_on_its_full_identity(shared_data, reference_data, capsys):
    """A bicubic-trained model gets no paper value on a real-world set: Table 6's numbers belong to the
    real-world-trained networks the authors' real-world test configs load (and to ESRGAN, the same release)."""
    from aesop_bench.report.recipes import RECIPES
    from aesop_bench.report.runs import Run

    paper = load_paper()
    with open(reference_data / "aesop_paper_tables.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["table"] == "table6" and r["set"] == "realsr_v3"
                and r["metric"] == "niqe"]
    want = {r["method"]: float(r["value"]) for r in rows}
    run = Run(path=shared_data, label="x", model="", identity="rrdb[]", protocol={}, sets={}, versions={})
    for model in ("aesop_rrdb", "aesop_rrdb256", "ldl_rrdb"):
        run.model = model
        assert paper_value(paper, run, "realsr_v3", "niqe") is None, model
    for model, method in (("real_aesop_rrdb", "AESOP"), ("real_ldl_rrdb", "LDL"), ("esrgan", "ESRGAN"),
                          ("bsrgan", "BSRGAN"), ("realesrgan", "Real-ESRGAN")):
        run.model = model
        assert paper_value(paper, run, "realsr_v3", "niqe") == want[method], model
        assert paper_value(paper, run, "set14", "lpips") is None or model == "esrgan", model
    assert RECIPES["table6"].model_names() == ["esrgan", "bsrgan", "realesrgan", "real_ldl_rrdb", "real_aesop_rrdb"]
    assert main(["reproduce", "table6", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "real_ldl_rrdb" in out and "real_aesop_rrdb" in out and " aesop_rrdb " not in out


def test_paper_values_are_keyed_by_table():
    """Table 1 prints SwinIR AESOP's General100 SSIM as 0.8328 and Table 8 as 0.8327: each table's cell gets its
    own table's value."""
    from aesop_bench.report.runs import Run

    paper = load_paper()
    run = Run(path=None, label="x", model="aesop_swinir", identity="swinir[]", protocol={}, sets={}, versions={})
    assert paper_value(paper, run, "general100", "ssim", "table1") == 0.8328
    assert paper_value(paper, run, "general100", "ssim", "table8") == 0.8327
    assert paper_value(paper, run, "general100", "ssim", "table4") == 0.8328  # not in Table 4: the first table


def test_a_checkpoint_whose_paper_column_is_not_settled_is_marked_in_its_cells():
    from aesop_bench.report.runs import Run
    from aesop_bench.report.tables import to_markdown

    run = Run(path=None, label="AESOP-SwinIR", model="aesop_swinir", identity="swinir[]", protocol={},
              versions={}, sets={"general100": {"n_images": 100, "metrics": {"ssim": 0.83}}})
    text = to_markdown(build_table([run], "table1", metrics=["ssim"], sets=["general100"], compare_paper=True))
    assert "(0.8328?, +0.0" in text or "(0.8328?, -0.0" in text
    assert "?: AESOP-SwinIR: the released file is AESOP_SwinIR256_190K.pth" in text


def test_runs_on_different_image_areas_are_refused_or_labelled(bench_root, tmp_path, capsys):
    """A model's run compares the HR cropped to the protocol's modcrop (bicubic on Set5 under paper: the mod-12
    area), a result folder's run the SR files' own area: report refuses to put them side by side unless told."""
    model, folder = tmp_path / "model", tmp_path / "folder"
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr", "--save-sr", "--quiet",
                 "--no-download", "--data-root", str(bench_root), "--out", str(model)]) == 0
    assert main(["eval", "--sr", str(model / "sr"), "--sets", "set5", "--metrics", "psnr", "--quiet",
                 "--no-download", "--data-root", str(bench_root), "--out", str(folder)]) == 0
    capsys.readouterr()
    assert main(["report", str(model), str(folder), "--metrics", "psnr"]) == 2
    err = capsys.readouterr().err
    assert "runs compare different image areas" in err and "the HR cropped to a multiple of 12" in err
    assert "the SR files' area" in err
    assert main(["report", str(model), str(folder), "--metrics", "psnr", "--allow-mixed"]) == 0
    assert "mixed: runs compare different image areas" in capsys.readouterr().out


def test_report_shows_what_was_computed_in_the_canonical_order(runs, bench_root, tmp_path, capsys, monkeypatch):
    """Without --layout: every metric the runs have (registry order), sets Set5, Set14, BSD100; no backbone
    groups for runs that do not declare two backbones, groups where they do; --metrics of a metric no run has is
    an error naming what each run has; a PD plot names the runs it leaves out and why."""
    import sys

    from aesop_bench.metrics.registry import METRICS

    this = sys.modules[__name__]
    assert main(["report", str(runs["bicubic"]), str(runs["trained"])]) == 0
    md = capsys.readouterr().out
    rows = [[c.strip() for c in line.split("|")[1:3]] for line in md.splitlines() if line.startswith("| ")][1:]
    have = {"psnr", "ssim", "lpips", "lr_psnr", "ae_psnr"}  # what the fixture's runs hold
    assert [r[0] for r in rows if r[0]] == [f"{METRICS[m].label} {'↓' if METRICS[m].lower_better else '↑'}"
                                            for m in METRICS if m in have]
    assert [r[1] for r in rows[:3]] == ["Set5", "Set14", "BSD100"]
    assert "Backbones" not in md and "DISTS" not in md
    capsys.readouterr()
    assert main(["report", str(runs["bicubic"]), str(runs["trained"]), "--format", "tex"]) == 0
    assert "\\multicolumn" not in capsys.readouterr().out

    # two declared backbones: the groups come back, runs without one last
    monkeypatch.setitem(MODELS, "swin", ("runs/swin.safetensors", "swinir[]-x4-00112233445566aa"))
    monkeypatch.setitem(MEANS, "swin", MEANS["trained"])
    swin = _write_run(tmp_path / "swin", bench_root, "swin", seed=5)
    assert main(["report", str(runs["bicubic"]), str(runs["trained"]), str(swin), "--format", "md,tex"]) == 0
    out = capsys.readouterr().out
    assert "Backbones: RRDB: trained / SwinIR: swin / other: bicubic" in out
    assert "\\multicolumn{1}{c}{RRDB} & \\multicolumn{1}{c}{SwinIR} & \\multicolumn{1}{c}{other}" in out

    # a metric no run has
    assert main(["report", str(runs["bicubic"]), str(runs["trained"]), "--metrics", "dists"]) == 2
    err = capsys.readouterr().err
    assert "no run has dists" in err and "bicubic: psnr, ssim, lr_psnr, lpips, ae_psnr" in err

    # a run without Set14 is left out of Set14's PD plot, and said so
    monkeypatch.setattr(this, "SETS", {"set5": "Set5"})
    only5 = _write_run(tmp_path / "only5", bench_root, "interp", seed=7)
    assert main(["plot", "pd", str(runs["bicubic"]), str(runs["trained"]), str(only5), "--set", "set14",
                 "--out", str(tmp_path / "pd.png")]) == 0
    err = capsys.readouterr().err
    assert "left out of the plot: " in err and "(not evaluated on set14)" in err


def test_pd_figures_a_paper_accepts(runs, tmp_path):
    """The PDF embeds TrueType (Type 42) fonts, no Type 3; no marker touches the axes' frame and the legend
    covers none; a run's colour and marker depend on its label alone, not on the other runs or their order."""
    from aesop_bench.report.plots import _point_boxes, pd_figure, pd_plot

    rs = load_runs([runs["bicubic"], runs["trained"], runs["interp"]])
    png, pdf = pd_plot(rs, "bsd100", "lpips", "psnr", tmp_path / "pd.png")
    raw = pdf.read_bytes()
    subtypes = set(re.findall(rb"/Subtype\s*/(Type3|TrueType|CIDFontType2|Type1|Type0)", raw))
    assert b"Type3" not in subtypes and subtypes & {b"TrueType", b"CIDFontType2"}, subtypes

    fig = pd_figure(rs, "bsd100", "lpips", "psnr")
    ax = fig.axes[0]
    fig.canvas.draw()
    frame = ax.get_window_extent(fig.canvas.get_renderer())
    legend = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
    boxes = _point_boxes(fig, ax)
    assert boxes and all(frame.x0 < b.x0 and b.x1 < frame.x1 and frame.y0 < b.y0 and b.y1 < frame.y1 for b in boxes)
    assert not any(legend.overlaps(b) for b in boxes)

    def styles(fig):
        ax = fig.axes[0]
        return {c.get_label(): (tuple(c.get_facecolor()[0]), c.get_paths()[0].vertices.tobytes())
                for c in ax.collections}

    one = styles(pd_figure([rs[0], rs[1]], "bsd100", "lpips", "psnr"))
    two = styles(pd_figure([rs[1], rs[0]], "set14", "lpips", "psnr"))
    assert one["bicubic"] == two["bicubic"] and one["trained"] == two["trained"]
    assert one["bicubic"] != one["trained"]


def test_crop_sheet_captions_every_panel_and_checks_the_box_on_what_panels_show(runs, bench_root, shared_data,
                                                                                   tmp_path, capsys):
    """The added bicubic panel is captioned with its PSNR (equal to the evaluator's for the image); a bicubic run
    without saved images is drawn from the protocol's LR; the overview is titled with the set's label; a result
    folder's 512x512 SR files are cropped over their own area (the mod-12 HR is 504x504), and a box outside a
    panel names the panel, its size and what it shows."""
    from aesop_bench.report.plots import crop_panels, crop_sheet

    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr", "--data-root",
                 str(bench_root), "--quiet", "--out", str(tmp_path / "bic")]) == 0
    real = load_runs([tmp_path / "bic"])[0]
    _, _, panels = crop_panels(load_runs([runs["trained"]]), "set5", "butterfly", None, bench_root)
    assert [p[0] for p in panels] == ["HR", "Bicubic", "trained"]
    assert panels[1][2] == f"PSNR {real.images('set5', 'psnr')['butterfly']:.3f}"
    # the real bicubic run has no saved SR images: drawn from the LR, captioned with its stored value
    _, _, panels = crop_panels([real], "set5", "butterfly", None, bench_root)
    assert [p[0] for p in panels] == ["HR", "bicubic"] and panels[1][2].startswith("PSNR ")
    out = crop_sheet([real], "set5", "butterfly", None, bench_root, tmp_path / "c.png")
    assert out[0].is_file()

    capsys.readouterr()
    assert main(["eval", "--sr", str(shared_data / "results" / "RDN"), "--sets", "set5", "--metrics", "psnr",
                 "--data-root", str(bench_root), "--quiet", "--out", str(tmp_path / "rdn")]) == 0
    rdn = load_runs([tmp_path / "rdn"])
    hr, box, panels = crop_panels(rdn, "set5", "baby", (420, 420, 90, 90), bench_root)
    assert tuple(hr.shape[-2:]) == (512, 512) and all(tuple(p[1].shape[-2:]) == (90, 90) for p in panels)
    with pytest.raises(AesopBenchError, match=r"outside what these panels show: HR \(512x512, the HR over the SR "
                                              r"files' area\);.*\(512x512, the SR file\)"):
        crop_panels(rdn, "set5", "baby", (430, 430, 90, 90), bench_root)
    assert main(["plot", "crops", str(tmp_path / "bic"), "--set", "set5", "--image", "butterfly", "--data-root",
                 str(bench_root), "--out", str(tmp_path / "c2.png")]) == 0


def test_report_skips_training_runs_and_shipped_configs_load_by_name(bench_root, tmp_path, capsys):
    from aesop_bench.train.config import load_config, shipped_configs

    assert {"aesop_rrdb", "smoke_ae", "ae_rrdb"} <= set(shipped_configs())
    assert load_config("aesop_rrdb").name == "aesop_rrdb"
    with pytest.raises(AesopBenchError, match="no shipped config of that name; shipped configs: ae_rrdb"):
        load_config("aesop_rrbd")
    runs = tmp_path / "runs"
    (runs / "train" / "x" / "ckpt").mkdir(parents=True)
    (runs / "train" / "x" / "config.json").write_text("{}")
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr", "--quiet",
                 "--out", str(runs / "bicubic-paper"), "--data-root", str(bench_root)]) == 0
    capsys.readouterr()
    assert main(["report", str(runs / "bicubic-paper"), str(runs / "train"), str(runs / "train" / "x"),
                 "--layout", "generic", "--metrics", "psnr"]) == 0
    out = capsys.readouterr()
    assert "bicubic" in out.out and out.err.count("a training run") == 2


def test_compare_picks_a_metric_both_runs_have(bench_root, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr,ssim", "--quiet",
                     "--out", str(out), "--data-root", str(bench_root), "--name", out.name]) == 0
    capsys.readouterr()
    assert main(["compare", str(a), str(b)]) == 0
    assert capsys.readouterr().out.startswith("psnr: b minus a")
    assert main(["compare", str(a), str(b), "--metric", "lpips"]) == 2
    assert "a has ['psnr', 'ssim']" in capsys.readouterr().err
    # the output-clash error names the protocols and what differs, not the whole records
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr", "--quiet", "--out", str(a),
                 "--protocol", "matlab", "--data-root", str(bench_root)]) == 2
    err = capsys.readouterr().err
    assert "under protocol 'paper'; this run is model 'bicubic' under 'matlab' (modcrop 12 vs 4" in err
    assert err.count("crop_border") <= 1
    assert json.loads((a / "run.json").read_text())["protocol"]["name"] == "paper"


def _texts(fig):
    """Every visible, non-empty text of a drawn figure: titles, axis and tick labels, legends, annotations."""
    from matplotlib.text import Text

    fig.canvas.draw()
    hidden = set()  # tick labels of ticks outside the axes' view, which matplotlib keeps but does not draw
    for ax in fig.axes:
        for labels, (lo, hi), k in ((ax.get_xticklabels(), sorted(ax.get_xlim()), 0),
                                    (ax.get_yticklabels(), sorted(ax.get_ylim()), 1)):
            hidden |= {id(t) for t in labels if not lo <= t.get_position()[k] <= hi}
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip() and id(t) not in hidden]


def _check_print_size(fig, width_in):
    """The figure is ``width_in`` inches wide; no text is under 7 pt or outside the figure; no two texts overlap."""
    from matplotlib.transforms import Bbox

    assert fig.get_size_inches()[0] == pytest.approx(width_in)
    texts = _texts(fig)
    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < 7]
    assert not small, small
    r = fig.canvas.get_renderer()
    page = Bbox([[0, 0], fig.bbox.size])
    boxes = [(t.get_text(), t.get_window_extent(r)) for t in texts]
    outside = [s for s, b in boxes if not (page.x0 - 1 <= b.x0 and b.x1 <= page.x1 + 1 and page.y0 - 1 <= b.y0
                                           and b.y1 <= page.y1 + 1)]
    assert not outside, outside
    legend_texts = {id(t) for leg in fig.findobj(lambda a: type(a).__name__ == "Legend") for t in leg.get_texts()}
    free = [(s, b) for (s, b), t in zip(boxes, texts) if id(t) not in legend_texts and t.get_text() != ""]
    clashes = [(a, c) for i, (a, b) in enumerate(free) for c, d in free[i + 1:] if b.overlaps(d)
               and b.intersection(b, d).width > 0.5 and b.intersection(b, d).height > 0.5]
    assert not clashes, clashes


@pytest.mark.parametrize("width,inches", [("column", 3.25), ("text", 6.875)])
def test_figures_fit_a_paper_page_with_no_text_under_7pt(runs, bench_root, tmp_path, width, inches):
    """At a CVPR column (3.25 in) and text width (6.875 in): the PD plot with a sweep's alpha labels, and a crop
    sheet of six panels, have every text at 7 pt or more, inside the figure, none over another."""

    from aesop_bench.report.plots import crop_figure, pd_figure

    sweep = _sweep(runs, tmp_path)
    rs = load_runs([runs["bicubic"], runs["trained"], *sweep])
    fig = pd_figure(rs, "bsd100", "lpips", "psnr", width=width)
    assert {t.get_text() for t in fig.axes[0].texts} <= {"0.25", "0.5", "0.75"} and fig.axes[0].texts
    _check_print_size(fig, inches)

    # six panels: overview, HR, bicubic, and three runs with long labels
    loaded = load_runs([runs["trained"]] * 3, labels=["trained with a long label", "second", "third"])
    fig = crop_figure(loaded, "set5", "butterfly", None, bench_root, width=width)
    _check_print_size(fig, inches)
    assert main(["plot", "crops", str(runs["trained"]), "--set", "set5", "--image", "butterfly", "--data-root",
                 str(bench_root), "--out", str(tmp_path / "w.png"), "--width", width]) == 0
    from PIL import Image

    dpi = Image.open(tmp_path / "w.png").info.get("dpi", (300,))[0]
    assert Image.open(tmp_path / "w.png").size[0] / dpi == pytest.approx(inches, abs=0.02)


def test_tex_table_has_a_caption_and_the_notes(runs, tmp_path, capsys):
    """The .tex carries a caption (default or --caption), the marks' legend and every note of the Markdown table
    (here the set too small for the significance test), with LaTeX's special characters escaped."""
    rs = load_runs([runs["bicubic"], runs["trained"]])
    t = build_table(rs, "generic", metrics=["psnr"], sets=["set5"], significance=True)
    t.notes.append("not the paper's test data: set_5 from ~/data <50% & #1 {x} $y^2")
    tex = to_latex(t)
    assert "\\caption{PSNR (higher is better) on Set5.}" in tex and "\\label{tab:generic}" in tex
    notes = tex.split("\\end{tabular}")[1]
    assert "\\textbf{bold}: best" in notes and "significance not tested on Set5" in notes
    assert ("set\\_5 from \\textasciitilde{}/data \\textless{}50\\% \\& \\#1 \\{x\\} \\$y\\textasciicircum{}2"
            in notes)
    assert notes.count("{") == notes.count("}")
    assert to_latex(t, "") .count("\\caption") == 0
    out = tmp_path / "t"
    assert main(["report", str(runs["bicubic"]), str(runs["trained"]), "--metrics", "psnr", "--format", "tex",
                 "--caption", "My 50% caption", "--out", str(out)]) == 0
    assert "\\caption{My 50\\% caption}" in out.with_suffix(".tex").read_text()


def test_significance_says_when_the_set_is_too_small_to_reach_it(runs):
    """Set5's five images: no Wilcoxon p can be below 0.05 (scipy: 0.0625 for five differences of one sign), so
    no cell is marked and the note says so; on BSD100 (100 images) identical runs are marked."""
    from scipy.stats import wilcoxon

    smallest = wilcoxon([1.0, 2.0, 3.0, 4.0, 5.0]).pvalue
    assert smallest == pytest.approx(0.0625) and wilcoxon([1.0, 2, 3, 4, 5, 6]).pvalue < 0.05
    rs = load_runs([runs["bicubic"], runs["trained"], runs["interp"]])
    t = build_table(rs, "generic", metrics=["psnr"], sets=["set5"], significance=True)
    assert not any(c.insignificant for c in t.cells.values())
    assert any(f"with 5 images the Wilcoxon signed-rank test cannot reach p < 0.05 (its smallest two-sided p is "
               f"{smallest:.4g})" in n for n in t.notes)
    same = load_runs([runs["bicubic"], runs["bicubic"]])
    t = build_table(same, "generic", metrics=["psnr"], sets=["bsd100"], significance=True)
    assert t.cells[("psnr", "bsd100", 1)].insignificant and not any("not tested" in n for n in t.notes)


def test_csv_names_a_folder_run_by_its_folder_and_allow_mixed_keeps_labels(bench_root, tmp_path, capsys):
    """A folder of a bicubic run's saved SR images, labelled bicubic: the CSV says source folder and its path, not
    a model named after the folder; --allow-mixed tags labels with protocols only where the protocols differ, so
    --baseline still finds a run by its own label."""
    model, folder = tmp_path / "model", tmp_path / "folder"
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr", "--save-sr", "--quiet",
                 "--no-download", "--data-root", str(bench_root), "--out", str(model), "--name", "model"]) == 0
    assert main(["eval", "--sr", str(model / "sr"), "--sets", "set5", "--metrics", "psnr", "--quiet",
                 "--no-download", "--data-root", str(bench_root), "--out", str(folder), "--name", "bicubic"]) == 0
    capsys.readouterr()
    assert main(["report", str(model), str(folder), "--metrics", "psnr", "--allow-mixed", "--format", "csv"]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.split("\n\n")[0].splitlines()))
    by_run = {r["run"]: r for r in rows}
    assert set(by_run) == {"model", "bicubic"}  # both under the paper protocol: no "[paper]" tag
    assert (by_run["bicubic"]["source"], by_run["bicubic"]["model"]) == ("folder", "")
    assert by_run["bicubic"]["sr_folder"] == str(model / "sr")
    assert (by_run["model"]["source"], by_run["model"]["model"]) == ("model", "bicubic")
    html = tmp_path / "site"
    assert main(["report", str(model), str(folder), "--metrics", "psnr", "--allow-mixed", "--html", str(html),
                 "--baseline", "bicubic", "--data-root", str(bench_root)]) == 0
    cards = {r["label"]: r for r in json.loads((html / "data.json").read_text())["runs"]}
    assert (cards["bicubic"]["source"], cards["bicubic"]["sr_folder"]) == ("folder", str(model / "sr"))
