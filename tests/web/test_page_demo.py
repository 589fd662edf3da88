"""The reviewers' page in headless Chromium against a running ``hydromon demo`` (real-audio node,
tiny AST trained on its calls, token set): detections arrive live with a playable clip and a
spectrogram, times in UTC and local time, the history pages, and a review click is stored."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from monitor.cli.demo import DEMO_NODE
from monitor.timebase import parse_utc
from tests.support.browser import (
    TIME_ZONE_OFFSET,
    chromium,
    console_errors,
    save_full_page,
    wait_for,
)
from tests.support.e2e import write_config

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts" / "web"
TOKEN = "reviewer-token"


def start_demo(config: Path, demo_dir: Path) -> tuple[subprocess.Popen[str], str]:
    """``hydromon demo`` at 10× real time, lingering; returns it and its web page address."""
    command = [sys.executable, "-m", "monitor.cli.main", "--log-level", "warning", "demo"]
    command += ["--config", str(config), "--dir", str(demo_dir), "--speed", "10"]
    command += ["--ws-port", "0", "--http-port", "0", "--linger", "5m"]
    command += ["--set", f"websocket.token={TOKEN}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    printed = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        assert line, "".join(printed)
        printed.append(line)
        if match := re.search(r"page \(listen, review\): +(http://\S+/)", line):
            return process, match.group(1)
    process.kill()
    raise AssertionError("the demo printed no web page address:\n" + "".join(printed))


def api(base: str, path: str) -> dict[str, Any]:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def media_state(driver: Any, card: Any) -> dict[str, Any]:
    return driver.execute_script(
        """const card = arguments[0];
        const img = card.querySelector('img[data-field="spectrogram"]');
        const audio = card.querySelector('audio[data-field="audio"]');
        return {image: img.complete ? img.naturalWidth : 0, imageSrc: img.currentSrc,
                audio: audio.readyState, audioError: audio.error && audio.error.code,
                duration: audio.duration, audioSrc: audio.currentSrc};""",
        card,
    )


def closed_live_cards(driver: Any) -> list[Any]:
    return driver.find_elements(By.CSS_SELECTOR, '#live-list .card[data-status="closed"]')


@pytest.mark.slow
def test_a_reviewer_hears_sees_and_marks_the_demo_detections(
    trained_classifier: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, "file:///unused", "audio-orcasound-net", DEMO_NODE,
                          trained_classifier)  # fmt: skip
    with chromium(tmp_path) as driver:  # the browser first: it must see the detections arrive
        demo, page = start_demo(config, tmp_path / "demo")
        try:
            driver.get(page)
            # no token yet: the page loads and says what is missing
            wait_for(driver, lambda d: "token" in d.find_element(By.ID, "errors").text, 15,
                     "no message about the missing token")  # fmt: skip
            driver.find_element(By.ID, "token").send_keys(TOKEN)
            driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
            wait_for(driver, lambda d: d.find_element(By.ID, "connection").get_attribute(
                "data-state") == "open", 20, "the event stream did not connect")  # fmt: skip
            wait_for(driver, lambda d: d.find_elements(
                By.CSS_SELECTOR, f'#feeds tr[data-node="{DEMO_NODE}"] .state[data-state="Up"]'),
                30, "the demo feed is not shown Up")  # fmt: skip

            # detections arrive without a reload, with their clip and spectrogram
            cards = wait_for(driver, closed_live_cards, 90, "no closed detection arrived live")
            card = cards[-1]  # the oldest on the list: its files are surely written
            state = wait_for(driver, lambda d: (s := media_state(d, card))["image"] > 0
                             and s["audio"] >= 1 and s, 20, "media did not load")  # fmt: skip
            assert state["audioError"] is None, state
            assert state["duration"] > 0, state
            assert state["imageSrc"].startswith(page) and state["audioSrc"].startswith(page)
            utc = card.find_element(By.CSS_SELECTOR, '[data-field="start-utc"]')
            local = card.find_element(By.CSS_SELECTOR, '[data-field="start-local"]').text
            assert utc.text.endswith(" UTC") and utc.get_attribute("datetime").endswith("Z")
            shifted = parse_utc(utc.get_attribute("datetime")) + TIME_ZONE_OFFSET
            assert shifted.strftime("%-I:%M:%S") in local and "GMT+5:30" in local, local
            assert "max " in card.find_element(By.CSS_SELECTOR, '[data-field="score"]').text
            links = {a.text: a.get_attribute("href") for a in card.find_elements(
                By.CSS_SELECTOR, '[data-field="links"] a')}  # fmt: skip
            assert {"clip", "FLAC for Raven", "spectrogram PNG", "detection JSON"} <= set(links)

            # a review click is stored in the index
            detection_id = card.get_attribute("data-id")
            card.find_element(By.CSS_SELECTOR, 'input[name="note"]').send_keys("clear upsweep")
            card.find_element(By.CSS_SELECTOR, "button.confirm").click()
            wait_for(driver, lambda d: card.get_attribute("data-verdict") == "confirmed", 15,
                     "the review was not shown as stored")  # fmt: skip
            stored = api(page, f"api/v1/detections/{detection_id}")["review"]
            assert stored["verdict"] == "confirmed" and stored["note"] == "clear upsweep"

            # more arrive; the history offers them and shows the stored verdict
            wait_for(driver, lambda d: len(closed_live_cards(d)) >= 2, 60,
                     "a second detection did not arrive")  # fmt: skip
            refresh = driver.find_element(By.ID, "history-refresh")
            assert re.fullmatch(r"Show \d+ new detections?", refresh.text), refresh.text
            refresh.click()
            wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR,
                     f'#history-list .card[data-id="{detection_id}"][data-verdict="confirmed"]'),
                     15, "the history does not show the reviewed detection")  # fmt: skip
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            screenshot = ARTIFACTS / "page.png"
            save_full_page(driver, screenshot)
            print(f"screenshot: {screenshot}")

            # the history pages with a cursor and filters by status
            driver.get(page + "?status=closed&limit=1")
            first = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR,
                             "#history-list .card"), 15, "no history")  # fmt: skip
            first_id = first[0].get_attribute("data-id")
            wait_for(driver, lambda d: d.find_element(By.ID, "older").is_enabled(), 10,
                     "no older page")  # fmt: skip
            driver.find_element(By.ID, "older").click()
            wait_for(driver, lambda d: (c := d.find_elements(By.CSS_SELECTOR,
                     "#history-list .card")) and c[0].get_attribute("data-id") != first_id,
                     10, "the older page did not load")  # fmt: skip
            statuses = {c.get_attribute("data-status") for c in driver.find_elements(
                By.CSS_SELECTOR, "#history-list .card")}  # fmt: skip
            assert statuses == {"closed"}
            driver.get(page + "?verdict=confirmed")
            wait_for(driver, lambda d: [c.get_attribute("data-id") for c in d.find_elements(
                By.CSS_SELECTOR, "#history-list .card")] == [detection_id], 15,
                "the verdict filter does not give the one confirmed detection")  # fmt: skip
            errors = [e for e in console_errors(driver) if "Failed to load resource" not in e]
            assert not errors, errors
        finally:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(30)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()
