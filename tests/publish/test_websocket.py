from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from monitor.detect.ids import random_id
from monitor.detect.records import Detection, FeedInfo, Message
from monitor.publish.redis import RedisHistory, RedisOutput
from monitor.publish.websocket import WebsocketOutput, WebsocketSettings
from tests.support.detections import T0, checked, detection_series, feed_status, wire
from tests.support.outputs import receive, settings_for, subscribe
from tests.support.services import RedisServer


@contextlib.asynccontextmanager
async def serving(
    history: RedisHistory | None = None, **overrides: Any
) -> AsyncIterator[WebsocketOutput]:
    overrides.setdefault("port", 0)
    output = WebsocketOutput(WebsocketSettings(**overrides), history=history)
    await output.start()
    try:
        yield output
    finally:
        await output.close()


def url(output: WebsocketOutput) -> str:
    return f"ws://127.0.0.1:{output.port}"


async def nothing_more(ws: ClientConnection, wait: float = 0.1) -> None:
    with pytest.raises(TimeoutError):
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), wait))
            if frame["kind"] != "heartbeat":
                raise AssertionError(f"unexpected extra message {frame}")


def mixed_messages() -> list[Message]:
    lab = detection_series(4, feed="rpi_orcasound_lab")  # scores 0.6 then 0.9
    bush = detection_series(4, feed="rpi_bush_point")
    status = feed_status("silent", T0, feed=FeedInfo("rpi_bush_point", "Bush Point"))
    return checked([lab[0], bush[0], lab[1], bush[1], status, lab[2], bush[2], lab[3], bush[3]])


async def test_filters_pick_feeds_labels_scores_statuses_and_kinds() -> None:
    messages = mixed_messages()
    async with serving() as output:
        async with (
            connect(url(output)) as everything,
            connect(url(output)) as bush_closed,
            connect(url(output)) as high,
            connect(url(output)) as status_only,
            connect(url(output)) as other_label,
        ):
            await subscribe(everything)
            await subscribe(bush_closed, feeds=["rpi_bush_point"], statuses=["closed"])
            await subscribe(high, min_score=0.8, kinds=["detection"])
            await subscribe(status_only, kinds=["feed_status"])
            await subscribe(other_label, labels=["orca"], kinds=["detection"])
            assert output.client_count == 5
            for message in messages:
                await output.publish(message)

            def ids(selected: list[dict[str, Any]]) -> list[str]:
                return [m["message_id"] for m in selected]

            # statuses/labels/min_score filter detections; feed_status passes unless kinds says no
            sent = wire(messages)
            expected_bush = [
                m
                for m in sent
                if m["feed"]["node"] == "rpi_bush_point" and m.get("status", "closed") == "closed"
            ]
            expected_high = [m for m in sent if m.get("score", {}).get("max", 0) >= 0.8]
            assert len(expected_bush) == 3 and len(expected_high) == 4
            assert await receive(everything, len(messages)) == sent
            assert ids(await receive(bush_closed, 3)) == ids(expected_bush)
            assert ids(await receive(high, 4)) == ids(expected_high)
            assert [m["kind"] for m in await receive(status_only, 1)] == ["feed_status"]
            for ws in (everything, bush_closed, high, status_only, other_label):
                await nothing_more(ws)
        await asyncio.sleep(0.05)
        assert output.client_count == 0


async def test_bearer_token_is_required_when_configured() -> None:
    messages = detection_series(2)
    async with serving(token="s3cret") as output:
        for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url(output), additional_headers=headers):
                    pass
            assert refused.value.response.status_code == 401
        authorized = {"Authorization": "Bearer s3cret"}
        async with connect(url(output), additional_headers=authorized) as ws:
            await subscribe(ws)
            await output.publish(messages[0])
            assert await receive(ws, 1) == wire(messages[:1])


