"""doppel ui in a real browser (Debian's Chromium driven by Playwright): `make test-browser`, which CI runs.

Uploads a real clip on the Detect tab and reads the verdict from the page,
checks that the browser asked for nothing outside the app, refuses an
oversized file before it is sent; makes two face sets, trains until a preview
shows, stops, and plays a swap. Screenshots only on request: with
DOPPEL_UI_SCREENSHOTS set, each tab's form goes to docs/img/ui_<tab>.jpg (the
ones docs/ui.md shows) and the result pages, which show research faces from
../shared/data, to out/ui_shots/ (ignored by git).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
# Debian's chromium, not Playwright's own build (its download cannot work here); headless without a GPU, and
# nothing of its own phoning home (updates, sync, safe-browsing lists), so the only requests are the app's
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[2]
TAB_SHOTS, RESULT_SHOTS = REPO / "docs" / "img", REPO / "out" / "ui_shots"

pytestmark = pytest.mark.slow


def missing(what: str) -> None:
    """Skip, or fail under CI: `make test-browser` installs chromium and playwright, so there a missing one is a bug."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} is missing but CI is set: `make test-browser` should have installed it")
    pytest.skip(f"{what} is missing (make test-browser installs it); CI=true makes this a failure")


@pytest.fixture
def browser_page(ui):
    try:
        from playwright import sync_api
    except ImportError:
        missing("playwright (pip install -e '.[browser]')")
    if not shutil.which(CHROMIUM):
        missing(f"{CHROMIUM} (apt-get install chromium)")
    base, server = ui
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        requested = []
        page.on("request", lambda r: requested.append(r.url))
        yield base, server, page, requested
        browser.close()


def shot(page, name: str, result: bool = False, width: int = 800) -> None:
    """A labelled JPEG of the page when DOPPEL_UI_SCREENSHOTS is set (pages show synthetic frames, so it carries
    the label too); a result page shows faces from ../shared/data and goes to out/, never into docs/."""
    if not os.environ.get("DOPPEL_UI_SCREENSHOTS"):
        return
    import io

    import numpy as np
    from PIL import Image

    from doppel import provenance
    folder = RESULT_SHOTS if result else TAB_SHOTS
    folder.mkdir(parents=True, exist_ok=True)
    im = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    provenance.write_labeled_image(folder / f"ui_{name}.jpg", np.asarray(im), "ui-screenshot", page=page.url)


def test_detect_in_a_browser(browser_page, data_dir, tmp_path):
    base, server, page, requested = browser_page
    page.goto(base + "/detect")
    page.set_input_files("#media", str(data_dir / "video" / "iplap_129.mp4"))
    page.fill("#step", "8")
    shot(page, "detect_form")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/jobs/[\w-]+$"))
    page.wait_for_selector(".badge.verdict", timeout=150_000)  # the page refreshes itself until the job is done
    page.wait_for_selector(".badge.state >> text=done", timeout=60_000)
    verdict = page.inner_text(".badge.verdict")
    assert re.fullmatch(r"(FAKE|REAL|UNCERTAIN) · \d+%", verdict), verdict
    assert page.locator("ul.reasons li").count() >= 1
    assert page.locator("img[alt='scores over time']").evaluate("i => i.naturalWidth") > 100  # really loaded
    assert page.inner_text("p.prov.watermark").startswith("Watermark: none found")  # a real clip carries no mark
    shot(page, "detect_result", result=True)
    page.click("text=Full report (HTML)")
    page.wait_for_selector("text=Most suspicious faces")
    assert all(u.startswith(base) or u.startswith("data:") for u in requested), [u for u in requested
                                                                                  if not u.startswith(base)]

    big = tmp_path / "big.mp4"  # over the 4 MiB cap of the fixture: refused in the page, nothing sent
    big.write_bytes(b"\0" * (5 << 20))
    page.goto(base + "/detect")
    page.set_input_files("#media", str(big))
    page.click("button[type=submit]")
    assert "the limit is 4 MB" in page.inner_text(".msg")
    assert page.url.endswith("/detect")

    for tab in ("extract", "lipsync"):  # train, swap and jobs are shot in the next test, with something to pick
        page.goto(f"{base}/{tab}")
        assert page.locator("nav a.on").count() == 1
        shot(page, tab)
    assert page.locator("#model option[value=grid_s1]").count() == 1  # the bundled lip model is offered


def test_train_preview_and_swap_video_in_a_browser(browser_page, data_dir):
    base, server, page, requested = browser_page
    for name, files, every in (("iplap", [data_dir / "video" / "iplap_129.mp4"], "8"),
                               ("powell", sorted((data_dir / "faces" / "lfw" / "Colin_Powell").glob("*.jpg"))[:20], "1")):
        page.goto(base + "/extract")
        page.set_input_files("#media", [str(f) for f in files])
        page.fill("#name", name)
        page.fill("#every", every)
        page.click("button[type=submit]")
        page.wait_for_selector("img.sheet", timeout=180_000)
    shot(page, "extract_result", result=True)

    page.goto(base + "/train")
    page.select_option("#faceset_a", "iplap")
    page.select_option("#faceset_b", "powell")
    page.fill("#model", "m")
    page.fill("#steps", "100000")
    page.fill("#batch", "4")
    page.fill("#preview_every", "3")
    shot(page, "train")
    page.click("button[type=submit]")
    page.wait_for_selector("img.preview", timeout=180_000)  # a preview appears while it runs
    assert page.inner_text(".badge.state") == "running" and "SYNTHETIC" in page.inner_text(".synthetic")
    page.reload()  # the job is still there after a reload
    page.wait_for_selector("img.preview")
    shot(page, "train_running", result=True)
    page.click("text=Stop")
    job_log = server.app.queue.folder(page.url.rstrip("/").rsplit("/", 1)[-1]) / "log.txt"
    try:
        page.wait_for_selector(".badge.state >> text=stopped", timeout=90_000)
    except Exception:  # say where the worker was: a hung stop dumps its threads' stacks into its log
        pytest.fail("the training job did not stop; end of its log:\n" + job_log.read_text(errors="replace")[-6000:])
    assert "stopped on request" in page.inner_text("p.error")  # a clean stop (it saved), not a kill

    page.goto(base + "/swap")
    page.select_option("#model", "m")
    page.set_input_files("#media", str(data_dir / "video" / "iplap_129.mp4"))
    page.fill("#max_frames", "12")
    shot(page, "swap")
    page.click("button[type=submit]")
    page.wait_for_selector("video.output", timeout=180_000)
    assert "made by doppel" in page.inner_text(".synthetic")
    page.wait_for_function("document.querySelector('video.output').readyState >= 1", timeout=30_000)  # it plays
    assert page.evaluate("document.querySelector('video.output').duration") > 0.3
    shot(page, "swap_result", result=True)
    assert all(u.startswith(base) or u.startswith("data:") for u in requested)
    page.goto(base + "/jobs")
    assert page.locator("table a").count() == 4  # two extracts, the training and the swap, each listed
    shot(page, "jobs")
