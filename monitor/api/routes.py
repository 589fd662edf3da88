"""The HTTP API (``/api/v1``) and the media files (``/media``), on the daemon's aiohttp server
(``monitor.health.http.HealthServer``; the reviewers' page is ``monitor.web``). The contract:
docs/api.md (and /work's api-contract). Every index query runs in the API's reader threads and
every write in the index's writer thread: nothing here touches SQLite on the event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from monitor.api.events import EventHub, SseSettings
from monitor.api.openapi import openapi_document
from monitor.detect.records import FeedInfo, FeedState
from monitor.detect.wire import WIRE_STATES
from monitor.health.board import HealthBoard
from monitor.index.output import IndexOutput
from monitor.index.store import VERDICTS, BadCursor, DetectionIndex, DetectionQuery
from monitor.media.layout import MEDIA_ROUTE, media_path
from monitor.publish.subscription import Subscription
from monitor.timebase import format_utc, parse_utc, utc_now

T = TypeVar("T")

PREFIX = "/api/v1"
AUDIO_TYPES = {".ogg": "audio/ogg", ".flac": "audio/flac", ".mp3": "audio/mpeg"}
AUDIO_VERSIONS = {
    "browser": "audio",
    "archive": "audio_archive",
    "denoised": "audio_denoised",
    "denoised_archive": "audio_denoised_archive",
}


@dataclass(frozen=True, slots=True)
class ApiSettings:
    enabled: bool = True
    # Reviews need the bearer token (http.token); with no token set they are refused unless this
    # is true (a loopback-only desk where anyone at the machine may review).
    allow_anonymous_review: bool = False
    page_size: int = field(default=50, metadata={"min": 1})
    max_page_size: int = field(default=500, metadata={"min": 1})
    read_threads: int = field(default=4, metadata={"min": 1})
    max_note_chars: int = field(default=2000, metadata={"min": 0})
    events: SseSettings = field(default_factory=SseSettings)  # GET /api/v1/events


class BadRequest(ValueError):
    pass


class Api:
    def __init__(
        self,
        settings: ApiSettings,
        index: DetectionIndex | None,
        *,
        writer: IndexOutput | None = None,
        hub: EventHub | None = None,
        board: HealthBoard | None = None,
        feeds: Mapping[str, FeedInfo] | None = None,
        media_dir: Path | None = None,
        token: str | None = None,
    ) -> None:
        self.settings = settings
        self.index = index
        self.writer = writer
        self.hub = hub
        self.board = board
        self.feeds = dict(feeds or {})
        self.media_dir = media_dir
        self.token = token
        self._readers = ThreadPoolExecutor(settings.read_threads, thread_name_prefix="api-read")

    def install(self, app: web.Application) -> None:
        router = app.router
        router.add_get(f"{PREFIX}/detections", self._detections)
        router.add_get(f"{PREFIX}/detections/{{id}}", self._detection)
        router.add_get(f"{PREFIX}/detections/{{id}}/audio", self._audio)
        router.add_get(f"{PREFIX}/detections/{{id}}/spectrogram", self._spectrogram)
        router.add_post(f"{PREFIX}/detections/{{id}}/review", self._review)
        router.add_get(f"{PREFIX}/feeds", self._feeds)
        router.add_get(f"{PREFIX}/events", self._events)
        router.add_get(f"{PREFIX}/openapi.json", self._openapi)
        router.add_get(f"/{MEDIA_ROUTE}/{{path:.+}}", self._media)
        app.on_cleanup.append(self._cleanup)

    async def _cleanup(self, app: web.Application) -> None:
        self._readers.shutdown(wait=False, cancel_futures=True)

    async def _read(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._readers, function, *args)

    def _need_index(self) -> DetectionIndex:
        if self.index is None:
            raise web.HTTPServiceUnavailable(
                text=_error_text("the detection index is switched off (index.enabled = false)"),
                content_type="application/json",
            )
        return self.index

    # ---- detections ----

    async def _detections(self, request: web.Request) -> web.Response:
        index = self._need_index()
        try:
            query = detection_query(request.query)
            limit = _limit(request.query, self.settings)
            cursor = request.query.get("cursor") or None
            page = await self._read(index.detections, query, limit, cursor)
        except (BadRequest, BadCursor) as error:
            return _error(400, str(error))
        return web.json_response({"detections": page.detections, "next_cursor": page.next_cursor})

    async def _found(self, request: web.Request) -> dict[str, Any]:
        index = self._need_index()
        detection_id = request.match_info["id"]
        found = await self._read(index.detection, detection_id)
        if found is None:
            raise web.HTTPNotFound(
                text=_error_text(f"no detection {detection_id}"), content_type="application/json"
            )
        return found

    async def _detection(self, request: web.Request) -> web.Response:
        return web.json_response(await self._found(request))

    async def _audio(self, request: web.Request) -> web.StreamResponse:
        version = request.query.get("version", "browser")
        if version not in AUDIO_VERSIONS:
            return _error(400, f"version must be one of {', '.join(AUDIO_VERSIONS)}")
        return await self._file(request, AUDIO_VERSIONS[version])

    async def _spectrogram(self, request: web.Request) -> web.StreamResponse:
        return await self._file(request, "spectrogram")

    async def _file(self, request: web.Request, kind: str) -> web.StreamResponse:
        detection = await self._found(request)
        url = (detection.get("media") or {}).get(kind)
        if url is None or self.media_dir is None:
            return _error(404, f"detection {detection['id']} has no {kind.replace('_', ' ')}")
        try:
            return self._serve(media_path(self.media_dir, url))
        except ValueError as error:  # an index written by something else
            return _error(404, str(error))

    async def _media(self, request: web.Request) -> web.StreamResponse:
        if self.media_dir is None:
            return _error(404, "media writing is switched off")
        try:
            path = media_path(self.media_dir, f"{MEDIA_ROUTE}/{request.match_info['path']}")
        except ValueError as error:
            return _error(404, str(error))
        return self._serve(path)

    def _serve(self, path: Path | None) -> web.StreamResponse:
        if path is None or not path.is_file():
            return _error(404, "the file is not there (removed by the retention policy?)")
        headers = {"Cache-Control": "public, max-age=86400"}
        content_type = AUDIO_TYPES.get(path.suffix)
        if content_type is not None:
            headers["Content-Type"] = content_type
        return web.FileResponse(path, headers=headers)

    async def _review(self, request: web.Request) -> web.Response:
        if self.token is None and not self.settings.allow_anonymous_review:
            return _error(
                403,
                "reviews need a token: set websocket.token (sent as Authorization: Bearer "
                "<token>) or api.allow_anonymous_review = true",
            )
        index = self._need_index()
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, 'the body must be JSON: {"verdict": ..., "note": ...}')
        try:
            verdict, note = review_body(body, self.settings.max_note_chars)
        except BadRequest as error:
            return _error(400, str(error))
        detection_id = request.match_info["id"]
        at = utc_now()
        if self.writer is not None:
            updated = await self.writer.call(index.review, detection_id, verdict, note, at)
        else:
            updated = await self._read(index.review, detection_id, verdict, note, at)
        if updated is None:
            return _error(404, f"no detection {detection_id}")
        return web.json_response(updated)

    # ---- feeds, events, description ----

    async def _feeds(self, request: web.Request) -> web.Response:
        latest: dict[str, dict[str, Any]] = {}
        if self.index is not None:
            latest = await self._read(self.index.latest_feed_status)
        nodes = list(dict.fromkeys([*self.feeds, *latest]))
        if self.board is not None:
            nodes = list(dict.fromkeys([*self.board.feeds, *nodes]))
        return web.json_response({"feeds": [self._feed(node, latest.get(node)) for node in nodes]})

    def _feed(self, node: str, latest: dict[str, Any] | None) -> dict[str, Any]:
        info = self.feeds.get(node) or FeedInfo.unknown(node)
        entry: dict[str, Any] = {
            "node": node,
            "display_name": info.display_name,
            "state": "Unknown",
            "since_utc": None,
            "last_segment_utc": None,
            "lag_s": None,
            "last_error": None,
        }
        if latest is not None:  # from the index: what was last published
            entry.update(state=latest["state"], since_utc=latest["since_utc"])
        health = None if self.board is None else self.board.feeds.get(node)
        if health is not None:  # the live board knows more, and knows it now
            snapshot = health.snapshot()
            state = FeedState(health.state)
            entry["state"] = WIRE_STATES.get(state, "Unknown")
            entry["since_utc"] = snapshot["since"]
            entry["last_segment_utc"] = snapshot["last_segment_start"]
            entry["lag_s"] = snapshot["lag_s"]
            entry["last_error"] = snapshot["last_error"]
        return entry

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if self.hub is None:
            return _error(503, "live events are not served by this process")
        try:
            subscription = event_subscription(request.query)
        except (BadRequest, ValueError) as error:
            return _error(400, str(error))
        client = self.hub.connect(subscription)
        if client is None:
            return _error(503, "too many event clients")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        try:
            await response.prepare(request)
            await response.write(b"retry: 3000\n: connected " + format_utc(utc_now()).encode())
            await response.write(b"\n\n")
            while (frame := await self.hub.next_frame(client)) is not None:
                await response.write(frame)
            await response.write(b'event: error\ndata: {"error": "too slow"}\n\n')
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.hub.disconnect(client)
        return response

    async def _openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document())


# ---- request parsing (one place, shared by the API and its tests) ----


def _values(query: Mapping[str, str], key: str) -> list[str]:
    """A repeated parameter's values (aiohttp's query is a multidict)."""
    getall = getattr(query, "getall", None)
    if getall is not None:
        return list(getall(key, []))
    return [query[key]] if key in query else []


def _names(query: Mapping[str, str], key: str) -> frozenset[str] | None:
    """``feed=a,b`` and ``feed=a&feed=b`` alike."""
    values = [part.strip() for value in _values(query, key) for part in value.split(",")]
    return frozenset(value for value in values if value) or None


def _moment(query: Mapping[str, str], key: str) -> Any:
    text = query.get(key)
    if not text:
        return None
    try:
        return parse_utc(text)
    except ValueError:
        raise BadRequest(f"{key}: not an ISO 8601 time: {text!r}") from None


def detection_query(query: Mapping[str, str]) -> DetectionQuery:
    min_score = query.get("min_score")
    try:
        score = None if not min_score else float(min_score)
    except ValueError:
        raise BadRequest(f"min_score: not a number: {min_score!r}") from None
    status = query.get("status") or None
    if status is not None and status not in ("opened", "closed"):
        raise BadRequest("status must be opened or closed")
    verdicts = _names(query, "verdict")
    if verdicts is not None and not verdicts <= set(VERDICTS):
        raise BadRequest(f"verdict must be among {', '.join(VERDICTS)}")
    return DetectionQuery(
        feeds=_names(query, "feed"),
        labels=_names(query, "label"),
        since=_moment(query, "since"),
        until=_moment(query, "until"),
        min_score=score,
        status=status,
        verdicts=verdicts,
    )


def _limit(query: Mapping[str, str], settings: ApiSettings) -> int:
    text = query.get("limit")
    if not text:
        return settings.page_size
    try:
        limit = int(text)
    except ValueError:
        raise BadRequest(f"limit: not an integer: {text!r}") from None
    if not 1 <= limit <= settings.max_page_size:
        raise BadRequest(f"limit must be in 1..{settings.max_page_size}")
    return limit


def event_subscription(query: Mapping[str, str]) -> Subscription:
    """The SSE filters as a websocket ``subscribe`` message (one validation for both)."""
    request: dict[str, Any] = {"type": "subscribe"}
    for key, name in (("feed", "feeds"), ("label", "labels"), ("status", "statuses")):
        values = _names(query, key)
        if values is not None:
            request[name] = sorted(values)
    kinds = _names(query, "kind")
    if kinds is not None:
        request["kinds"] = sorted(kinds)
    if query.get("min_score"):
        try:
            request["min_score"] = float(query["min_score"])
        except ValueError:
            raise BadRequest(f"min_score: not a number: {query['min_score']!r}") from None
    return Subscription.parse(request)


def review_body(body: Any, max_note_chars: int) -> tuple[str, str]:
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object: {"verdict": ..., "note": ...}')
    verdict = body.get("verdict")
    if verdict not in VERDICTS:
        raise BadRequest(f"verdict must be one of {', '.join(VERDICTS)}")
    note = body.get("note", "")
    if note is None:
        note = ""
    if not isinstance(note, str):
        raise BadRequest("note must be a string")
    if len(note) > max_note_chars:
        raise BadRequest(f"note is longer than {max_note_chars} characters")
    return verdict, note


def _error_text(message: str) -> str:
    return json.dumps({"error": message})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
