"""The results browser (`report --html DIR`): the data the page is built from equals the runs' stored values and
the Markdown table's marks; in headless Chromium (the distribution's package) the page, opened from disk,
sorts its tables, opens the viewer, zooms and pans every panel together, steps through images, prints the crop
command of a drawn box, names each run on the PD plot, and makes no request outside the files it was given; the PD
plot's ticks are round numbers, its labels overlap nothing, and each run has the colour and marker of the figures."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import zlib
from itertools import combinations, pairwise
from pathlib import Path
from urllib.parse import unquote

import pytest

from aesop_bench.cli import main
from aesop_bench.errors import AesopBenchError
from aesop_bench.report.runs import Run, load_runs
from aesop_bench.report.tables import report, to_markdown

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def result_runs(tmp_path_factory, bench_root, shared_data):
    """Three result folders on Set5, as users hold them: RDN's and SRResNet's published outputs, and bicubic
    SR images of the whole HR written by `eval --save-sr` then evaluated as a folder."""
    root = tmp_path_factory.mktemp("site")
    common = ["--sets", "set5", "--metrics", "psnr,ssim,lr_psnr", "--data-root", str(bench_root), "--quiet"]
    for name in ("RDN", "SRResNet"):
        assert main(["eval", "--sr", str(shared_data / "results" / name), "--name", name, "--out",
                     str(root / "runs" / name), *common]) == 0
    # the whole HR (Set5's sides are multiples of 4), as RDN's and SRResNet's files cover it: result folders of
    # other sizes compare other areas and are not ranked together
    assert main(["eval", "--model", "bicubic", "--save-sr", "--modcrop", "4", "--out", str(root / "made"),
                 *common]) == 0
    assert main(["eval", "--sr", str(root / "made" / "sr"), "--name", "bicubic", "--out",
                 str(root / "runs" / "bicubic"), *common]) == 0
    return root


def _site(root: Path, out: Path, *extra: str) -> dict:
    cwd = os.getcwd()
    os.chdir(root)  # run folders given relatively, as a user types them
    try:
        assert main(["report", "runs/RDN", "runs/SRResNet", "runs/bicubic", "--html", str(out), *extra]) == 0
    finally:
        os.chdir(cwd)
    return json.loads((out / "data.json").read_text())


def draw_crop_box(page, box: dict) -> str:
    """Draw a box with Shift held over a viewer panel (``box``: its bounding box); the crop command shown."""
    page.keyboard.down("Shift")
    page.mouse.move(box["x"] + 40, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + 120, box["y"] + 100, steps=4)
    page.mouse.up()
    page.keyboard.up("Shift")
    return page.text_content("#crop-command")


def _marks(md: str) -> dict[tuple[str, str], list[int]]:
    """(metric label, set label) -> each run's mark in the Markdown table (1 bold, 2 underlined, 0 none)."""
    out, metric = {}, None
    for line in md.splitlines():
        if not line.startswith("| ") or line.startswith("| Metric"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        metric = cells[0] or metric
        out[(metric, cells[1])] = [1 if c.startswith("**") else 2 if c.startswith("<u>") else 0 for c in cells[2:]]
    return out


def test_the_page_data_equals_the_stored_values_and_the_tables_marks(result_runs, bench_root, tmp_path, capsys):
    data = _site(result_runs, tmp_path / "site", "--data-root", str(bench_root))
    runs = load_runs([result_runs / "runs" / n for n in ("RDN", "SRResNet", "bicubic")])
    assert [r["label"] for r in data["runs"]] == [r.label for r in runs] == ["RDN", "SRResNet", "bicubic"]
    marks = _marks(to_markdown(report(runs)))
    labels = {m["name"]: m["label"] for m in data["metrics"]}
    assert [m["name"] for m in data["metrics"]] == ["psnr", "ssim", "lr_psnr"]
    for row in data["summary"]:
        assert [c["value"] for c in row["cells"]] == [r.value(row["set"], row["metric"]) for r in runs]
        arrow = "↓" if next(m for m in data["metrics"] if m["name"] == row["metric"])["lower_better"] else "↑"
        assert [c["rank"] for c in row["cells"]] == marks[(f"{labels[row['metric']]} {arrow}", "Set5")]
    assert len(data["per_image"]) == 5
    for row in data["per_image"]:
        for m, values in row["values"].items():
            assert values == [r.images(row["set"], m)[row["image"]] for r in runs]
    # the page carries the same data inline, and every image it names is a file, relative to the page
    page = (tmp_path / "site" / "index.html").read_text()
    inline = re.search(r'<script id="aesop-data" type="application/json">(.*?)</script>', page, re.S).group(1)
    assert json.loads(inline.replace("<\\/", "</")) == data
    urls = [u for s in data["sets"] for u in s["hr"].values()]
    urls += [u for r in data["runs"] for s in r["images"].values() for u in s.values()]
    assert len(urls) == 5 * 4 and all((tmp_path / "site" / unquote(u)).is_file() for u in urls)
    assert all(r["protocol"]["name"] == "paper" and r["versions"]["psnr"] for r in data["runs"])
    assert all(r["data"]["set5"]["area"] == "the SR files' area" for r in data["runs"])

    # copied images stay inside the folder
    data = _site(result_runs, tmp_path / "copied", "--data-root", str(bench_root), "--copy-images")
    urls = [u for r in data["runs"] for s in r["images"].values() for u in s.values()]
    urls += [u for s in data["sets"] for u in s["hr"].values()]
    assert urls and all(u.startswith("images/") and (tmp_path / "copied" / unquote(u)).is_file() for u in urls)


def test_the_page_refuses_or_labels_mixed_protocols_and_says_where_images_are_missing(result_runs, bench_root,
                                                                                      tmp_path):
    from aesop_bench.report.site import site_data

    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr", "--protocol", "basicsr",
                 "--data-root", str(bench_root), "--quiet", "--out", str(tmp_path / "b")]) == 0
    runs = load_runs([result_runs / "runs" / "RDN", tmp_path / "b"])
    with pytest.raises(AesopBenchError, match="allow-mixed"):
        site_data(runs, tmp_path / "s", bench_root)
    data = site_data(load_runs([result_runs / "runs" / "RDN", tmp_path / "b"]), tmp_path / "s", bench_root,
                     allow_mixed=True)
    assert data["runs"][1]["label"].endswith("[basicsr]") and any("mixed" in n for n in data["notes"])
    assert data["runs"][1]["images_note"].startswith("no saved SR images")
    with pytest.raises(AesopBenchError, match="--baseline 'nope' is not one of the runs' labels"):
        site_data(load_runs([result_runs / "runs" / "RDN"]), tmp_path / "s", bench_root, baseline="nope")


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        msg = "Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _shown(page) -> list[tuple[float, float, float, float]]:
    """Per panel, the image area it shows (x, y, width, height in image pixels), from the rendered boxes."""
    return page.evaluate("""() => [...document.querySelectorAll('#panels .vp')].map(vp => {
        const img = vp.querySelector('img'), v = vp.getBoundingClientRect(), b = img.getBoundingClientRect();
        const s = b.width / img.naturalWidth;
        return [(v.left - b.left) / s, (v.top - b.top) / s, v.width / s, v.height / s];
    })""")