async def test_resume_since_from_memory_history() -> None:
    messages = detection_series(8)
    async with serving() as output:
        async with connect(url(output)) as ws:
            await subscribe(ws)
            for message in messages[:3]:
                await output.publish(message)
            seen = await receive(ws, 3)
        for message in messages[3:6]:  # published while the client is away
            await output.publish(message)
        async with connect(url(output)) as ws:
            ack = await subscribe(ws, since=seen[-1]["message_id"])
            assert ack["since_found"] is True and ack["history_source"] == "memory"
            assert ack["replayed"] == 3
            assert await receive(ws, 3) == wire(messages[3:6])
            await output.publish(messages[6])
            assert await receive(ws, 1) == wire([messages[6]])
            await nothing_more(ws)
        async with connect(url(output)) as ws:  # resume honours the filters too
            ack = await subscribe(ws, since=messages[0].message_id, statuses=["closed"])
            expected = [m for m in wire(messages[1:7]) if m["status"] == "closed"]
            assert ack["replayed"] == len(expected) == 3
            assert await receive(ws, 3) == expected
        async with connect(url(output)) as ws:  # an unknown id: what memory holds, flagged
            ack = await subscribe(ws, since="not-an-id")
            assert ack["since_found"] is False and ack["replayed"] == 7


async def test_resume_since_from_the_redis_stream(redis_server, tmp_path) -> None:
    messages = detection_series(6)
    settings = settings_for(redis_server.url, tmp_path)
    redis_output = RedisOutput(settings)
    await redis_output.start()
    for message in messages:
        await redis_output.publish(message)
    await redis_output.close()
    # A freshly started server has no memory of these: the Redis stream has.
    async with serving(history=RedisHistory(settings)) as output, connect(url(output)) as ws:
        ack = await subscribe(ws, since=messages[1].message_id)
        assert ack["since_found"] is True and ack["history_source"] == "redis"
        assert await receive(ws, 4) == wire(messages[2:])
        await nothing_more(ws)


def bulk_messages(count: int) -> list[Detection]:
    """``count`` distinct schema-valid detections (closed), ~1.5 KB each."""
    template = detection_series(2)[1]
    out = []
    for _ in range(count):
        summary = dataclasses.replace(template.summary, id=random_id(T0))
        out.append(dataclasses.replace(template, summary=summary))
    return checked(out)


