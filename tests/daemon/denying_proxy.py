"""A real HTTP peer in front of the moto server that answers 403 AccessDenied for the keys of
chosen nodes (a node whose objects lost their public ACL) and proxies everything else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from tests.support.services import free_port

_DENIED = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
    "<Message>Access Denied</Message></Error>"
)


@asynccontextmanager
async def denying_proxy(upstream: str, denied: set[str]) -> AsyncIterator[str]:
    """Yields the proxy's URL; requests naming a node in ``denied`` (mutable) get 403."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if any(f"/{node}/" in request.path or f"prefix={node}" in request.query_string
               for node in denied):  # fmt: skip
            return web.Response(status=403, body=_DENIED, content_type="application/xml")
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
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
