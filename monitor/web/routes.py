"""The reviewers' page: ``GET /`` and ``GET /static/<file>``, plain files shipped in the package.

The page and its files are open (no token): they hold no data, and a browser cannot send a
bearer header when it opens a URL. The page asks for the token and sends it on its API calls.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"
STATIC_PREFIX = "/static/"
PAGE_PATHS = frozenset({"/", "/index.html", "/favicon.ico"})
# The page's files change with the package, not while it runs; revalidating is cheap.
CACHE_CONTROL = "no-cache"
# Everything from this server, nothing from elsewhere (no CDN: the page works offline);
# blob: for media fetched with the token.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def is_page_path(path: str) -> bool:
    """Whether ``path`` is the page or one of its files (answered without the token)."""
    return path in PAGE_PATHS or path.startswith(STATIC_PREFIX)


def add_page_routes(app: web.Application) -> None:
    app.router.add_get("/", _index)
    app.router.add_get("/index.html", _index)
    app.router.add_get("/favicon.ico", _favicon)
    app.router.add_static(STATIC_PREFIX, STATIC, append_version=False)
    app.on_response_prepare.append(_cache_headers)


async def _index(request: web.Request) -> web.FileResponse:
    headers = {"Cache-Control": CACHE_CONTROL, "Content-Security-Policy": CONTENT_SECURITY_POLICY}
    return web.FileResponse(STATIC / "index.html", headers=headers)


async def _favicon(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "favicon.svg", headers={"Content-Type": "image/svg+xml"})


async def _cache_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith(STATIC_PREFIX):
        response.headers.setdefault("Cache-Control", CACHE_CONTROL)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
