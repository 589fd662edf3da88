"""Notifications through apprise to a real local endpoint (apprise's json:// service posting
to an aiohttp server): the alert line, the link, filters, cooldown, quiet hours, failures."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from monitor.publish.cooldown import CooldownSettings
from monitor.publish.notify import NotifySettings, alert_text, make_notify
from monitor.publish.output import OutputUnusable
from monitor.publish.quiet_hours import QuietHours
from tests.support.detections import detection_series, make_builder, run_scores
from tests.support.receiver import Receiver

CALL = [0.93, 0.93, 0.1, 0.1, 0.1]


def settings_for(receiver: Receiver, **values: Any) -> NotifySettings:
    values.setdefault("urls", (f"json://127.0.0.1:{receiver.port}/alerts",))
    values.setdefault("link_base_url", "https://hydromon.example.org/")
    return NotifySettings(**values)


async def test_an_alert_line_with_its_link_reaches_the_endpoint(receiver: Receiver) -> None:
    detections = run_scores(make_builder(), CALL)
    output = make_notify(settings_for(receiver, title="whales"))
    await output.start()
    try:
        for message in detections:
            await output.publish(message)
        (request,) = await receiver.wait_for(1)
    finally:
        await output.close()
    body = json.loads(request.body)
    ident = detections[0].id
    assert request.path == "/alerts"
    assert body["title"] == "whales"
    assert body["message"] == (
        "Humpback whale at Orcasound Lab, 12:00:00 UTC, score 0.93, "
        f"listen: https://hydromon.example.org/api/v1/detections/{ident}"
    )
    assert output.stats.sent == 1  # the closed one only (on = "closed")


def test_the_time_is_written_in_the_configured_zone_and_the_link_is_optional() -> None:
    (opened, _closed) = run_scores(make_builder(), CALL)
    text = alert_text(opened, NotifySettings(timezone="America/Los_Angeles"))
    assert text == "Humpback whale at Orcasound Lab, 05:00:00 PDT, score 0.93"


async def test_cooldown_filters_and_quiet_hours(receiver: Receiver) -> None:
    series = run_scores(make_builder(), CALL * 3)  # three calls, 5 s apart
    faint = run_scores(make_builder(), [0.6, 0.6, 0.1, 0.1, 0.1], feed="rpi_bush_point")
    settings = settings_for(receiver, min_score=0.8, cooldown=CooldownSettings(cooldown_s=8.0))
    output = make_notify(settings)
    await output.start()
    try:
        for message in [*faint, *series]:
            await output.publish(message)
        got = await receiver.wait_for(2)
        await asyncio.sleep(0.3)
    finally:
        await output.close()
    assert len(receiver.requests) == 2  # calls 1 and 3; call 2 within the cooldown
    assert [json.loads(r.body)["message"].split(", ")[1] for r in got] == [
        "12:00:00 UTC",
        "12:00:10 UTC",
    ]
    assert output.gate.suppressed == 1 and output.stats.filtered == 1

    quiet = make_notify(settings_for(receiver, quiet_hours=QuietHours(start="11:00", end="13:00")))
    await quiet.start()
    try:
        for message in detection_series(4):
            await quiet.publish(message)
    finally:
        await quiet.close()
    assert quiet.stats.quiet == 2 and quiet.stats.sent == 0
    assert quiet.held_back == {"quiet_hours": 2, "cooldown": 0}  # what /metrics exports
    assert quiet.gate.suppressed == 0  # a quiet detection holds nothing back for later


async def test_an_endpoint_that_fails_is_counted(receiver: Receiver) -> None:
    receiver.statuses.append(500)
    output = make_notify(settings_for(receiver))
    await output.start()
    try:
        with pytest.raises(RuntimeError, match="could not deliver"):
            for message in run_scores(make_builder(), CALL):
                await output.publish(message)
    finally:
        await output.close()
    assert output.stats.sent == 0


async def test_unusable_settings_are_one_line_errors() -> None:
    with pytest.raises(OutputUnusable, match=r"notify\.urls is empty"):
        await make_notify(NotifySettings()).start()
    with pytest.raises(OutputUnusable, match=r"notify.urls\[0\]: apprise does not accept"):
        await make_notify(NotifySettings(urls=("nosuchservice://x",))).start()