def _playwright():
    # a test dependency: its absence fails
    from playwright.sync_api import sync_playwright

    return sync_playwright


def test_the_page_in_a_real_browser(result_runs, bench_root, tmp_path):
    """Headless Chromium loads the page from disk; the checks go through the DOM."""
    chromium = _chromium()
    sync_playwright = _playwright()
    site = tmp_path / "site"
    _site(result_runs, site, "--data-root", str(bench_root))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        requests, errors = [], []
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((site / "index.html").as_uri())
        page.wait_for_selector("body[data-ready='1']")

        # the summary sorts by a run's column, both ways
        page.click("#summary th:nth-child(4)")  # SRResNet
        col = page.eval_on_selector_all("#summary tbody tr td:nth-child(4)", "tds => tds.map(t => +t.textContent)")
        assert col == sorted(col) and len(col) == 3
        page.click("#summary th:nth-child(4)")
        col = page.eval_on_selector_all("#summary tbody tr td:nth-child(4)", "tds => tds.map(t => +t.textContent)")
        assert col == sorted(col, reverse=True)
        assert page.eval_on_selector_all("#summary strong", "s => s.length") == 3  # RDN is best in every row

        # the PD plot names each run on hover (an SVG title per point)
        titles = page.eval_on_selector_all("#pd-plot g.pt title", "ts => ts.map(t => t.textContent)")
        assert sorted(t.split(":")[0] for t in titles) == ["RDN", "SRResNet", "bicubic"]

        # per image: sorted by the difference of bicubic from RDN (the baseline)
        header = page.eval_on_selector_all("#images th", "ths => ths.map(t => t.textContent)")
        k = header.index("Δ bicubic") + 1
        page.click(f"#images th:nth-child({k})")
        deltas = page.eval_on_selector_all(f"#images tbody td:nth-child({k})", "tds => tds.map(t => +t.textContent)")
        assert deltas == sorted(deltas) and all(d < 0 for d in deltas)  # bicubic loses on every image
        worst = page.text_content("#images tbody tr:nth-child(1) td:nth-child(2)")

        # the viewer opens on that image, every panel loaded
        page.click("#images tbody tr:nth-child(1)")
        page.wait_for_function("[...document.querySelectorAll('#panels img')].length === 4 && "
                               "[...document.querySelectorAll('#panels img')].every(i => i.complete && i.naturalWidth)")
        assert not page.is_hidden("#viewer") and worst in page.text_content("#viewer-title")
        labels = page.eval_on_selector_all("#panels .label b", "bs => bs.map(b => b.textContent)")
        assert labels == ["HR", "RDN", "SRResNet", "bicubic"]
        page.wait_for_timeout(100)
        before = _shown(page)
        box = page.locator("#panels .vp").nth(2).bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.wheel(0, -500)
        page.wait_for_timeout(100)
        zoomed = _shown(page)
        assert zoomed[0][2] < 0.7 * before[0][2]  # a smaller area: zoomed in
        assert all(max(abs(a - b) for a, b in zip(p, zoomed[0])) < 0.5 for p in zoomed)  # every panel alike
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2 - 40, box["y"] + box["height"] / 2 - 30, steps=4)
        page.mouse.up()
        panned = _shown(page)
        assert panned[0][0] > zoomed[0][0] and panned[0][1] > zoomed[0][1]
        assert all(max(abs(a - b) for a, b in zip(p, panned[0])) < 0.5 for p in panned)

        # a box drawn with Shift gives the crop command
        command = draw_crop_box(page, box)
        assert re.fullmatch(rf"aesop-bench plot crops runs/RDN runs/SRResNet runs/bicubic --set set5 --image "
                            rf"{worst} --box \d+,\d+,\d+,\d+", command), command
        page.screenshot(path=str(tmp_path / "viewer.png"))

        # keys step through the images in the table's order
        page.keyboard.press("ArrowRight")
        second = page.text_content("#images tbody tr:nth-child(2) td:nth-child(2)")
        assert re.fullmatch(rf"Set5 / {second}\s+\(2 of 5\)", page.text_content("#viewer-title"))
        page.keyboard.press("Escape")
        assert page.is_hidden("#viewer")
        browser.close()
    assert not errors, errors
    assert requests and all(u.startswith("file://") for u in requests), requests
    files = [Path(unquote(u[len("file://"):])).resolve() for u in requests]
    own = {(result_runs / "runs" / n).resolve() for n in ("RDN", "SRResNet", "bicubic")}
    sources = [Path(r.sr_folder["path"]).resolve() for r in load_runs(sorted(own))]
    assert all(any(f.is_relative_to(a) for a in [site.resolve(), Path(bench_root).resolve(), *sources])
               for f in files), files


