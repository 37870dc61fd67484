"""The results browser and the crop sheet with names a user does not expect: the site writes only inside its
folder (copies under names it derives, HR and SR apart, never onto a file it shows) and reads only the files a run
names; a failed build leaves no trace; names with markup render as text in headless Chromium and the printed crop
command quotes every argument as the shell reads it back; a result folder's missing images give a result folder's
advice; a malformed --box is an error naming it."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shlex
import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest

from aesop_bench.cli import main
from aesop_bench.errors import AesopBenchError
from aesop_bench.report.runs import load_runs
from aesop_bench.report.site import site_data, write_site
from tests.test_site import _chromium, draw_crop_box

ODD_SET = "my set;touch PWNED <!--<script>"  # a folder given by path, its HR images directly inside
ODD_IMAGES = {"baby": "<!--<script>", "bird": "it's $(x) ü", "head": "head"}  # Set5 HR -> its name there
ODD_LABEL = "<!--<script> label</script> & more"


def _tree(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` by relative path, with a hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _eval(*args: str) -> None:
    assert main(["eval", "--metrics", "psnr", "--quiet", *args]) == 0


@pytest.fixture(scope="module")
def odd_runs(tmp_path_factory, bench_root):
    """Bicubic runs with saved SR images on ``ODD_SET`` (labelled ``ODD_LABEL``), in folders whose names want
    quoting, and a run's folder with saved SR images on Set5."""
    root = tmp_path_factory.mktemp("odd")
    odd = root / "sets" / ODD_SET
    odd.mkdir(parents=True)
    for hr, name in ODD_IMAGES.items():
        shutil.copyfile(bench_root / "Set5" / "HR" / f"{hr}.png", odd / f"{name}.png")
    _eval("--model", "bicubic", "--save-sr", "--name", ODD_LABEL, "--sets", str(odd), "--data-root",
          str(bench_root), "--out", str(root / "runs" / "it's"))
    shutil.copytree(root / "runs" / "it's", root / "runs" / "ü plain")
    _eval("--model", "bicubic", "--save-sr", "--sets", "set5", "--data-root", str(bench_root), "--out",
          str(root / "set5-bicubic"))
    return root


