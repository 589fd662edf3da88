"""``hydromon replay``: the same pipeline over the archive; interrupted, it resumes from its
state file and ends with the same detections as an uninterrupted replay."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from monitor.config.loader import load_config
from monitor.publish.files import FileOutput, FileSettings
from monitor.runtime.daemon import Daemon, ReplayMode
from monitor.runtime.resume import state_path
from monitor.timebase import format_utc, parse_utc, utc_now
from tests.support.e2e import build_stream, publish, write_config
from tests.support.outputs import jsonl_detections
from tests.support.synthetic_node import synthetic_node

NODE = "rpi_e2e_replay"
SEGMENTS = 6
PLACED = [("Growl", 12.2), ("AscMoan", 38.4)]


def key(message: dict[str, Any]) -> tuple[Any, ...]:
    return (message["id"], message["status"], message["start_utc"], message["end_utc"])


def test_a_range_given_in_another_offset_is_kept_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    span = ReplayMode(
        datetime(2024, 6, 7, 14, tzinfo=plus_two), datetime(2024, 6, 7, 15, tzinfo=plus_two)
    )
    assert span.start == parse_utc("2024-06-07T12:00:00Z") and span.start.utcoffset() == timedelta(
        0
    )
    assert span.scope == "replay-20240607T120000Z-20240607T130000Z"


@pytest.mark.slow
async def test_interrupted_replay_resumes_to_the_same_detections(
    moto_server, bucket_name, trained_classifier, tmp_path: Path
) -> None:
    epoch = int(utc_now().timestamp()) - 3600
    stream = build_stream(epoch, SEGMENTS * 10.0, PLACED, rotate=5)
    state_dir = tmp_path / "state"
    config_path = write_config(
        tmp_path, moto_server.endpoint_url, bucket_name, NODE, trained_classifier,
        state_dir=state_dir, health_tick_s=0.2,
    )  # fmt: skip
    config = load_config(config_path, env={})
    span = ReplayMode(stream.start_utc, stream.start_utc + timedelta(seconds=SEGMENTS * 10))
    async with synthetic_node(moto_server.endpoint_url, bucket_name, NODE) as node:
        await node.set_latest(epoch)
        await publish(node, stream, range(len(stream.segments)))

        whole = tmp_path / "whole"
        await Daemon(
            config, span, [NODE], outputs=[FileOutput(FileSettings(whole))], serve_http=False
        ).run(asyncio.Event())

        # Interrupted after the first segment (as SIGINT would).
        parts = tmp_path / "parts"
        stop = asyncio.Event()

        class Interrupt:
            def resumed(self, feed: str, until) -> None:
                raise AssertionError("the first run has no resume point")

            def update(self, feed: str, until) -> None:
                if until >= stream.start_utc + timedelta(seconds=10):
                    stop.set()

        first = Daemon(
            config,
            span,
            [NODE],
            outputs=[FileOutput(FileSettings(parts))],
            serve_http=False,
            progress=Interrupt(),
        )
        assert await first.run(stop) == 0
        saved = state_path(state_dir, span.scope, NODE)
        assert saved.exists()
        assert first.pipelines[NODE].progress.processed_until < span.end
        last1 = first.pipelines[NODE].progress.last_window

        second = Daemon(
            config, span, [NODE], outputs=[FileOutput(FileSettings(parts))], serve_http=False
        )
        assert await second.run(asyncio.Event()) == 0
        assert not saved.exists()  # a finished range leaves no resume point behind
        # Scored or, in the cascade, passed over as without a candidate.
        scored = sum(
            run.pipelines[NODE].progress.windows_scored
            + run.pipelines[NODE].progress.windows_unscored
            for run in (first, second)
        )

        # The command line, into --out: JSON lines and Raven tables only.
        out = tmp_path / "cli"
        command = [
            str(Path(sys.executable).parent / "hydromon"),
            "replay",
            "--config",
            str(config_path),
            "--feed",
            NODE,
            "--start",
            format_utc(span.start),
            "--end",
            format_utc(span.end),
            "--out",
            str(out),
        ]
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=120
        )
    whole_detections = jsonl_detections(whole)
    kinds = {
        json.loads(line)["kind"]
        for path in sorted((whole / "jsonl").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    }
    assert kinds == {"detection"}  # a replay reports no live feed states
    full_closed = [m for m in whole_detections if m["status"] == "closed"]
    assert len(full_closed) == len(PLACED)
    # The uninterrupted replay scored every window once; the two halves together did the same.
    whole_scored = (span.end - span.start) / timedelta(seconds=0.5)
    assert abs(scored - whole_scored) <= 2
    # Detections after the interruption are identical; one open at the interruption (if any)
    # was closed ("shutdown") and the resumed run opened a new one where it went on.
    parted = jsonl_detections(parts)
    # A candidate open at the stop (not yet credible, so dropped without a message) is read
    # again by the resumed run: a detection starting at the last window scored is found too.
    untouched = [key(m) for m in whole_detections if parse_utc(m["start_utc"]) >= last1]
    assert untouched and set(untouched) <= {key(m) for m in parted}
    assert [m["close_reason"] for m in parted if m["status"] == "closed"].count("shutdown") <= 1
    opened = [m["id"] for m in parted if m["status"] == "opened"]
    assert sorted(opened) == sorted(m["id"] for m in parted if m["status"] == "closed")

    assert done.returncode == 0, done.stderr[-2000:]
    assert "× real time" in done.stderr
    assert [key(m) for m in jsonl_detections(out)] == [key(m) for m in whole_detections], (
        done.stderr[-3000:]
    )
    raven = sorted((out / "raven" / NODE).glob("*.selections.txt"))
    assert raven and len(raven[0].read_text().splitlines()) == 1 + len(PLACED)
