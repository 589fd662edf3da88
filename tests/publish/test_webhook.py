"""Webhooks against a real local HTTP server: body, idempotency key, signature, filters,
retries through the spool (in order, once), refusals."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from monitor.detect.records import Detection
from monitor.publish.spooled import RetrySettings
from monitor.publish.webhook import (
    SIGNATURE_HEADER,
    WebhookOutput,
    WebhookSettings,
    WebhookTarget,
    make_webhooks,
)
from tests.support.detections import detection_series, feed_status, make_builder, run_scores, wire
from tests.support.receiver import Receiver


def output_for(tmp_path: Path, target: WebhookTarget, **settings: Any) -> WebhookOutput:
    values: dict[str, Any] = {
        "targets": (target,),
        "timeout_s": 2.0,
        "retry": RetrySettings(initial_s=0.05, max_s=0.2),
        "spool_dir": tmp_path / "spool",
    }
    values.update(settings)
    (output,) = make_webhooks(WebhookSettings(**values))
    return output


def closed(messages: list[Detection]) -> list[Detection]:
    return [m for m in messages if m.status == "closed"]


async def test_closed_detections_are_posted_signed_with_their_idempotency_key(
    receiver: Receiver, tmp_path: Path
) -> None:
    secret = "shared-secret"
    output = output_for(tmp_path, WebhookTarget(url=receiver.url + "/hook", secret=secret))
    messages = detection_series(6)
    await output.start()
    try:
        for message in [*messages, feed_status("up")]:
            await output.publish(message)
        expected = closed(messages)
        got = await receiver.wait_for(len(expected))
    finally:
        await output.close()
    assert [json.loads(r.body) for r in got] == wire(expected)
    assert len(receiver.requests) == len(expected)  # no opened, no feed status
    for request, message in zip(got, expected, strict=True):
        assert request.path == "/hook"
        assert request.headers["Idempotency-Key"] == message.message_id
        assert request.headers["Content-Type"] == "application/json"
        # What a receiver does (docs/integrations.md): HMAC the raw body, compare in constant time.
        digest = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(request.headers[SIGNATURE_HEADER], f"sha256={digest}")
    assert output.stats.delivered == len(expected)


async def test_opened_too_and_the_filters(receiver: Receiver, tmp_path: Path) -> None:
    calls = [0.95, 0.95, 0.1, 0.1, 0.1]
    humpback = run_scores(make_builder(), calls)
    faint = run_scores(make_builder(), [0.55, 0.55, 0.1, 0.1, 0.1])
    orca = run_scores(make_builder(thresholds={"orca": 0.5}), calls, label="orca")
    elsewhere = run_scores(make_builder(), calls, feed="rpi_bush_point")
    assert faint and orca and elsewhere
    target = WebhookTarget(
        url=receiver.url,
        statuses=("opened", "closed"),
        labels=("humpback",),
        feeds=("rpi_orcasound_lab",),
        min_score=0.8,
    )
    output = output_for(tmp_path, target)
    await output.start()
    try:
        for message in [*humpback, *faint, *orca, *elsewhere]:
            await output.publish(message)
        got = await receiver.wait_for(len(humpback))
        await asyncio.sleep(0.2)
    finally:
        await output.close()
    assert [m.status for m in humpback] == ["opened", "closed"]
    assert [json.loads(r.body) for r in got] == wire(humpback)
    assert len(receiver.requests) == 2
    assert output.stats.filtered == len(faint) + len(orca) + len(elsewhere)
    assert SIGNATURE_HEADER not in got[0].headers  # no secret, no signature


async def test_outages_are_retried_in_order_and_each_delivered_once(
    receiver: Receiver, tmp_path: Path
) -> None:
    output = output_for(tmp_path, WebhookTarget(url=receiver.url, statuses=("opened", "closed")))
    messages = detection_series(8)
    receiver.statuses.extend([503, 429])  # the first message is answered "later" twice
    await output.start()
    try:
        for message in messages[:4]:
            await output.publish(message)
        port = receiver.port
        await asyncio.wait_for(output.wait_drained(), 10)
        await receiver.stop()  # the endpoint goes away altogether
        for message in messages[4:]:
            await output.publish(message)
        assert output.spool_depth == 4
        await asyncio.sleep(0.3)
        receiver.port = port
        await receiver.start()
        await asyncio.wait_for(output.wait_drained(), 10)
    finally:
        await output.close()
    ids = [r.headers["Idempotency-Key"] for r in receiver.requests]
    first = messages[0].message_id
    assert ids[:3] == [first, first, first]  # 503, 429, then 200
    assert ids[2:] == [m.message_id for m in messages]
    assert output.stats.errors >= 3 and output.stats.delivered == 8


async def test_a_slow_endpoint_times_out_and_is_retried(receiver: Receiver, tmp_path: Path) -> None:
    output = output_for(tmp_path, WebhookTarget(url=receiver.url), timeout_s=0.3)
    message = closed(detection_series(2))[0]
    receiver.delay_s = 1.0
    await output.start()
    try:
        await output.publish(message)
        assert output.spool_depth == 1
        receiver.delay_s = 0.0
        await asyncio.wait_for(output.wait_drained(), 10)
    finally:
        await output.close()
    assert output.stats.delivered == 1 and output.stats.errors >= 1


async def test_a_refused_message_is_given_up_and_the_next_one_goes(
    receiver: Receiver, tmp_path: Path
) -> None:
    output = output_for(tmp_path, WebhookTarget(url=receiver.url, statuses=("opened", "closed")))
    messages = detection_series(3)
    receiver.statuses.append(400)
    await output.start()
    try:
        for message in messages:
            await output.publish(message)
        await receiver.wait_for(3)
        await asyncio.wait_for(output.wait_drained(), 5)
    finally:
        await output.close()
    assert [r.headers["Idempotency-Key"] for r in receiver.requests] == [
        m.message_id for m in messages
    ]
    assert output.stats.rejected == 1 and output.stats.delivered == 2


def test_bad_targets_are_refused_with_the_setting_named() -> None:
    with pytest.raises(ValueError, match="url: expected an http"):
        WebhookTarget(url="ftp://example.org/")
    with pytest.raises(ValueError, match="statuses"):
        WebhookTarget(url="http://example.org/", statuses=("ended",))
    with pytest.raises(ValueError, match="names must be unique"):
        WebhookSettings(
            targets=(
                WebhookTarget("http://a.example/", name="x"),
                WebhookTarget("http://b/", name="x"),
            )
        )