# -- the PD plot ------------------------------------------------------------------------------------------------

def _made_run(label: str, psnr: float, ssim: float, part: tuple[int, int] | None = None) -> Run:
    """A run on Set5 with the values given; with ``part`` (n, of) the values cover n of its images only."""
    values = {"psnr": psnr, "ssim": ssim}
    entry = {"n_images": 5, "complete": True, "metrics": values}
    if part:
        entry = {"n_images": 5, "complete": False, "metrics": {},
                 "partial": {m: {"n": part[0], "of": part[1], "mean": v} for m, v in values.items()}}
    return Run(path=Path("made") / label, label=label, model=label, identity="", versions={"psnr": "1", "ssim": "1"},
               protocol={"name": "paper", "scale": 4, "modcrop": 12}, sets={"set5": entry})


PD_RUNS = ["RDN", "RDNplus", "SRResNet", "bicubic"]


@pytest.fixture(scope="module")
def pd_page(tmp_path_factory):
    """The page's PD plot (SSIM against PSNR on Set5) in headless Chromium, and the page's errors: RDN and RDNplus
    a pixel or two apart, SRResNet's values over 3 of the 5 images, bicubic far from them; both ranges padded to
    ends whose quarters are odd numbers (the ticks' old fault)."""
    from aesop_bench.report.site import write_site

    chromium = _chromium()
    sync_playwright = _playwright()
    site = tmp_path_factory.mktemp("pd") / "site"
    write_site([_made_run("RDN", 32.4692, 0.89903), _made_run("RDNplus", 32.5013, 0.89951),
                _made_run("SRResNet", 32.0791, 0.89390, part=(3, 5)), _made_run("bicubic", 28.4302, 0.81112)], site)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((site / "index.html").as_uri())
        page.wait_for_selector("body[data-ready='1']")
        yield page, errors
        browser.close()


