"""The end-to-end scenario replayed from a local mirror in either detector mode (the cascade
recall test and bench/cascade.py share it)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from monitor.config.loader import Config, load_config
from monitor.ingest.demo_node import publish_segment
from monitor.publish.files import FileOutput, FileSettings
from monitor.runtime.daemon import Daemon, ReplayMode
from tests.support.e2e import Stream, config_toml

NODE = "rpi_cascade"


def mirror(root: Path, stream: Stream) -> Path:
    """The stream's segments and playlist in a local mirror, as the node uploads them."""
    for number in range(len(stream.segments)):
        publish_segment(root, NODE, stream, number)
    return root


def replay_config(
    workdir: Path, root: Path, classifier: Path, mode: str, **detector: Any
) -> Config:
    """The scenario's config over the mirror, with ``detector.mode = mode`` (and more
    ``[detector]`` settings)."""
    workdir.mkdir(parents=True, exist_ok=True)
    text = config_toml(
        endpoint=f"file://{root}", bucket="mirror", node=NODE, classifier=classifier,
        workdir=workdir,
    )  # fmt: skip
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in detector.items())
    path = workdir / "hydromon.toml"
    path.write_text(text + f'[detector]\nmode = "{mode}"\n' + extra)
    return load_config(path, env={})


def replay_daemon(config: Config, stream: Stream, out: Path) -> Daemon:
    """A replay of the whole stream, JSON lines into ``out``."""
    span = ReplayMode(stream.start_utc, stream.start_utc + timedelta(seconds=stream.audio_s))
    return Daemon(
        config, span, [NODE], outputs=[FileOutput(FileSettings(directory=out))], serve_http=False
    )


async def replay(config: Config, stream: Stream, out: Path) -> Daemon:
    """Replay the whole stream, JSON lines into ``out``; the daemon (its pipelines' progress)."""
    daemon = replay_daemon(config, stream, out)
    code = await daemon.run(asyncio.Event())
    if code != 0:
        raise RuntimeError(f"replay in {config.detector.mode} mode exited {code}")
    return daemon


def closed_detections(out: Path) -> list[dict[str, Any]]:
    lines = [
        json.loads(line)
        for path in sorted((out / "jsonl").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    return [m for m in lines if m.get("kind") == "detection" and m["status"] == "closed"]
