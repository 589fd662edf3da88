"""The HTTP API on a running health server, through a real aiohttp client over loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft202012Validator

from monitor.api.events import EventHub, SseSettings
from monitor.api.routes import Api, ApiSettings
from monitor.detect.records import DetectionMedia
from monitor.detect.wire import encode
from monitor.health.board import HealthBoard
from monitor.health.http import HealthServer, HttpSettings
from monitor.health.metrics import Metrics
from monitor.index.output import IndexOutput
from monitor.index.store import DetectionIndex, IndexSettings
from monitor.timebase import utc_now
from tests.support.detections import FEEDS, T0, detection_series, feed_status

TOKEN = "s3cret"


@dataclasses.dataclass
class Served:
    base: str
    index: DetectionIndex
    hub: EventHub
    board: HealthBoard
    media_dir: Path


async def _serve(
    tmp_path: Path, *, token: str | None, anonymous: bool = False
) -> AsyncIterator[Served]:
    tmp_path = tmp_path / ("with-token" if token else "open")  # two servers in one test
    index = DetectionIndex(IndexSettings(path=tmp_path / "index.sqlite"))
    writer = IndexOutput(index)
    await writer.start()
    hub = EventHub(SseSettings(heartbeat_s=0.2, client_queue=8))
    metrics = Metrics()
    board = HealthBoard(metrics=metrics)
    media_dir = tmp_path / "media"
    api = Api(
        ApiSettings(page_size=3, max_page_size=10, allow_anonymous_review=anonymous),
        index,
        writer=writer,
        hub=hub,
        board=board,
        feeds=FEEDS,
        media_dir=media_dir,
        token=token,
    )
    server = HealthServer(HttpSettings(port=0, token=token), board, metrics, [api.install])
    port = await server.start()
    try:
        yield Served(f"http://127.0.0.1:{port}", index, hub, board, media_dir)
    finally:
        await server.close()
        await hub.close()
        await writer.close()


@pytest.fixture
async def open_api(tmp_path: Path) -> AsyncIterator[Served]:
    async for served in _serve(tmp_path, token=None):
        yield served


@pytest.fixture
async def token_api(tmp_path: Path) -> AsyncIterator[Served]:
    async for served in _serve(tmp_path, token=TOKEN):
        yield served


def _fill(served: Served) -> list[str]:
    """Six detections (closed, the first with real files on disk); their ids, newest first."""
    messages = detection_series(12)
    closed = [m for m in messages if m.status == "closed"]
    first = closed[0]
    folder = served.media_dir / first.feed.node / "2024-06-07"
    folder.mkdir(parents=True)
    (folder / f"{first.id}.ogg").write_bytes(b"OggS-not-really")
    (folder / f"{first.id}.png").write_bytes(b"\x89PNG-not-really")
    url = f"media/{first.feed.node}/2024-06-07/{first.id}"
    media = DetectionMedia(f"{url}.ogg", f"{url}.flac", f"{url}.png", first.summary.start_utc)
    for message in messages:
        if message is first:
            message = dataclasses.replace(message, media=media)
        served.index.put(encode(message))
    return [m.id for m in reversed(closed)]


async def test_detections_paged_newest_first(open_api: Served) -> None:
    ids = _fill(open_api)
    got: list[str] = []
    url = f"{open_api.base}/api/v1/detections"
    params: dict[str, str] = {}
    async with aiohttp.ClientSession() as client:
        while True:
            async with client.get(url, params=params) as response:
                assert response.status == 200
                body = await response.json()
            assert len(body["detections"]) <= 3  # api.page_size
            got += [d["id"] for d in body["detections"]]
            if body["next_cursor"] is None:
                break
            params = {"cursor": body["next_cursor"]}
        assert got == ids
        async with client.get(url, params={"min_score": "0.85", "limit": "10"}) as response:
            strong = (await response.json())["detections"]
        assert strong and all(d["score"]["max"] >= 0.85 for d in strong)
        for bad in ({"limit": "0"}, {"since": "yesterday"}, {"cursor": "%%%"}, {"status": "x"}):
            async with client.get(url, params=bad) as response:
                assert response.status == 400
                assert "error" in await response.json()


async def test_one_detection_its_files_and_404s(open_api: Served) -> None:
    ids = _fill(open_api)
    with_media = ids[-1]
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{open_api.base}/api/v1/detections/{with_media}") as response:
            detection = await response.json()
        assert detection["media"]["audio"].endswith(".ogg")
        assert detection["review"] is None
        async with client.get(f"{open_api.base}/api/v1/detections/{with_media}/audio") as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "audio/ogg"
            assert await r.read() == b"OggS-not-really"
        async with client.get(f"{open_api.base}/{detection['media']['spectrogram']}") as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "image/png"
        # the FLAC was never written: a clear 404, not a crash
        archive = f"{open_api.base}/api/v1/detections/{with_media}/audio?version=archive"
        async with client.get(archive) as r:
            assert r.status == 404
        async with client.get(f"{open_api.base}/api/v1/detections/{ids[0]}/spectrogram") as r:
            assert r.status == 404  # no media at all
        async with client.get(f"{open_api.base}/api/v1/detections/nope") as r:
            assert r.status == 404
            assert "nope" in (await r.json())["error"]
        async with client.get(f"{open_api.base}/media/../index.sqlite") as r:
            assert r.status == 404


async def test_reviews_need_the_token(token_api: Served, open_api: Served) -> None:
    ids = _fill(token_api)
    _fill(open_api)
    review = {"verdict": "confirmed", "note": "clear"}
    async with aiohttp.ClientSession() as client:
        url = f"{token_api.base}/api/v1/detections/{ids[0]}/review"
        async with client.post(url, json=review) as response:
            assert response.status == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with client.post(url, json={"verdict": "maybe"}, headers=auth) as response:
            assert response.status == 400
        async with client.post(url, json=review, headers=auth) as response:
            assert response.status == 200
            assert (await response.json())["review"]["verdict"] == "confirmed"
        # reads need the token too: the header, or access_token for <audio>/<img>/EventSource
        detection = f"{token_api.base}/api/v1/detections/{ids[0]}"
        async with client.get(detection) as response:
            assert response.status == 401
        async with client.get(detection, params={"access_token": TOKEN}) as response:
            assert (await response.json())["review"]["note"] == "clear"
        # no token configured: reviews are refused unless allowed explicitly
        url = f"{open_api.base}/api/v1/detections/{ids[0]}/review"
        async with client.post(url, json=review) as response:
            assert response.status == 403


async def test_anonymous_review_when_allowed(tmp_path: Path) -> None:
    async for served in _serve(tmp_path, token=None, anonymous=True):
        ids = _fill(served)
        async with aiohttp.ClientSession() as client:
            url = f"{served.base}/api/v1/detections/{ids[1]}/review"
            async with client.post(url, json={"verdict": "rejected"}) as response:
                assert response.status == 200
                assert (await response.json())["review"]["verdict"] == "rejected"


async def test_feeds_from_the_board_and_the_index(open_api: Served) -> None:
    open_api.index.put(encode(feed_status("silent", T0)))
    health = open_api.board.feed("rpi_orcasound_lab")
    health.note_processed(utc_now() - timedelta(seconds=3), utc_now())
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"{open_api.base}/api/v1/feeds") as response,
    ):
        feeds = {f["node"]: f for f in (await response.json())["feeds"]}
    lab = feeds["rpi_orcasound_lab"]
    assert lab["display_name"] == "Orcasound Lab"
    assert lab["state"] in {"Up", "Lagged", "Unknown"}
    assert set(lab) == {
        "node",
        "display_name",
        "state",
        "since_utc",
        "last_segment_utc",
        "lag_s",
        "last_error",
    }
    assert feeds["rpi_bush_point"]["state"] == "Unknown"


async def _connected(hub: EventHub) -> None:
    for _ in range(500):
        if hub.clients:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the event client never connected")


async def _read_events(response: aiohttp.ClientResponse, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    while len(events) < count:
        raw = await response.content.readline()
        if not raw:
            raise AssertionError(f"the stream ended after {events}")
        line = raw.decode().rstrip("\n")
        if line.startswith(":") or line.startswith("retry:"):
            continue
        if not line:
            if current:
                events.append(current)
            current = {}
            continue
        key, _, value = line.partition(": ")
        current[key] = json.loads(value) if key == "data" else value
    return events


async def test_server_sent_events_with_filters(open_api: Served) -> None:
    messages = detection_series(4) + detection_series(2, feed="rpi_bush_point")
    url = f"{open_api.base}/api/v1/events"
    async with (
        aiohttp.ClientSession() as client,
        client.get(url, params={"feed": "rpi_orcasound_lab"}) as response,
    ):
        assert response.headers["Content-Type"].startswith("text/event-stream")
        await _connected(open_api.hub)
        for message in messages:
            await open_api.hub.publish(message)
        await open_api.hub.publish(feed_status("up", T0))
        events = await asyncio.wait_for(_read_events(response, 5), 5)
    lab = [m for m in messages if m.feed.node == "rpi_orcasound_lab"]
    assert [e["id"] for e in events[:4]] == [m.message_id for m in lab]
    assert [e["event"] for e in events] == ["detection"] * 4 + ["feed_status"]
    assert events[0]["data"]["media"] is None and events[0]["data"]["review"] is None
    async with (
        aiohttp.ClientSession() as client,
        client.get(url, params={"status": "sideways"}) as response,
    ):
        assert response.status == 400


async def test_a_slow_event_client_is_dropped(open_api: Served) -> None:
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"{open_api.base}/api/v1/events") as response,
    ):
        await _connected(open_api.hub)
        for message in detection_series(12):  # the queue holds 8
            await open_api.hub.publish(message)
        body = await asyncio.wait_for(response.content.read(), 5)
    assert b"too slow" in body
    assert open_api.hub.slow_disconnects == 1
    assert not open_api.hub.clients


async def test_openapi_describes_every_route(open_api: Served) -> None:
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"{open_api.base}/api/v1/openapi.json") as response,
    ):
        document = await response.json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/api/v1/detections",
        "/api/v1/detections/{id}",
        "/api/v1/detections/{id}/audio",
        "/api/v1/detections/{id}/spectrogram",
        "/api/v1/detections/{id}/review",
        "/api/v1/feeds",
        "/api/v1/events",
    }
    # the embedded wire schema is a valid JSON Schema that a real message passes
    components = document["components"]["schemas"]
    schema = {**components["detection_message"], "$defs": {}}
    text = json.dumps(schema).replace("#/components/schemas/detection_", "#/$defs/")
    schema = json.loads(text)
    schema["$defs"] = {
        name.removeprefix("detection_"): value
        for name, value in components.items()
        if name.startswith("detection_") and name != "detection_message"
    }
    Draft202012Validator.check_schema(schema)
    assert not list(Draft202012Validator(schema).iter_errors(encode(detection_series(2)[1])))
