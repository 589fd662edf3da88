"""Real HTTP peers in front of the moto server: each request either gets an injected S3 error
or is proxied unchanged to moto."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from tests.support.services import free_port

_S3_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
    "<Message>{message}</Message></Error>"
)
_HOP_BY_HOP = ("content-length", "transfer-encoding", "connection")


def s3_error(status: int, code: str, message: str) -> web.Response:
    body = _S3_ERROR.format(code=code, message=message)
    return web.Response(status=status, body=body, content_type="application/xml")


@asynccontextmanager
async def s3_proxy(
    upstream: str, intercept: Callable[[web.Request], web.Response | None]
) -> AsyncIterator[str]:
    """Yields the proxy's URL; a request gets ``intercept``'s answer, or upstream's if None."""

    async def handle(request: web.Request) -> web.StreamResponse:
        injected = intercept(request)
        if injected is not None:
            return injected
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
            headers = {k: v for k, v in reply.headers.items() if k.lower() not in _HOP_BY_HOP}
            return web.Response(status=reply.status, body=body, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def flaky_proxy(upstream: str, *, failures: int, status: int = 503) -> AsyncIterator[dict]:
    """Answers ``status`` ``failures`` times, then proxies. Yields the counts and ``"url"``."""
    seen = {"requests": 0, "failed": 0}
    code = {503: "SlowDown", 500: "InternalError", 403: "AccessDenied"}[status]

    def intercept(_request: web.Request) -> web.Response | None:
        seen["requests"] += 1
        if seen["failed"] < failures:
            seen["failed"] += 1
            return s3_error(status, code, "injected")
        return None

    async with s3_proxy(upstream, intercept) as url:
        seen["url"] = url
        yield seen


@asynccontextmanager
async def denying_proxy(upstream: str, denied: set[str]) -> AsyncIterator[str]:
    """Yields the proxy's URL; requests naming a node in ``denied`` (mutable) get 403
    AccessDenied, as for a node whose objects lost their public ACL."""

    def intercept(request: web.Request) -> web.Response | None:
        if any(f"/{node}/" in request.path or f"prefix={node}" in request.query_string
               for node in denied):  # fmt: skip
            return s3_error(403, "AccessDenied", "Access Denied")
        return None

    async with s3_proxy(upstream, intercept) as url:
        yield url
