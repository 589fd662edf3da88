"""A real HTTP peer in front of the moto server that fails the first requests on purpose."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from tests.support.services import free_port

_S3_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
    "<Message>{message}</Message></Error>"
)


@asynccontextmanager
async def flaky_proxy(upstream: str, *, failures: int, status: int = 503) -> AsyncIterator[dict]:
    """A real HTTP peer in front of moto: answers ``status`` ``failures`` times, then proxies."""
    seen = {"requests": 0, "failed": 0}
    code = {503: "SlowDown", 500: "InternalError", 403: "AccessDenied"}[status]

    async def handle(request: web.Request) -> web.StreamResponse:
        seen["requests"] += 1
        if seen["failed"] < failures:
            seen["failed"] += 1
            body = _S3_ERROR.format(code=code, message="injected")
            return web.Response(status=status, body=body, content_type="application/xml")
        async with (
            aiohttp.ClientSession(auto_decompress=False) as session,
            session.request(
                request.method,
                upstream + request.path_qs,
                headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
                data=await request.read(),
            ) as reply,
        ):
            body = await reply.read()
            headers = {
                k: v
                for k, v in reply.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "connection")
            }
            return web.Response(status=reply.status, body=body, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    seen["url"] = f"http://127.0.0.1:{port}"
    try:
        yield seen
    finally:
        await runner.cleanup()
