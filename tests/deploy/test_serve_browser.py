"""The web page in a real headless browser (Debian's chromium through Playwright): upload an
image, see the overlay, the legend and the objects appear, toggle the uncertainty map. It runs
wherever chromium is installed (`.ci/run` installs it) and skips only where it is not; Playwright
launches that executable and downloads nothing."""

from __future__ import annotations

import pytest
from playwright import sync_api  # the dev extra; the browser itself is the system chromium

import pixelseg
from pixelseg.data.imageio import list_images

from .live_server import live_server


@pytest.fixture
def server(trained_run):
    from pixelseg.deploy.serve.app import create_app

    with live_server(create_app(pixelseg.load(trained_run("unet")))) as url:
        yield url


def test_upload_shows_overlay_legend_and_objects(chromium, server, deploy_scenes, tmp_path):
    image = list_images(deploy_scenes / "test" / "images")[0]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium.path, headless=True, args=list(chromium.flags)
        )
        try:
            page = browser.new_page()
            page.goto(server + "/")
            page.wait_for_function("document.getElementById('model').textContent.includes('unet')")
            page.set_input_files("#file", str(image))
            page.wait_for_selector("body[data-state=done]", timeout=30_000)
            overlay = page.get_attribute("#result", "src")
            assert overlay.startswith("data:image/png;base64,")
            assert page.eval_on_selector("#result", "img => img.naturalWidth") == 40
            assert page.locator("#legend tr").count() >= 2  # header + at least one class
            assert "segmented" in page.text_content("#status")
            page.check("#toggle")
            assert page.get_attribute("#result", "src") != overlay  # the uncertainty map
            assert page.get_attribute("#result", "alt") == "uncertainty map"
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        finally:
            browser.close()
