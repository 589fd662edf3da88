"""``hydromon demo`` end to end: a real subprocess builds the real-audio node, plays it into a
local mirror and follows it with a tiny AST trained on the calls; the detections arrive on the
websocket and in the files, at the mixed-in times."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from monitor.cli.demo import DEMO_NODE, PLACED
from monitor.index.store import DetectionIndex, DetectionQuery, IndexSettings
from monitor.media.layout import media_path
from monitor.timebase import parse_utc
from tests.support.e2e import HOP_S, WINDOW_S, write_config

ROOT = Path(__file__).resolve().parents[2]


async def run_demo(config: Path, demo_dir: Path) -> tuple[int, str, list[dict[str, Any]]]:
    """Run the demo; listen on the websocket it prints until it exits."""
    command = [sys.executable, "-m", "monitor.cli.main", "--log-level", "warning", "demo"]
    command += ["--config", str(config), "--dir", str(demo_dir), "--speed", "20"]
    command += ["--ws-port", "0", "--http-port", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    printed: list[str] = []
    received: list[dict[str, Any]] = []
    async with asyncio.timeout(240):
        while (match := re.search(r"websocket: +(ws://\S+)", "".join(printed))) is None:
            line = (await process.stdout.readline()).decode()
            assert line, "".join(printed)
            printed.append(line)
        async with connect(match.group(1)) as ws:
            # an unknown "since" gives everything the server's history holds
            await ws.send(json.dumps({"type": "subscribe", "kinds": ["detection"], "since": "x"}))
            reading = asyncio.create_task(process.stdout.read())
            try:
                async for raw in ws:
                    received.append(json.loads(raw))
            except Exception:  # the daemon closed the connection on its way out
                pass
            printed.append((await reading).decode())
        code = await process.wait()
    return code, "".join(printed), [m for m in received if m.get("kind") == "detection"]


@pytest.mark.slow
async def test_demo_detects_the_mixed_in_calls(trained_classifier, tmp_path) -> None:
    config = write_config(tmp_path, "file:///unused", "audio-orcasound-net", DEMO_NODE,
                          trained_classifier)  # fmt: skip
    demo_dir = tmp_path / "demo"
    code, printed, on_websocket = await run_demo(config, demo_dir)
    assert code == 0, printed
    assert f"detection files:       {demo_dir / 'detections'}" in printed
    assert re.search(r"status: +http://127\.0\.0\.1:\d+/status", printed)
    assert re.search(r"page \(listen, review\): +http://127\.0\.0\.1:\d+/\n", printed)
    assert list((demo_dir / "mirror" / DEMO_NODE / "hls").iterdir())  # the mirror was written

    calls = json.loads((demo_dir / "calls.json").read_text())
    assert [c["call"] for c in calls] == [name for name, _ in PLACED]
    files = [
        json.loads(line)
        for path in sorted((demo_dir / "detections" / "jsonl").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    closed = [m for m in files if m.get("kind") == "detection" and m["status"] == "closed"]
    assert {m["id"] for m in closed} <= {m["id"] for m in on_websocket if m["status"] == "closed"}
    hop, window = timedelta(seconds=HOP_S), timedelta(seconds=WINDOW_S)
    found = set()
    for message in closed:
        start, end = parse_utc(message["start_utc"]), parse_utc(message["end_utc"])
        hits = [
            c
            for c in calls
            if parse_utc(c["start_utc"]) - window - hop <= start <= parse_utc(c["end_utc"])
            and end >= parse_utc(c["start_utc"])
        ]
        assert len(hits) == 1, (message["start_utc"], message["end_utc"], calls)
        found.add(hits[0]["call"])
    # each closed detection has its media on disk and in the index
    index = DetectionIndex(IndexSettings(path=demo_dir / "index.sqlite"))
    stored = {d["id"]: d for d in index.iter_detections(DetectionQuery(status="closed"))}
    index.close()
    assert set(stored) == {m["id"] for m in closed}
    for message in closed:
        assert message["media"] == stored[message["id"]]["media"]
        for kind in ("audio", "audio_archive", "spectrogram"):
            assert media_path(demo_dir / "media", message["media"][kind]).stat().st_size > 0
    # the long calls, which the tiny model knows well, are each found; nothing else is
    assert {"AscMoan", "DescMoan", "Growl", "moan"} <= found, found
    assert f"{len(found)} of {len(PLACED)} mixed-in calls detected" in printed
