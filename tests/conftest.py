"""Suite-wide fixtures."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_user_cache(tmp_path_factory):
    """No test writes into the user's cache folder (class statistics, file facts); tests that
    look at the cache set their own folder on top of this one."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIXELSEG_CACHE_DIR", str(tmp_path_factory.mktemp("user-cache")))
        yield


@dataclass(frozen=True)
class Chromium:
    path: str
    # As root, in a closed network: no sandbox, and no background connections (this
    # machine refuses them, many at a time).
    flags: tuple[str, ...] = (
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    )


@pytest.fixture(scope="session")
def chromium() -> Chromium:
    """Debian's headless chromium (`.ci/run` installs it); tests that need it skip without it."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return Chromium(path)
