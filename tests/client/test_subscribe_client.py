"""``monitor.client.subscribe`` against the real websocket server: typed records, server-side
filters, a server restart survived by resuming after the last message, a refused token."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from monitor.client import DetectionEvent, FeedStatusEvent, SubscriptionRefused, parse, subscribe
from monitor.publish.websocket import WebsocketOutput, WebsocketSettings
from tests.support.detections import detection_series, feed_status, wire
from tests.support.services import free_port
from tests.support.waiting import until

TOKEN = "client-test-token"


def server(port: int) -> WebsocketOutput:
    return WebsocketOutput(WebsocketSettings(port=port, token=TOKEN, heartbeat_s=0.2))


def test_wire_messages_parse_into_records() -> None:
    detection, status = wire([detection_series(1)[0], feed_status("lagged")])
    event = parse(detection)
    assert isinstance(event, DetectionEvent)
    assert (event.id, event.status, event.label) == (detection["id"], "opened", "humpback")
    assert event.feed.display_name == "Orcasound Lab"
    assert event.species is not None and event.species.common_name == "humpback whale"
    assert event.score_max == detection["score"]["max"]
    assert event.duration_s == pytest.approx(detection["duration_s"])
    assert event.start_utc.tzinfo is not None and event.raw == detection
    record = parse(status)
    assert isinstance(record, FeedStatusEvent) and record.state == "Lagged"
    with pytest.raises(ValueError, match="schema_version 99"):
        parse({**detection, "schema_version": 99})
    with pytest.raises(ValueError, match="'heartbeat' is not a detection"):
        parse({"schema_version": 1, "kind": "heartbeat"})


async def test_subscribe_resumes_across_a_server_restart_without_repeats() -> None:
    port = free_port()
    messages = detection_series(8)
    closed = [m for m in messages if m.status == "closed"]
    got: list[DetectionEvent | FeedStatusEvent] = []
    stop = asyncio.Event()

    async def follow() -> None:
        url = f"ws://127.0.0.1:{port}"
        async for event in subscribe(url, token=TOKEN, statuses=["closed"], stop=stop):
            got.append(event)

    first = server(port)
    await first.start()
    task = asyncio.create_task(follow())
    try:
        await until(lambda: first.client_count == 1, 5, "the client to connect")
        await asyncio.sleep(0.1)  # and to send its subscribe message
        for message in messages[:4]:
            await first.publish(message)
        await until(lambda: len(got) == 2, 5, "the first two closed detections")
        await first.close()  # the client is cut off and retries
        second = server(port)
        for message in messages:  # its history holds everything, the old part too
            await second.publish(message)
        await second.start()
        try:
            await until(lambda: len(got) >= len(closed), 10, "the rest after the restart")
            await asyncio.sleep(0.3)  # nothing more comes
        finally:
            await second.close()
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [e.message_id for e in got] == [m.message_id for m in closed]
    assert all(isinstance(e, DetectionEvent) and e.status == "closed" for e in got)


async def test_a_wrong_token_is_refused_not_retried() -> None:
    output = server(0)
    await output.start()
    try:
        with pytest.raises(SubscriptionRefused, match="refused us \\(401\\)"):
            async with asyncio.timeout(5):
                async for _event in subscribe(f"ws://127.0.0.1:{output.port}", token="wrong"):
                    pass
        with pytest.raises(SubscriptionRefused, match="rejected the subscription"):
            async with asyncio.timeout(5):
                async for _event in subscribe(
                    f"ws://127.0.0.1:{output.port}", token=TOKEN, statuses=["ended"]
                ):
                    pass
    finally:
        await output.close()