async def small_socket(port: int) -> socket.socket:
    """A client socket with a tiny receive buffer, so a client that stops reading backs up
    into the server within a few hundred kilobytes instead of megabytes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def test_slow_client_is_disconnected_while_a_fast_client_gets_everything() -> None:
    messages = bulk_messages(400)
    async with serving(client_queue=8, send_buffer_bytes=16 * 1024) as output:
        # max_queue=1: the client library stops reading its socket once one frame waits;
        # no compression, so every message costs its full size on the wire.
        slow_sock = await small_socket(output.port)
        async with (
            connect(url(output), sock=slow_sock, max_queue=1, compression=None) as slow,
            connect(url(output)) as fast,
        ):
            await subscribe(slow)
            await subscribe(fast)
            received: list[str] = []

            async def read_fast() -> None:
                while len(received) < len(messages):
                    frame = json.loads(await fast.recv())
                    if frame["kind"] == "detection":
                        received.append(frame["message_id"])

            reader = asyncio.create_task(read_fast())
            published = 0
            for message in messages:
                await output.publish(message)
                published += 1
                await asyncio.sleep(0)
                if output.slow_disconnects:
                    break
            assert output.slow_disconnects == 1, "the slow client was never dropped"
            for message in messages[published : published + 20]:  # life goes on without it
                await output.publish(message)
                published += 1
                await asyncio.sleep(0)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(slow.recv(), 3)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
            assert closed.value.rcvd.reason == "too slow: 8 messages behind"
            for _ in range(100):
                if len(received) >= published:
                    break
                await asyncio.sleep(0.02)
            reader.cancel()
            assert output.slow_disconnects == 1
            assert received == [m.message_id for m in messages[:published]]
            print(f"slow client dropped after {published - 20} messages")


async def test_heartbeats_and_bad_requests() -> None:
    async with serving(heartbeat_s=0.05) as output:
        async with connect(url(output)) as ws:
            await subscribe(ws)
            frame = json.loads(await asyncio.wait_for(ws.recv(), 1))
            assert frame["kind"] == "heartbeat" and frame["utc"].endswith("Z")
        async with connect(url(output)) as ws:
            await ws.send(json.dumps({"type": "subscribe", "statuses": ["maybe"]}))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 1)
            assert closed.value.rcvd.code == 1008
            assert "statuses" in closed.value.rcvd.reason
        async with connect(url(output)) as ws:
            await ws.send("not json")
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 1)
            assert closed.value.rcvd.code == 1008


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        # 20,000 levels fit in the 64 KiB frame limit and overflow the JSON parser's stack.
        ('{"type": "subscribe", "feeds": ' + "[" * 20_000 + "]" * 20_000 + "}", "too deeply"),
        ('{"type": "subscribe", "min_score": NaN}', "finite number"),
        ('{"type": "subscribe", "min_score": Infinity}', "finite number"),
        ('{"type": "subscribe", "min_score": -Infinity}', "finite number"),
    ],
)
async def test_hostile_subscribe_messages_get_a_clear_refusal(
    raw: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving() as output:
        async with connect(url(output)) as ws:
            await ws.send(raw)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 2)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1008 and reason in closed.value.rcvd.reason
        # The server goes on serving others, and logged no traceback.
        async with connect(url(output)) as ws:
            await subscribe(ws)
    assert "Traceback" not in capsys.readouterr().err


async def test_server_close_tells_clients_it_is_going_away() -> None:
    output = WebsocketOutput(WebsocketSettings(port=0))
    await output.start()
    async with connect(url(output)) as ws:
        await subscribe(ws)
        await output.close()
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 2)
        assert closed.value.rcvd.code == 1001


async def test_live_messages_during_a_resume_come_after_it_without_repeats(
    redis_server, tmp_path
) -> None:
    messages = detection_series(5)
    settings = settings_for(redis_server.url, tmp_path, timeout_s=3.0)
    redis_output = RedisOutput(settings)
    await redis_output.start()
    for message in messages[:4]:
        await redis_output.publish(message)
    await redis_output.close()
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        async with (
            serving(history=RedisHistory(settings)) as output,
            connect(url(output)) as ws,
        ):
            # Redis stalls, so the resume is still being fetched when live messages come.
            await admin.execute_command("CLIENT", "PAUSE", "300", "ALL")
            asking = asyncio.create_task(subscribe(ws, since=messages[1].message_id))
            await asyncio.sleep(0.1)
            await output.publish(messages[3])  # also in the stream: must not come twice
            await output.publish(messages[4])  # only live
            ack = await asking
            # 2 and 3 from the stream, 4 from memory (not in the stream); the held live
            # copies of 3 and 4 are not sent again.
            assert ack["history_source"] == "redis" and ack["replayed"] == 3
            assert await receive(ws, 3) == wire(messages[2:5])
            await nothing_more(ws)
    finally:
        await admin.aclose()


async def test_resume_while_redis_is_down_or_still_draining_its_spool(
    own_redis: RedisServer, tmp_path
) -> None:
    messages = detection_series(8)
    # A long retry: once Redis is back the spool stays undelivered for the rest of the test.
    settings = settings_for(own_redis.url, tmp_path, retry_s=60.0)
    redis_output = RedisOutput(settings)
    await redis_output.start()
    admin = aioredis.Redis.from_url(own_redis.url)
    try:
        # Memory holds only the last two messages: the spool has to answer for the rest.
        async with serving(history=RedisHistory(settings), history_size=2) as output:

            async def publish(message: Message) -> None:  # as the fan-out does
                await redis_output.publish(message)
                await output.publish(message)

            for message in messages[:3]:
                await publish(message)
            await admin.shutdown(save=True)  # the stream (0..2) survives the restart
            own_redis.stop()
            for message in messages[3:7]:
                await publish(message)
            assert redis_output.spool_depth == 4
            # Redis is down. An id in the spool: what followed it is in the spool too.
            async with connect(url(output)) as ws:
                ack = await subscribe(ws, since=messages[3].message_id)
                assert ack["since_found"] is True and ack["history_source"] == "redis"
                assert await receive(ws, 3) == wire(messages[4:7])
                await nothing_more(ws)
            # An id only in the unreachable stream: what memory holds, flagged as a gap.
            async with connect(url(output)) as ws:
                ack = await subscribe(ws, since=messages[1].message_id)
                assert ack["since_found"] is False and ack["history_source"] == "memory"
                assert await receive(ws, 2) == wire(messages[5:7])
            own_redis.start()
            await publish(messages[7])  # queues behind the spool: not in the stream yet
            assert redis_output.spool_depth == 5
            # The stream has 1..2 after messages[0]; 3..7 wait in the spool.
            async with connect(url(output)) as ws:
                ack = await subscribe(ws, since=messages[0].message_id)
                assert ack["since_found"] is True and ack["history_source"] == "redis"
                assert ack["replayed"] == 7
                assert await receive(ws, 7) == wire(messages[1:8])
                await nothing_more(ws)
    finally:
        await admin.aclose()
        await redis_output.close()
