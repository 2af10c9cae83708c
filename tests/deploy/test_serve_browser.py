"""The web page in a real headless browser (Debian's chromium through Playwright): upload an
image, see the overlay, the legend and the objects appear, toggle the uncertainty map."""

from __future__ import annotations

import socket
import threading
import time

import pytest

import pixelseg
from pixelseg.data.imageio import list_images

uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def server(trained_run):
    from pixelseg.deploy.serve_app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(pixelseg.load(trained_run("unet")))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "the server did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


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
