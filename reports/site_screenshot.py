"""The README's screenshots of the results browser: RDN's and SRResNet's published Set5 outputs and bicubic,
as result folders, written with `report --html` and shown in headless Chromium at two window sizes.

    python reports/site_screenshot.py   # needs ../shared/data and Debian's chromium; writes reports/site_*.png
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AESOP_BENCH_SHARED") or REPO.parent / "shared" / "data")


def aesop(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "aesop_bench", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PYTHONPATH=str(REPO), AESOP_BENCH_DATA=str(SHARED / "benchmarks")))


def main() -> None:
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="site-"))
    common = ["--sets", "set5", "--metrics", "psnr,ssim,lr_psnr", "--quiet"]
    for name in ("RDN", "SRResNet"):
        aesop("eval", "--sr", str(SHARED / "results" / name), "--name", name, "--out", f"runs/{name}", *common,
              cwd=work)
    # bicubic SR images of the whole HR (cropped to a multiple of 4, as Set5's already are), so that the three
    # folders' values cover the same areas
    aesop("eval", "--model", "bicubic", "--modcrop", "4", "--save-sr", "--out", "made", *common, cwd=work)
    aesop("eval", "--sr", "made/sr", "--name", "bicubic", "--out", "runs/bicubic", *common, cwd=work)
    aesop("report", "runs/RDN", "runs/SRResNet", "runs/bicubic", "--html", "site", "--copy-images", cwd=work)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        for name, size in (("wide", (1280, 800)), ("narrow", (760, 900))):
            page = browser.new_page(viewport={"width": size[0], "height": size[1]})
            page.goto((work / "site" / "index.html").as_uri())
            page.wait_for_selector("body[data-ready='1']")
            if name == "wide":
                page.screenshot(path=str(REPO / "reports" / "site_page.png"), full_page=True)
            page.click("#images tbody tr:nth-child(3)")  # butterfly
            page.wait_for_function("[...document.querySelectorAll('#panels img')].every(i => i.complete)")
            vp = page.locator("#panels .vp").nth(1).bounding_box()
            page.mouse.move(vp["x"] + vp["width"] / 2, vp["y"] + vp["height"] / 2)
            page.mouse.wheel(0, -700)
            page.keyboard.down("Shift")
            page.mouse.move(vp["x"] + vp["width"] * 0.3, vp["y"] + vp["height"] * 0.3)
            page.mouse.down()
            page.mouse.move(vp["x"] + vp["width"] * 0.6, vp["y"] + vp["height"] * 0.55, steps=4)
            page.mouse.up()
            page.keyboard.up("Shift")
            page.screenshot(path=str(REPO / "reports" / f"site_viewer_{name}.png"))
        browser.close()
    shutil.rmtree(work)
    print("wrote reports/site_page.png, reports/site_viewer_wide.png, reports/site_viewer_narrow.png")


if __name__ == "__main__":
    main()
