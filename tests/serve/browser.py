"""A real headless Chromium for browser tests: Selenium driving Debian's `chromium` through `chromium-driver`.

Missing pieces fail the test (never skip) with the command that installs them. Chromium starts with the flags this
closed network needs (no background networking, no component updates, no sync, no QUIC) and a new empty profile.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

APT_INSTALL = "apt-get install -y chromium chromium-driver"
PIP_INSTALL = "pip install -e '.[dev]'  (selenium)"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1", "--lang=en-US")


def _find(env: str, *names: str) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def require_browser() -> tuple[str, str]:
    """(chromium, chromedriver) paths ($FINMM_CHROMIUM / $FINMM_CHROMEDRIVER override); fail when absent."""
    chromium = _find("FINMM_CHROMIUM", "chromium", "chromium-browser")
    driver = _find("FINMM_CHROMEDRIVER", "chromedriver")
    missing = [n for n, p in (("chromium", chromium), ("chromedriver", driver)) if not p]
    if missing:
        pytest.fail(f"browser test needs {' and '.join(missing)}, not found on PATH; install them (as root) with: "
                    f"{APT_INSTALL}", pytrace=False)
    return chromium, driver  # type: ignore[return-value]


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator:
    """A Selenium WebDriver on headless Chromium with a fresh profile; quits and removes the profile after."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"browser test needs selenium: {PIP_INSTALL}", pytrace=False)
    binary, driver_path = require_browser()
    profile = tempfile.mkdtemp(prefix="finmm-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    # An explicit driver path: Selenium Manager (which would try to download one) is never asked.
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def full_page_screenshot(driver, path: Path, width: int = 1400) -> Path:
    """Resize the window to the whole document, then save a PNG (headless Chromium captures the window only)."""
    height = driver.execute_script(
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
    driver.set_window_size(width, min(int(height) + 20, 6000))
    driver.execute_script("window.scrollTo(0, 0)")
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path
