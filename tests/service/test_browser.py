"""The web page in a real headless browser (Debian's chromium, driven by Playwright): enroll from an
upload, identify from an upload and from the camera, see the names drawn, delete.

Needs Debian's chromium (`.ci/setup-browser` installs it; CNNKIT_CHROMIUM names another binary) and
the `playwright` Python package (the "test" extra); Playwright downloads no browser. Where either is
missing these tests FAIL, saying what to install: a missing browser must not pass for a working page.
Without a browser they are skipped, saying why; .ci/run sets CNNKIT_REQUIRE_BROWSER_TESTS=1, so there
a missing browser fails. Set CNNKIT_SKIP_BROWSER_TESTS=1 to skip them on purpose.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from cnnkit.service import ServiceSettings
from tests.conftest import lfw_image
from tests.service.support import auth, make_keys, running_server

pytestmark = pytest.mark.usefixtures("face_weights")

CHROMIUM = os.environ.get("CNNKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--disable-dev-shm-usage"]
KNOWN_COLOR = (0x0B, 0x6B, 0x2E)  # the page's colour for a recognised face


SKIP_VARIABLE = "CNNKIT_SKIP_BROWSER_TESTS"
REQUIRE_VARIABLE = "CNNKIT_REQUIRE_BROWSER_TESTS"  # .ci/run sets it: there, a missing browser is a failure


def _unavailable(why: str) -> None:
    """Skip, saying why, wherever no browser can be had; fail where one is required (CI)."""
    if os.environ.get(REQUIRE_VARIABLE, "") not in ("", "0") and os.environ.get(SKIP_VARIABLE, "") in ("", "0"):
        pytest.fail(f"browser tests cannot run: {why}. Install chromium with .ci/setup-browser (and the test "
                    f"extra), or set {SKIP_VARIABLE}=1 to skip them on purpose", pytrace=False)
    pytest.skip(f"browser tests skipped: {why} (`.ci/setup-browser` installs Debian's chromium; "
                f"CNNKIT_CHROMIUM names another)")


def write_y4m(path: Path, rgb: np.ndarray, frames: int = 2) -> None:
    """A tiny Y4M video (4:2:0) showing `rgb`: Chromium's fake camera plays it."""
    height, width = rgb.shape[:2]
    ycc = np.asarray(Image.fromarray(rgb).convert("YCbCr"))
    y = ycc[:, :, 0]
    half = (width // 2, height // 2)
    cb = np.asarray(Image.fromarray(ycc[:, :, 1]).resize(half, Image.BILINEAR))
    cr = np.asarray(Image.fromarray(ycc[:, :, 2]).resize(half, Image.BILINEAR))
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + y.tobytes() + cb.tobytes() + cr.tobytes())


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    if not Path(CHROMIUM).exists():
        _unavailable(f"no chromium at {CHROMIUM}")
    # The fake camera shows a photo of Colin Powell that was never enrolled.
    camera = tmp_path_factory.mktemp("camera") / "face.y4m"
    frame = np.asarray(Image.open(lfw_image("Colin_Powell", 7)).convert("RGB").resize((320, 320)))
    write_y4m(camera, frame)
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=FLAGS + ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                          f"--use-file-for-fake-video-capture={camera}"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def site(tmp_path, browser, face_weights):
    """The page on a fresh server. Playwright's wait_for_function evaluates strings, which the page's
    Content-Security-Policy forbids, so these contexts bypass it; `strict_site` keeps it."""
    gallery = tmp_path / "page.db"
    keys = make_keys(gallery)
    with running_server(ServiceSettings(gallery=gallery, threads=1)) as url:
        context = browser.new_context(viewport={"width": 1100, "height": 1400}, bypass_csp=True)
        page = context.new_page()
        page.set_default_timeout(60_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready=true]")
        try:
            yield page, url, keys, errors
        finally:
            context.close()


def enter_key(page, key: str) -> None:
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Use key").click()
    page.wait_for_function("document.getElementById('key-state').classList.contains('good')")


def drawn_labels(page) -> list[dict]:
    page.wait_for_function("document.getElementById('identify-canvas').dataset.labels !== undefined")
    return page.evaluate("JSON.parse(document.getElementById('identify-canvas').dataset.labels)")


def canvas_pixel(page, x: float, y: float) -> tuple[int, int, int]:
    rgba = page.evaluate(f"Array.from(document.getElementById('identify-canvas').getContext('2d')"
                         f".getImageData({int(x)}, {int(y)}, 1, 1).data)")
    return tuple(rgba[:3])