def _copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_per_image(run: Path, change) -> None:
    """Rewrite a run's per_image.csv, each row through ``change``."""
    with open(run / "per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(run / "per_image.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(change(dict(r)) for r in rows)


def _urls(data: dict) -> list[str]:
    return ([u for s in data["sets"] for u in s["hr"].values()] +
            [u for r in data["runs"] for s in r["images"].values() for u in s.values()])


def test_copied_images_of_a_set_given_by_path_go_into_the_site_hr_and_sr_apart(odd_runs, bench_root, tmp_path):
    """A set given by its absolute path, HR images directly in the folder: no copy lands in the set's folder (nor
    onto its own source), HR and SR are copied to distinct files holding their own bytes, all inside the site."""
    odd = odd_runs / "sets" / ODD_SET
    before = _tree(odd)
    site = tmp_path / "site"
    write_site(load_runs([odd_runs / "runs" / "it's"]), site, bench_root, copy_images=True)
    assert _tree(odd) == before
    data = json.loads((site / "data.json").read_text())
    (s,) = data["sets"]
    sr = data["runs"][0]["images"][s["name"]]
    assert sorted(s["hr"]) == sorted(sr) == sorted(ODD_IMAGES.values())
    for name in ODD_IMAGES.values():
        hr_copy, sr_copy = site / unquote(s["hr"][name]), site / unquote(sr[name])
        assert hr_copy != sr_copy and hr_copy.resolve().is_relative_to(site.resolve())
        assert hr_copy.read_bytes() == (odd / f"{name}.png").read_bytes()
        assert sr_copy.read_bytes() == next((odd_runs / "runs" / "it's" / "sr").glob(f"*/{name}.png")).read_bytes()
    assert all(re.fullmatch(r"images/(hr|run0)/[A-Za-z0-9._-]+/[A-Za-z0-9._-]+\.png", u) for u in _urls(data))


def test_a_crafted_run_can_neither_write_outside_the_site_nor_show_files_it_does_not_hold(odd_runs, bench_root,
                                                                                           tmp_path, monkeypatch):
    """Set names that are absolute paths or climb out choose no destination; image names and a result folder's
    file names that lead out of the run's folders are refused, naming the value, and nothing is written."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("keep me\n")
    shutil.copyfile(bench_root / "Set5" / "HR" / "baby.png", home / "baby.png")
    monkeypatch.setenv("HOME", str(home))
    # a model run whose records name the user's home folder as its set: its saved SR (sr/home/baby.png) is
    # copied into the site, not over ~/baby.png, and the home folder's files stay as they were
    run = _copy_run(odd_runs / "set5-bicubic", tmp_path / "runs" / "home-set")
    _edit_per_image(run, lambda r: {**r, "set": str(home)})
    summary = json.loads((run / "summary.json").read_text())
    summary["sets"] = {str(home): summary["sets"]["set5"]}
    (run / "summary.json").write_text(json.dumps(summary))
    saved = load_runs([run])[0].sr_image(str(home), "baby")
    saved.parent.mkdir()
    shutil.copyfile(run / "sr" / "set5" / "bird.png", saved)
    before = _tree(home)
    site = tmp_path / "site"
    write_site(load_runs([run]), site, bench_root, copy_images=True)
    assert _tree(home) == before
    assert all((site / unquote(u)).resolve().is_relative_to(site.resolve()) for u in _urls(
        json.loads((site / "data.json").read_text())))

    # image names that climb out of the run's sr folder: refused before anything is written
    run = _copy_run(odd_runs / "set5-bicubic", tmp_path / "runs" / "climb")
    _edit_per_image(run, lambda r: {**r, "image": "../../../../home/baby"} if r["image"] == "baby" else r)
    with pytest.raises(AesopBenchError, match=r"per_image.csv names set 'set5', image '\.\./\.\./\.\./\.\./home/"
                                              r"baby'.*outside"):
        write_site(load_runs([run]), tmp_path / "s2", bench_root, copy_images=True)
    assert not (tmp_path / "s2").exists()

    # a result folder's file names that are absolute or climb out of it
    assert main(["eval", "--sr", str(odd_runs / "set5-bicubic" / "sr"), "--sets", "set5", "--metrics", "psnr",
                 "--data-root", str(bench_root), "--quiet", "--out", str(tmp_path / "runs" / "folder")]) == 0
    for crafted in ("/etc/hostname", "../../../etc/hostname"):
        summary = json.loads((tmp_path / "runs" / "folder" / "summary.json").read_text())
        summary["sr_folder"]["files"]["set5"]["baby"] = crafted
        (tmp_path / "runs" / "folder" / "summary.json").write_text(json.dumps(summary))
        for copy in (True, False):
            with pytest.raises(AesopBenchError, match=rf"summary.json names the SR file {re.escape(repr(crafted))}"):
                write_site(load_runs([tmp_path / "runs" / "folder"]), tmp_path / "s3", bench_root, copy_images=copy)
            assert not (tmp_path / "s3").exists()
    assert not list(tmp_path.glob(".s*.part"))


def test_the_site_is_placed_only_inside_its_folder_and_keeps_what_the_user_had(odd_runs, bench_root, tmp_path):
    """An existing folder keeps its other files; a link inside it that leads out is refused before any file is
    replaced; a folder holding the images the page shows is not written over."""
    def runs():
        return load_runs([odd_runs / "set5-bicubic"])

    site = tmp_path / "site"
    site.mkdir()
    (site / "notes.txt").write_text("mine\n")
    write_site(runs(), site, bench_root, copy_images=True)
    assert (site / "notes.txt").read_text() == "mine\n" and (site / "images" / "hr").is_dir()

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "index.html").write_text("old page\n")
    (linked / "images").symlink_to(outside, target_is_directory=True)
    with pytest.raises(AesopBenchError, match=r"outside the site folder"):
        write_site(runs(), linked, bench_root, copy_images=True)
    assert not list(outside.iterdir()) and (linked / "index.html").read_text() == "old page\n"

    # the site written into the folder of a run's saved SR images would replace one of them: refused
    sr = odd_runs / "set5-bicubic" / "sr" / "set5"
    before = _tree(sr)
    (sr / "index.html").symlink_to(sr / "baby.png")
    try:
        with pytest.raises(AesopBenchError, match=r"an image the site shows"):
            write_site(runs(), sr, bench_root)
    finally:
        (sr / "index.html").unlink()
    assert _tree(sr) == before


def test_a_failed_html_leaves_no_folder_and_changes_no_folder_the_user_had(odd_runs, bench_root, tmp_path,
                                                                            monkeypatch, capsys):
    run = str(odd_runs / "set5-bicubic")
    work = tmp_path / "work"
    work.mkdir()
    new = work / "new" / "deeper" / "site"
    assert main(["report", run, "--html", str(new), "--baseline", "nope", "--data-root", str(bench_root)]) == 2
    assert "--baseline 'nope'" in capsys.readouterr().err
    assert not (work / "new").exists()

    had = work / "had"
    had.mkdir()
    (had / "index.html").write_text("an earlier page\n")
    (had / "notes.txt").write_text("mine\n")
    before = _tree(had)
    assert main(["report", run, "--html", str(had), "--baseline", "nope"]) == 2
    assert _tree(had) == before and [p.name for p in work.iterdir()] == ["had"]

    copy, calls = shutil.copyfile, []

    def failing_copy(src, dst, **kw):  # the disk fills up half way through the copies
        calls.append(src)
        if len(calls) % 3 == 0:
            raise OSError(28, "No space left on device", str(dst))
        return copy(src, dst, **kw)

    monkeypatch.setattr(shutil, "copyfile", failing_copy)
    for out in (work / "fresh", had):
        with pytest.raises(OSError, match="No space left"):
            write_site(load_runs([run]), out, bench_root, copy_images=True)
    assert _tree(had) == before and [p.name for p in work.iterdir()] == ["had"]


def test_inline_data_holds_no_markup_characters(odd_runs, bench_root, tmp_path):
    site = tmp_path / "site"
    write_site(load_runs([odd_runs / "runs" / "it's"]), site, bench_root)
    page = (site / "index.html").read_text()
    inline = re.search(r'<script id="aesop-data" type="application/json">(.*?)</script>', page, re.DOTALL).group(1)
    assert not set("<>&\u2028\u2029") & set(inline)
    assert json.loads(inline) == json.loads((site / "data.json").read_text())
    assert "<!--" not in page.split('<script id="aesop-data"')[1]


def test_names_with_markup_render_as_text_and_the_crop_command_quotes_every_argument(odd_runs, bench_root,
                                                                                    tmp_path):
    """Headless Chromium: a set, an image and a label holding ``<!--<script>`` and ``</script>`` leave the page
    whole, shown as text; the crop command of a drawn box is what shlex.quote writes for each argument, and the
    shell reads back the very paths, set and image."""
    chromium = _chromium()
    # a test dependency: its absence fails
    from playwright.sync_api import sync_playwright
    site = tmp_path / "site"
    cwd = os.getcwd()
    os.chdir(odd_runs)  # the runs given relatively, as a user types them
    try:
        assert main(["report", "runs/it's", "runs/ü plain", "--html", str(site), "--copy-images",
                     "--data-root", str(bench_root)]) == 0
    finally:
        os.chdir(cwd)
    set_name = str(odd_runs / "sets" / ODD_SET)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((site / "index.html").as_uri())
        page.wait_for_selector("body[data-ready='1']")
        assert page.eval_on_selector_all("script", "s => s.length") == 2
        rows = page.eval_on_selector_all("#images tbody tr",
                                         "trs => trs.map(t => [...t.cells].map(c => c.textContent))")
        assert sorted(r[1] for r in rows) == sorted(ODD_IMAGES.values())
        assert {r[0] for r in rows} == {ODD_SET}
        headers = page.eval_on_selector_all("#summary th", "ths => ths.map(t => t.textContent)")
        assert f"{ODD_LABEL} (it's)" in headers and f"{ODD_LABEL} (ü plain)" in headers
        assert page.text_content("#run-info h3") == f"{ODD_LABEL} (it's)"

        page.click("#images tbody tr:nth-child(1)")
        page.wait_for_function("[...document.querySelectorAll('#panels img')].length === 3 && "
                               "[...document.querySelectorAll('#panels img')].every(i => i.complete && i.naturalWidth)")
        image = rows[0][1]
        assert page.text_content("#viewer-title").startswith(f"{ODD_SET} / {image}")
        command = draw_crop_box(page, page.locator("#panels .vp").nth(1).bounding_box())
        browser.close()
    assert not errors, errors
    argv = shlex.split(command)
    assert argv[:-1] == ["aesop-bench", "plot", "crops", "runs/it's", "runs/ü plain", "--set", set_name,
                         "--image", image, "--box"] and re.fullmatch(r"\d+,\d+,\d+,\d+", argv[-1])
    assert command == " ".join(shlex.quote(a) for a in argv)


def test_a_result_folder_that_moved_is_advised_as_a_result_folder(odd_runs, bench_root, tmp_path):
    """SR images of a result folder's run that are gone: the page and the crop sheet name the folder and say to
    put it back or evaluate it again, not --save-sr (which a model's run still gets)."""
    from aesop_bench.report.plots import crop_panels

    folder = shutil.copytree(odd_runs / "set5-bicubic" / "sr", tmp_path / "results")
    _eval("--sr", str(folder), "--name", "mine", "--sets", "set5", "--data-root", str(bench_root), "--out",
          str(tmp_path / "run"))
    folder.rename(tmp_path / "moved")
    data = site_data(load_runs([tmp_path / "run"]), tmp_path / "site", bench_root)
    note = data["runs"][0]["images_note"]
    assert note.startswith("no SR images found") and str(folder) in note and "eval --sr" in note
    assert "--save-sr" not in note
    with pytest.raises(AesopBenchError, match=rf"{re.escape(str(folder))}, which was moved") as err:
        crop_panels(load_runs([tmp_path / "run"]), "set5", "baby", None, bench_root)
    assert "--save-sr" not in str(err.value)

    _eval("--model", "bicubic", "--sets", "set5", "--data-root", str(bench_root), "--out", str(tmp_path / "model"))
    data = site_data(load_runs([tmp_path / "model"]), tmp_path / "site", bench_root)
    assert data["runs"][0]["images_note"] == "no saved SR images: evaluate it with --save-sr"


@pytest.mark.parametrize("box, message", [
    ("a,b,c,d", r"--box 'a,b,c,d' is not four integers x,y,width,height; the image is 504x504"),
    ("0,0,1e3,5", r"--box '0,0,1e3,5' is not four integers x,y,width,height; the image is 504x504"),
    ("1,2,3", r"--box '1,2,3' is not four integers"),
    ("0,0,0,5", r"--box '0,0,0,5' is not an area of the image; the image is 504x504"),
    ("-1,0,5,5", r"--box '-1,0,5,5' is not an area of the image.*e\.g\. --box 204,204,96,96"),
    ("0,0,1000,5", r"crop box \(0, 0, 1000, 5\) .*outside what these panels show: HR \(504x504"),
])
def test_a_malformed_box_names_the_value_the_image_size_and_what_to_write(odd_runs, bench_root, box, message):
    from aesop_bench.report.plots import crop_panels

    runs = load_runs([odd_runs / "set5-bicubic"])
    with pytest.raises(AesopBenchError, match=message):
        crop_panels(runs, "set5", "baby", box, bench_root)
    _, got, _ = crop_panels(runs, "set5", "baby", " 10,20, 30,40", bench_root)
    assert got == (10, 20, 30, 40)


def test_plot_crops_refuses_a_malformed_box_from_the_command_line(odd_runs, bench_root, tmp_path, capsys):
    """The command line passes --box as typed: a malformed one is an error message (exit 2), not a traceback."""
    from aesop_bench.cli import main

    for box in ("a,b,c,d", "0,0,1e3,5"):
        assert main(["plot", "crops", str(odd_runs / "set5-bicubic"), "--set", "set5", "--image", "baby", "--box",
                     box, "--data-root", str(bench_root), "--out", str(tmp_path / "crops")]) == 2
        assert f"--box {box!r} is not four integers" in capsys.readouterr().err
