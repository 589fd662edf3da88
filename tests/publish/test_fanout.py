from __future__ import annotations

import asyncio
import json
from pathlib import Path

import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from monitor.publish.fanout import Fanout, FanoutSettings
from monitor.publish.files import FileOutput, FileSettings
from monitor.publish.redis import RedisOutput
from monitor.publish.websocket import WebsocketOutput, WebsocketSettings
from tests.support.detections import T0, detection_series, wire
from tests.support.outputs import receive, settings_for, subscribe


async def test_a_failing_output_never_blocks_or_breaks_the_others(tmp_path: Path) -> None:
    # A file sits where the output wants its jsonl/ directory: every publish fails.
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "jsonl").write_text("a file, not a directory\n")
    broken = FileOutput(FileSettings(directory=tmp_path / "broken"), name="broken-files")
    good = FileOutput(FileSettings(directory=tmp_path / "good", fsync=False))
    websocket = WebsocketOutput(WebsocketSettings(port=0))
    fanout = Fanout([broken, good, websocket])
    await fanout.start()
    messages = detection_series(6)
    async with connect(f"ws://127.0.0.1:{websocket.port}") as ws:
        await subscribe(ws)
        for message in messages:
            await fanout.publish(message)  # never raises
        assert await receive(ws, 6) == wire(messages)
    await fanout.close()
    assert fanout.stats["broken-files"].failed == 6
    assert fanout.stats["files"].published == 6 and fanout.stats["websocket"].published == 6
    lines = good.jsonl_path(T0).read_text().splitlines()
    assert [json.loads(line) for line in lines] == wire(messages)


async def test_a_stalled_output_drops_only_its_own_messages_and_counts_them(
    redis_server, tmp_path: Path
) -> None:
    settings = settings_for(redis_server.url, tmp_path, timeout_s=0.2)
    admin = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    redis_output = RedisOutput(settings)
    files = FileOutput(FileSettings(directory=tmp_path / "files", fsync=False))
    fanout = Fanout([redis_output, files], FanoutSettings(queue_size=2, close_timeout_s=5))
    await fanout.start()
    messages = detection_series(10)
    try:
        await admin.execute_command("CLIENT", "PAUSE", "600", "WRITE")
        for message in messages:
            await fanout.publish(message)
            await asyncio.sleep(0.01)
        stats = fanout.stats["redis"]
        assert stats.dropped > 0  # its queue overflowed while Redis stalled
        await fanout.close()
        assert stats.published + stats.dropped == 10
        assert fanout.stats["files"].published == 10 and fanout.stats["files"].dropped == 0
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()
