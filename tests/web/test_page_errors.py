"""The page in headless Chromium when the API refuses it or is gone: a visible message, no
uncaught script error, and the token kept in the browser."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from monitor.health.board import HealthBoard
from monitor.health.http import HealthServer, HttpSettings
from monitor.health.metrics import Metrics
from monitor.web.routes import add_page_routes
from tests.support.browser import chromium, console_errors, wait_for

TOKEN = "s3cret"


class ServerThread:
    """The health server on its own event loop in a thread (the browser calls block)."""

    def __init__(self) -> None:
        metrics = Metrics()
        settings = HttpSettings(port=0, heartbeat_s=0.05, token=TOKEN)
        board = HealthBoard(metrics=metrics)
        self.server = HealthServer(settings, board, metrics, [add_page_routes])
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        port = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        self.base = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


@pytest.fixture
def served() -> Iterator[ServerThread]:
    server = ServerThread()
    yield server
    server.stop()


def error_text(driver) -> str:
    box = driver.find_element(By.ID, "errors")
    return box.text if box.is_displayed() else ""


@pytest.mark.slow
def test_refusals_and_a_stopped_daemon_are_shown(served: ServerThread, tmp_path: Path) -> None:
    with chromium(tmp_path) as driver:
        driver.get(served.base + "/")
        assert driver.title.startswith("hydromon")
        # no token yet: every API part says so, the page itself loaded
        text = wait_for(driver, lambda d: "token is missing or wrong" in error_text(d)
                        and error_text(d), 15, "no 401 message")  # fmt: skip
        for part in ("Feeds", "History", "Live updates"):
            assert part in text, text
        assert "reconnecting" in driver.find_element(By.ID, "connection").text

        # the token is kept across a reload (localStorage) and shown back
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
        driver.refresh()
        wait_for(driver, lambda d: d.find_element(By.ID, "token").get_attribute("value") == TOKEN,
                 10, "token not kept")  # fmt: skip
        stored = driver.execute_script("return localStorage.getItem('hydromon.token')")
        assert stored == TOKEN
        wait_for(driver, lambda d: "token is missing" not in error_text(d), 15, "401 stays")

        served.stop()  # the daemon goes away under the open page
        driver.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
        wait_for(driver, lambda d: "cannot be reached" in error_text(d), 20, "no 'down' message")
        errors = [e for e in console_errors(driver) if "Failed to load resource" not in e]
        assert not errors, errors  # the page handled every failure itself
        driver.save_screenshot(str(tmp_path / "errors.png"))
        print(f"screenshot: {tmp_path / 'errors.png'}")