def test_enroll_identify_see_the_name_drawn_delete(site, tmp_path):
    page, url, keys, errors = site
    enter_key(page, keys.write)
    assert "Write key accepted" in page.locator("#key-state").inner_text()

    # Enroll from an upload.
    page.get_by_label("Name").fill("Colin Powell")
    page.get_by_label("Photos", exact=True).set_input_files([str(lfw_image("Colin_Powell", 1)),
                                                             str(lfw_image("Colin_Powell", 2))])
    page.get_by_role("button", name="Enroll", exact=True).click()
    page.wait_for_function("document.getElementById('message').textContent.startsWith('Enrolled')")
    assert page.locator("#message").inner_text() == "Enrolled Colin Powell (#1) from 2 photo(s)."
    row = page.locator("#people-body tr")
    page.wait_for_function("document.querySelectorAll('#people-body tr').length === 1")
    assert row.locator("th").inner_text() == "Colin Powell" and row.locator("td").nth(1).inner_text() == "2"

    # Identify from an upload: the name is drawn on the picture, in the box, and listed.
    page.get_by_label("Photo", exact=True).set_input_files(str(lfw_image("Colin_Powell", 3)))
    page.get_by_role("button", name="Identify", exact=True).click()
    (label,) = drawn_labels(page)
    assert label["name"] == "Colin Powell" and label["id"] == 1
    x1, y1, x2, y2 = label["box"]
    assert canvas_pixel(page, x1, (y1 + y2) / 2) == KNOWN_COLOR  # the box's left edge
    assert canvas_pixel(page, (x1 + x2) / 2, y2) == KNOWN_COLOR  # its bottom edge
    assert "Colin Powell (#1)" in page.locator("#identify-results").inner_text()
    assert page.locator("#identify-canvas").get_attribute("aria-label") == "Photo with faces marked: Colin Powell"
    page.screenshot(path=str(tmp_path / "identify.png"), full_page=True)

    # Identify from the camera (Chromium's fake camera plays another photo of him).
    page.locator("[data-camera-for=identify]").click()
    page.wait_for_function("document.getElementById('identify-video').videoWidth > 0")
    page.get_by_role("button", name="Take photo and identify").click()
    page.wait_for_function("document.getElementById('message').textContent.includes('recognised')")
    assert [lab["name"] for lab in drawn_labels(page)] == ["Colin Powell"]
    page.get_by_role("button", name="Stop camera").first.click()

    # Delete him from the list.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete Colin Powell (#1)").click()
    page.wait_for_function("document.querySelectorAll('#people-body tr').length === 0")
    assert page.locator("#message").inner_text().startswith("Deleted Colin Powell (#1)")
    assert httpx.get(url + "/people", headers=auth(keys.read)).json()["total"] == 0

    # A stranger is drawn as unknown now.
    page.get_by_label("Photo", exact=True).set_input_files(str(lfw_image("Colin_Powell", 3)))
    page.get_by_role("button", name="Identify", exact=True).click()
    page.wait_for_function("JSON.parse(document.getElementById('identify-canvas').dataset.labels || '[]')"
                           ".every(l => l.name === null)")
    assert "unknown" in page.locator("#identify-results").inner_text()
    assert errors == []


def test_enroll_from_the_camera_and_a_read_key_cannot_write(site):
    page, url, keys, errors = site
    enter_key(page, keys.write)
    page.get_by_label("Name").fill("Colin Powell")
    page.locator("[data-camera-for=enroll]").click()
    page.wait_for_function("document.getElementById('enroll-video').videoWidth > 0")
    page.get_by_role("button", name="Take photo", exact=True).click()
    page.wait_for_function("document.querySelectorAll('#enroll-captures li').length === 1")
    page.get_by_role("button", name="Enroll", exact=True).click()
    page.wait_for_function("document.getElementById('message').textContent.startsWith('Enrolled')")
    assert "from 1 photo(s)" in page.locator("#message").inner_text()
    people = httpx.get(url + "/people", headers=auth(keys.read)).json()["people"]
    assert [(p["name"], p["embeddings"]) for p in people] == [("Colin Powell", 1)]

    # With a read key the page shows who is there but offers no deleting.
    page.get_by_role("button", name="Forget key").click()
    enter_key(page, keys.read)
    assert "Read key accepted" in page.locator("#key-state").inner_text()
    page.wait_for_function("document.querySelectorAll('#people-body tr').length === 1")
    assert page.get_by_role("button", name="Delete Colin Powell (#1)").is_disabled()
    assert errors == []


@pytest.fixture
def strict_site(tmp_path, browser, face_weights):
    """The page under its own Content-Security-Policy (waits use locators, never evaluated strings)."""
    gallery = tmp_path / "strict.db"
    keys = make_keys(gallery)
    with running_server(ServiceSettings(gallery=gallery, threads=1)) as url:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(60_000)
        messages: list[str] = []
        page.on("pageerror", lambda exc: messages.append(str(exc)))
        page.on("console", lambda msg: messages.append(msg.text) if msg.type == "error" else None)
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready=true]")
        try:
            yield page, keys, messages
        finally:
            context.close()


def test_page_works_under_its_csp_by_keyboard_and_every_control_is_labelled(strict_site):
    from playwright.sync_api import expect

    page, keys, messages = strict_site
    unlabeled = page.evaluate("""Array.from(document.querySelectorAll('input, select, textarea'))
        .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label')).map(el => el.id)""")
    assert unlabeled == []
    assert page.evaluate("document.documentElement.lang") == "en"
    # Tab from the start: the skip link, then the key field; type the key and press Enter.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "key"
    page.keyboard.type(keys.write)
    page.keyboard.press("Enter")
    expect(page.locator("#key-state")).to_have_class("key-state good")
    expect(page.locator("#people-count")).to_have_text("Nobody listed.")
    # A bad key says so in words.
    page.get_by_label("API key").fill("ck_" + "Z" * 43)
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#key-state")).to_contain_text("not valid")
    # The browser logged only the refused request: no script error, no CSP violation.
    assert messages and all("401" in m for m in messages), messages


def test_api_page_renders_offline_under_the_csp(browser, tmp_path, face_weights):
    """GET /docs: Swagger UI from the service's own files (no CDN), started without an inline script."""
    from playwright.sync_api import expect

    gallery = tmp_path / "docs.db"
    make_keys(gallery)
    with running_server(ServiceSettings(gallery=gallery, threads=1)) as url:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(60_000)
        outside: list[str] = []
        messages: list[str] = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((url, "data:")) else None)
        page.on("pageerror", lambda exc: messages.append(str(exc)))
        page.on("console", lambda msg: messages.append(msg.text) if msg.type == "error" else None)
        try:
            page.goto(url + "/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("cnnkit face recognition")
            expect(page.locator(".opblock-summary-path", has_text="/identify").first).to_be_visible()
            assert outside == [] and messages == [], (outside, messages)
        finally:
            context.close()
