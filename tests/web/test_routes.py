"""The page's serving: open without the token, the right types, nothing from other origins."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from monitor.health.board import HealthBoard
from monitor.health.http import HealthServer, HttpSettings
from monitor.health.metrics import Metrics
from monitor.web.routes import STATIC, add_page_routes

TOKEN = "s3cret"


@pytest.fixture
async def base() -> AsyncIterator[str]:
    metrics = Metrics()
    server = HealthServer(
        HttpSettings(port=0, heartbeat_s=0.05, token=TOKEN),
        HealthBoard(metrics=metrics),
        metrics,
        [add_page_routes],
    )
    port = await server.start()
    yield f"http://127.0.0.1:{port}"
    await server.close()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", "text/html"),
        ("/static/app.js", "javascript"),
        ("/static/api.js", "javascript"),
        ("/static/cards.js", "javascript"),
        ("/static/style.css", "text/css"),
        ("/static/favicon.svg", "image/svg+xml"),
    ],
)
async def test_the_page_and_its_files_need_no_token(
    base: str, path: str, content_type: str
) -> None:
    async with aiohttp.ClientSession() as client, client.get(base + path) as response:
        assert response.status == 200, path
        assert content_type in response.headers["Content-Type"]
        assert await response.read()


async def test_the_page_allows_only_its_own_origin(base: str) -> None:
    async with aiohttp.ClientSession() as client, client.get(base + "/") as response:
        policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "http" not in policy  # no other origin is allowed, so no CDN can creep in


async def test_the_token_still_guards_everything_else(base: str) -> None:
    async with aiohttp.ClientSession() as client:
        for path in ("/status", "/api/v1/detections", "/staticx", "/static"):
            async with client.get(base + path) as response:
                assert response.status == 401, path
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with client.get(base + "/status", headers=bearer) as response:
            assert response.status == 200


async def test_no_file_outside_the_static_folder(base: str) -> None:
    async with aiohttp.ClientSession() as client:
        for path in ("/static/../routes.py", "/static/%2e%2e/routes.py", "/static/nope.js"):
            async with client.get(base + path) as response:
                assert response.status in (401, 403, 404), path  # 401: outside the page


def test_the_page_refers_only_to_files_it_ships() -> None:
    """Every URL in the page's files is this server's (no CDN, works offline), and every
    /static/ file the page names is in the package."""
    texts = {path.name: path.read_text() for path in STATIC.iterdir() if path.is_file()}
    for name, text in texts.items():
        text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, not a fetch
        external = re.findall(r"""(?:https?:)?//[\w.-]+\.[a-z]{2,}""", text)
        assert not external, (name, external)
    named = set(re.findall(r"/static/([\w.-]+)", texts["index.html"]))
    named |= {m for text in texts.values() for m in re.findall(r"""from "\./([\w.-]+)\"""", text)}
    assert {"app.js", "style.css", "api.js", "cards.js"} <= named
    assert named <= set(texts), named - set(texts)
