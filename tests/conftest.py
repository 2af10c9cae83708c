"""Suite-wide fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_user_cache(tmp_path_factory):
    """No test writes into the user's cache folder (class statistics, file facts); tests that
    look at the cache set their own folder on top of this one."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIXELSEG_CACHE_DIR", str(tmp_path_factory.mktemp("user-cache")))
        yield
