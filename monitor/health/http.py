"""The health HTTP server: /healthz, /readyz, /status, /metrics (aiohttp.web).

- ``/healthz``: liveness. Answering at all shows the event loop turns; it also reports the
  worst loop stall seen by a heartbeat task in the last interval and answers 503 when that
  exceeds ``max_loop_stall_s`` (something blocked the loop).
- ``/readyz``: 200 once the engine is loaded and ingest has started, until shutdown begins;
  else 503.
- ``/status`` and ``/metrics`` need ``Authorization: Bearer <http.token>`` when a token is set.
- ``/status``: JSON per feed (state, last segment, lag, gaps, restarts, last error + hint).
- ``/metrics``: the Prometheus text exposition of hydromon's own registry.

Other routes (the API and the media files: ``monitor.api``; the page: ``monitor.web``) are
installed by ``extensions``; they follow the same token rule. A GET may carry the token as
``?access_token=`` instead of the header (``<audio>``, ``<img>`` and EventSource cannot set
headers); the page itself (``/``, ``/static/…``) holds no data and is always open.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web

from monitor.health.board import HealthBoard
from monitor.health.logs import get_logger
from monitor.health.metrics import CONTENT_TYPE, Metrics
from monitor.timebase import utc_now

log = get_logger(__name__)

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/"})  # answered without the token
OPEN_PREFIXES = ("/static/",)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Extension = Callable[[web.Application], None]


@dataclass(frozen=True, slots=True)
class HttpSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = field(default=9108, metadata={"min": 0, "max": 65535})  # 0: any free port
    heartbeat_s: float = field(default=0.5, metadata={"gt": 0.0})
    max_loop_stall_s: float = field(default=5.0, metadata={"gt": 0.0})
    # /status and /metrics need "Authorization: Bearer <token>" when set (the config sets it
    # to websocket.token); /healthz and /readyz stay open for orchestrators.
    token: str | None = None


@dataclass(slots=True)
class LoopHeartbeat:
    """Sleeps ``interval`` in a loop and records how late each wake-up was."""

    interval: float
    worst_recent_s: float = 0.0
    last_beat: float = field(default_factory=time.monotonic)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-heartbeat")

    async def _run(self) -> None:
        window_worst = 0.0
        beats = 0
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.interval)
            self.last_beat = time.monotonic()
            late = self.last_beat - before - self.interval
            window_worst = max(window_worst, late)
            beats += 1
            if beats * self.interval >= 10.0:  # keep the worst stall of the last ~10 s
                self.worst_recent_s, window_worst, beats = window_worst, 0.0, 0
            else:
                self.worst_recent_s = max(self.worst_recent_s, window_worst)

    def stall_s(self) -> float:
        """The worst recent stall, or how long the current beat is overdue."""
        overdue = time.monotonic() - self.last_beat - self.interval
        return max(self.worst_recent_s, overdue, 0.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class HealthServer:
    def __init__(
        self,
        settings: HttpSettings,
        board: HealthBoard,
        metrics: Metrics,
        extensions: Sequence[Extension] = (),
    ) -> None:
        self.settings = settings
        self.board = board
        self.metrics = metrics
        self.extensions = tuple(extensions)
        self.heartbeat = LoopHeartbeat(settings.heartbeat_s)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._require_token])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/status", self._status)
        app.router.add_get("/metrics", self._metrics)
        for install in self.extensions:
            install(app)
        return app

    async def start(self) -> int:
        """Bind and serve; returns the bound port (useful when the setting is 0)."""
        self.heartbeat.start()
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        try:
            await site.start()
        except OSError as exc:
            await self.close()
            raise OSError(
                f"health server cannot bind {self.settings.host}:{self.settings.port}: {exc}"
            ) from exc
        self.port = int(self._runner.addresses[0][1])
        log.info("health server listening", host=self.settings.host, port=self.port)
        return self.port

    async def close(self) -> None:
        await self.heartbeat.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _require_token(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        token = self.settings.token
        path = request.path
        if token and path not in OPEN_PATHS and not path.startswith(OPEN_PREFIXES):
            given = request.headers.get("Authorization", "")
            if request.method == "GET" and "access_token" in request.query:
                given = f"Bearer {request.query['access_token']}"
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return web.Response(
                    status=401,
                    text="missing or wrong bearer token\n",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await handler(request)

    async def _healthz(self, request: web.Request) -> web.Response:
        stall = self.heartbeat.stall_s()
        ok = stall <= self.settings.max_loop_stall_s
        body = {"ok": ok, "loop_stall_s": round(stall, 3)}
        return web.json_response(body, status=200 if ok else 503)

    async def _readyz(self, request: web.Request) -> web.Response:
        board = self.board
        body = {
            "ready": board.ready,
            "engine_loaded": board.engine_loaded,
            "ingest_started": board.ingest_started,
            "stopping": board.stopping,
        }
        return web.json_response(body, status=200 if board.ready else 503)

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.board.status(utc_now()))

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response
