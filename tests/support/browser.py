"""Headless Chromium for the page's tests: Debian's chromium driven by its own chromedriver
through Selenium (WebDriver waits and element queries, no protocol client of our own). The
driver path is given, so Selenium Manager never looks for or downloads a browser."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

T = TypeVar("T")
# The browser's zone: the page shows UTC and local time side by side. No daylight saving, and a
# half-hour offset, so a local time computed wrongly cannot pass for the right one.
TIME_ZONE = "Asia/Kolkata"
TIME_ZONE_OFFSET = timedelta(hours=5, minutes=30)


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        f"{names[0]} is not installed: run scripts/ensure-services.sh (`make test` does)"
    )


@contextlib.contextmanager
def chromium(workdir: Path, *, width: int = 1280, height: int = 1600) -> Iterator[Any]:
    """A headless Chromium (its profile under ``workdir``) in the ``TIME_ZONE`` time zone."""
    options = webdriver.ChromeOptions()
    options.binary_location = _binary("chromium", "chromium-browser")
    for argument in (
        "--headless=new",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--lang=en-US",
        f"--window-size={width},{height}",
        f"--user-data-dir={workdir / 'profile'}",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(argument)
    if os.geteuid() == 0:  # the sandbox refuses to run as root (CI containers)
        options.add_argument("--no-sandbox")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(
        executable_path=_binary("chromedriver"), log_output=str(workdir / "chromedriver.log")
    )
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": TIME_ZONE})
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, what: Callable[[Any], T], timeout: float, message: str) -> T:
    """``what(driver)`` once it is truthy; on a timeout the page's console is in the error."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(what)
    except Exception as error:
        console = "\n".join(str(entry) for entry in driver.get_log("browser"))
        raise AssertionError(f"{message} (after {timeout} s)\nconsole:\n{console}") from error


def console_errors(driver: Any) -> list[str]:
    """The page's console errors (uncaught exceptions, failed loads) since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def save_full_page(driver: Any, path: Path) -> None:
    """A PNG of the whole page, below the window's fold too (DevTools' own screenshot)."""
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    path.write_bytes(base64.b64decode(shot["data"]))
