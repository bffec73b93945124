"""Fixtures for the browser tier: Playwright driving Debian's headless Chromium (never a
downloaded browser), a fresh on-disk profile per test, and the exported static site."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localinfer.settings import Settings
from localinfer.web.assets import vendor_manifest
from localinfer.web.export import export_site
from tests.browser.harness import BROWSER_FLAGS, CHROMIUM, TIMEOUT_MS, NewPage


def _why_not() -> str | None:
    if not CHROMIUM.exists():
        return "needs Debian's chromium at /usr/bin/chromium (./dev test installs it as root)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "needs playwright (the test extra)"
    if vendor_manifest() is None:
        return "the in-browser engine is not built: run ./dev (npm ci + scripts/build_web.py)"
    return None


@pytest.fixture(scope="package")
def playwright_driver() -> Iterator[Any]:
    # Package scope, not session: Playwright's sync API keeps an asyncio loop running on
    # the main thread while it is open, and every async test after it would fail with
    # "cannot be called from a running event loop".
    why = _why_not()
    if why:
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def new_page(playwright_driver: Any, tmp_path: Path) -> Iterator[NewPage]:
    """``new_page()`` -> a Playwright page in one persistent on-disk profile (the Cache
    API and localStorage survive reloads and new pages within the test)."""
    contexts: list[Any] = []
    errors: list[str] = []

    def make() -> Any:
        if not contexts:
            contexts.append(playwright_driver.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
                args=BROWSER_FLAGS, viewport={"width": 1280, "height": 860}))
        page = contexts[0].new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page

    yield make
    for ctx in contexts:
        ctx.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``localinfer web export`` with the bundled model (the zero-server site)."""
    home = tmp_path_factory.mktemp("export-home")
    dest = tmp_path_factory.mktemp("site") / "app"
    export_site(dest, Settings(home=home, scan_default_ports=False))
    return dest


@pytest.fixture(scope="session")
def export_dir_no_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("export-home-nm")
    dest = tmp_path_factory.mktemp("site-nm") / "app"
    export_site(dest, Settings(home=home, scan_default_ports=False), include_models=False)
    return dest
