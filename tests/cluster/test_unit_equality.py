"""Work units run in this process own exactly the single-process replay's detections, in both
detector modes, with calls placed on the edges of the settle rule: a unit boundary inside a
call, a warm-up starting inside a call, and calls within stage 1's background history
(``detector.history_s``) before a warm-up start, whose floor there the unit must rebuild."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.cluster.units import ReplayRange
from monitor.config.loader import load_config
from monitor.publish.files import FileOutput, FileSettings
from monitor.runtime.daemon import Daemon, ReplayMode
from monitor.timebase import utc_now
from tests.support.cluster import replay_in_units
from tests.support.e2e import build_stream, publish, write_config
from tests.support.outputs import detection_summary as summary
from tests.support.outputs import jsonl_detections as detections
from tests.support.synthetic_node import synthetic_node

NODE = "rpi_e2e_units"
SECONDS = 80
# Units at 0, 20, 40 and 60 s with 15 s of warm-up: their first windows at 5, 25 and 45 s;
# stage 1's history (6 s) reaches back to -1, 19 and 39 s.
PLACED = [
    ("Growl", 3.5),  # the warm-up of the unit at 20 s begins inside it
    ("DescMoan", 18.0),  # across the boundary at 20 s
    ("moan", 21.0),  # inside the history before the warm-up start at 25 s: raises that floor
    ("Buzz", 26.0),  # just after it: its box is drawn over that floor
    ("Growl", 38.8),  # across the boundary at 40 s
    ("Creak", 42.0),  # the warm-up of the unit at 60 s begins inside it
    ("Creak", 57.9),  # across the boundary at 60 s
    ("AscMoan", 72.0),
]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["cascade", "every-window"])
async def test_units_own_the_single_process_detections(
    mode: str, moto_server, bucket_name, trained_classifier, tmp_path: Path
) -> None:
    epoch = int(utc_now().timestamp()) - 3600
    stream = build_stream(epoch, float(SECONDS), PLACED, rotate=3)
    path = write_config(tmp_path, moto_server.endpoint_url, bucket_name, NODE, trained_classifier)
    extra = f'[cluster]\nunit_s = 20.0\nwarmup_s = 15.0\n[detector]\nmode = "{mode}"\n'
    path.write_text(path.read_text() + extra)
    config = load_config(path, env={})
    span = ReplayRange((NODE,), stream.start_utc, stream.start_utc + timedelta(seconds=SECONDS))
    async with synthetic_node(moto_server.endpoint_url, bucket_name, NODE) as node:
        await node.set_latest(epoch)
        await publish(node, stream, range(len(stream.segments)))
        whole = Daemon(
            config,
            ReplayMode(span.start, span.end),
            [NODE],
            outputs=[FileOutput(FileSettings(tmp_path / "whole"))],
            serve_http=False,
        )
        assert await whole.run(asyncio.Event()) == 0
        results = await replay_in_units(config, span, tmp_path / "units")
    single = detections(tmp_path / "whole")
    assert sum(m["status"] == "closed" for m in single) >= 5
    assert sorted(map(summary, detections(tmp_path / "units"))) == sorted(map(summary, single))
    assert [r.unit.start for r in results] == [
        span.start + timedelta(seconds=s) for s in (0, 20, 40, 60)
    ]