def _box(page, selector: str) -> list[tuple[float, float, float, float]]:
    """The SVG boxes (x, y, width, height, in the plot's units) of the elements ``selector`` finds."""
    return [tuple(b) for b in page.eval_on_selector_all(
        selector, "es => es.map(e => { const b = e.getBBox(); return [b.x, b.y, b.width, b.height]; })")]


def _intersect(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _decimals(x: float) -> int:
    """How many decimals write ``x`` exactly (0.025: 3, 2.5: 1, 50: 0)."""
    return len(f"{x:.10f}".rstrip("0").split(".")[1])


def test_pd_plot_ticks_are_round_numbers_evenly_spaced(pd_page):
    """Each axis has 4 to 7 ticks inside the plot, a step of 1, 2, 2.5 or 5 times a power of ten, every value a
    multiple of it, written with the decimals the step needs; the x ticks stand where their values are."""
    page, errors = pd_page
    ticks = page.eval_on_selector_all("#pd-plot text.tick", "ts => ts.map(t => [t.dataset.axis, t.textContent])")
    frame = _box(page, "#pd-plot .axis path")[0]
    for axis in "xy":
        texts = [text for a, text in ticks if a == axis]
        values = [float(text) for text in texts]
        assert 4 <= len(values) <= 7, texts
        step = values[1] - values[0]
        assert all(math.isclose(b - a, step, rel_tol=1e-9) for a, b in pairwise(values)), texts
        power = 10.0 ** math.floor(math.log10(step))
        assert any(math.isclose(step, m * power, rel_tol=1e-9) for m in (1, 2, 2.5, 5)), texts
        assert all(math.isclose(v / step, round(v / step), abs_tol=1e-9) for v in values), texts
        digits = _decimals(step)  # no more than the step needs, the same for every label
        assert all(len((text.split(".") + [""])[1]) == digits >= _decimals(float(text)) for text in texts), texts
    # each x tick at its value's place: a linear map through two ticks puts bicubic's SSIM on its marker
    xs = page.eval_on_selector_all("#pd-plot text.tick[data-axis='x']",
                                   "ts => ts.map(t => [+t.textContent, +t.getAttribute('x')])")
    assert all(frame[0] <= p <= frame[0] + frame[2] for _, p in xs)
    (v0, p0), (v1, p1) = xs[0], xs[-1]
    marker = _box(page, "#pd-plot g.pt[data-run='3'] .marker")[0]
    assert p0 + (0.81112 - v0) * (p1 - p0) / (v1 - v0) == pytest.approx(marker[0] + marker[2] / 2, abs=0.05)
    ys = [float(text) for a, text in ticks if a == "y"]
    assert ys[0] > 28.4302 - 0.5 and ys[-1] < 32.5013 + 0.5  # inside the padded range
    assert not errors, errors


def test_pd_plot_labels_overlap_no_label_no_point_and_stay_inside(pd_page):
    page, errors = pd_page
    texts = page.eval_on_selector_all("#pd-plot g.pt text", "ts => ts.map(t => t.textContent)")
    labels, markers = _box(page, "#pd-plot g.pt text"), _box(page, "#pd-plot g.pt .marker")
    frame = _box(page, "#pd-plot .axis path")[0]
    assert sorted(texts) == ["RDN", "RDNplus", "SRResNet (n=3/5)", "bicubic"]  # each run named beside its point
    # RDN's and RDNplus' points nearer than a label's width: a label beside one at a fixed offset covers the other
    (ax, ay, _, _), (bx, by, _, _) = markers[0], markers[1]
    assert abs(ax - bx) < 5 and abs(ay - by) < 5 and labels[0][2] > 15
    for a, b in combinations(labels, 2):
        assert not _intersect(a, b), (texts, labels)
    for text, a in zip(texts, labels):
        assert not any(_intersect(a, m) for m in markers), (text, a, markers)
        assert frame[0] <= a[0] and a[0] + a[2] <= frame[0] + frame[2], (text, a, frame)
        assert frame[1] <= a[1] and a[1] + a[3] <= frame[1] + frame[3], (text, a, frame)
    assert not errors, errors


def test_pd_plot_draws_each_run_in_the_colour_and_marker_of_the_figures(pd_page):
    """A run's point has matplotlib's colour (tab10) and marker for its label, as in the PNG/PDF figures, whatever
    its label shows: SRResNet's, over part of the set, reads "SRResNet (n=3/5)" and is drawn as SRResNet."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex
    from matplotlib.markers import MarkerStyle

    from aesop_bench.report.plots import run_style

    page, errors = pd_page
    style = {label: (to_hex(c), m) for label, (c, m) in run_style(PD_RUNS).items()}
    tab10 = [to_hex(c) for c in colormaps["tab10"].colors]
    # these labels hash to distinct colours: each is tab10's colour at its label's hash, as in every figure
    assert [style[label][0] for label in PD_RUNS] == [tab10[zlib.crc32(label.encode()) % 10] for label in PD_RUNS]
    drawn = page.eval_on_selector_all("#pd-plot g.pt", """gs => gs.map(g => {
        const m = g.querySelector('.marker');
        return [+g.dataset.run, g.querySelector('title').textContent, getComputedStyle(m).fill, m.dataset.marker,
                m.tagName, m.tagName === 'polygon' ? m.points.numberOfItems : 0];
    })""")
    assert len(drawn) == 4
    for i, title, fill, shape, tag, corners in drawn:
        label = PD_RUNS[i]
        assert title.startswith("SRResNet (n=3/5): " if label == "SRResNet" else f"{label}: ")
        rgb = tuple(int(c) for c in re.fullmatch(r"rgb\((\d+), (\d+), (\d+)\)", fill).groups())
        assert "#{:02x}{:02x}{:02x}".format(*rgb) == style[label][0], (label, fill)
        assert shape == style[label][1]
        # matplotlib's outline of that marker: its corners (its closed path repeats the first); "o" a circle
        path = MarkerStyle(shape).get_path()
        assert (tag, corners) == (("circle", 0) if shape == "o" else ("polygon", len(path.vertices) - 1))
    legend = page.eval_on_selector_all("#pd-legend li", "ls => ls.map(l => [l.textContent, "
                                       "getComputedStyle(l.querySelector('.marker')).fill])")
    assert [text for text, _ in legend] == ["RDN", "RDNplus", "SRResNet (n=3/5)", "bicubic"]
    assert not errors, errors
