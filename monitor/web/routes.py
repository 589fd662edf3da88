"""The reviewers' page: ``GET /`` and ``GET /static/<file>``, plain files shipped in the package.

The page and its files are open (``monitor.health.http`` lets ``/`` and ``/static/`` through
without the token): they hold no data, and a browser cannot send a bearer header when it opens
a URL. The page asks for the token and sends it on its API calls. The daemon installs these
routes next to the API's (``Daemon._http_extensions``).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"
PAGE_PATH = "/"
STATIC_PREFIX = "/static/"
# The page's files change with the package, not while it runs; revalidating is cheap.
CACHE_CONTROL = "no-cache"
# Everything from this server, nothing from elsewhere (no CDN: the page works offline).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; media-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def add_page_routes(app: web.Application) -> None:
    app.router.add_get(PAGE_PATH, _index)
    app.router.add_static(STATIC_PREFIX, STATIC, follow_symlinks=False)
    app.on_response_prepare.append(_static_headers)


async def _index(request: web.Request) -> web.FileResponse:
    headers = {"Cache-Control": CACHE_CONTROL, "Content-Security-Policy": CONTENT_SECURITY_POLICY}
    return web.FileResponse(STATIC / "index.html", headers=headers)


async def _static_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith(STATIC_PREFIX):
        response.headers.setdefault("Cache-Control", CACHE_CONTROL)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
