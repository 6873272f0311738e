"""Headless Chromium for the explorer page: the screenshot `make demo` writes, and the selenium driver the browser
tests and the bench share. Debian's `chromium` and `chromium-driver` packages; nothing is downloaded."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import UserError

logger = logging.getLogger(__name__)
# no sandbox (root in a container), and nothing that would reach the network on its own
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")
SCREENSHOT_SIZE = (1400, 1500)


def find_chromium() -> str | None:
    """The Chromium executable (`chromium`, as Debian installs it, or `chromium-browser`), or None."""
    return next((found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None)


def screenshot(page: str | os.PathLike, png: str | os.PathLike, size: tuple[int, int] = SCREENSHOT_SIZE,
               timeout: float = 120) -> Path:
    """A PNG of the page's first view (`size` pixels) in headless Chromium with a fresh profile, written
    atomically (replacing an older one)."""
    from ..io.atomic import atomic_output

    chromium = find_chromium()
    if chromium is None:
        raise UserError("no chromium to take the screenshot with (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="explorer-chromium-") as profile:
        shot = Path(profile) / "shot.png"
        command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}/profile",
                   f"--window-size={size[0]},{size[1]}", f"--screenshot={shot}", Path(page).resolve().as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0 or not shot.is_file():
            raise UserError(f"chromium could not take a screenshot of {page}: {done.stderr.strip()[-300:]}")
        with atomic_output(png, "wb", inputs=[page], overwrite=True) as handle:
            handle.write(shot.read_bytes())
    return Path(png)


CHROMEDRIVER = "/usr/bin/chromedriver"  # Debian's chromium-driver


def headless_driver(window: tuple[int, int] = (1400, 1000), console: bool = False):
    """A selenium Chrome driver on the local headless Chromium and Debian's chromedriver (given by path: selenium
    downloads nothing, `SE_OFFLINE=true`), a fresh profile, the network switched off. `console` keeps the page's
    console messages for `get_log("browser")`. selenium comes with the test extras (`pip install -e .[test]`).
    The caller quits it; the profile folder is removed at exit."""
    import atexit
    import shutil as _shutil

    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = find_chromium()
    if chromium is None or not os.path.exists(CHROMEDRIVER):
        raise UserError(f"headless browsing needs chromium and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    profile = tempfile.mkdtemp(prefix="explorer-chromium-")
    atexit.register(_shutil.rmtree, profile, ignore_errors=True)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}"):
        options.add_argument(flag)
    if console:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
    return driver
