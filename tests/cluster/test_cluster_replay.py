"""A replay on a local Ray cluster (2 worker processes on loopback) gives the single-process
replay's detections: the scenario's calls straddle the unit boundaries on purpose; a worker
killed mid-unit has its unit retried without duplicates; a driver run again skips the units it
finished."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from monitor.cluster import driver  # noqa: E402
from monitor.cluster.units import ReplayRange  # noqa: E402
from monitor.config.loader import load_config  # noqa: E402
from monitor.publish.files import FileOutput, FileSettings  # noqa: E402
from monitor.runtime.daemon import Daemon, ReplayMode  # noqa: E402
from monitor.timebase import format_utc, utc_now  # noqa: E402
from tests.support.cluster import ExitOnce  # noqa: E402
from tests.support.e2e import Stream, build_stream, publish, write_config  # noqa: E402
from tests.support.outputs import detection_summary as summary  # noqa: E402
from tests.support.outputs import jsonl_detections as detections  # noqa: E402
from tests.support.synthetic_node import synthetic_node  # noqa: E402

NODE = "rpi_e2e_cluster"
SEGMENTS = 8
UNIT_S = 20.0
# Calls across the unit boundaries at 20, 40 and 60 s, one inside the warm-up of the unit at
# 40 s, one well inside a unit. The first warm-up (4 s) is shorter than the cascade's stage-1
# history (6 s): no unit but the first can settle on it, so each runs again with a longer one.
PLACED = [
    ("DescMoan", 18.0),
    ("moan", 27.5),
    ("Growl", 38.8),
    ("Creak", 57.9),
    ("AscMoan", 72.0),
]
CLUSTER_TOML = f"""
[cluster]
unit_s = {UNIT_S}
warmup_s = 4.0
engine_cpus = 0.0
local_cpus = 2
status_interval_s = 0.5
"""


def raven_ids(directory: Path) -> list[str]:
    rows = []
    for path in sorted((directory / "raven").rglob("*.txt")):
        rows += [line.split("\t")[-1] for line in path.read_text().splitlines()[1:]]
    return rows


class Scenario:
    def __init__(self, tmp_path: Path, stream: Stream, config_path: Path) -> None:
        self.tmp_path = tmp_path
        self.stream = stream
        self.config_path = config_path
        self.config = load_config(config_path, env={})
        self.start = stream.start_utc
        self.end = stream.start_utc + timedelta(seconds=SEGMENTS * 10)

    async def single_process(self, out: Path) -> list[dict[str, Any]]:
        daemon = Daemon(
            self.config,
            ReplayMode(self.start, self.end),
            [NODE],
            outputs=[FileOutput(FileSettings(out))],
            serve_http=False,
        )
        assert await daemon.run(asyncio.Event()) == 0
        return detections(out)


@pytest.fixture
async def scenario(moto_server, bucket_name, trained_classifier, tmp_path: Path):
    epoch = int(utc_now().timestamp()) - 3600
    stream = build_stream(epoch, SEGMENTS * 10.0, PLACED, rotate=3)
    path = write_config(
        tmp_path, moto_server.endpoint_url, bucket_name, NODE, trained_classifier,
        state_dir=tmp_path / "state",
    )  # fmt: skip
    path.write_text(path.read_text() + CLUSTER_TOML)
    async with synthetic_node(moto_server.endpoint_url, bucket_name, NODE) as node:
        await node.set_latest(epoch)
        await publish(node, stream, range(len(stream.segments)))
        yield Scenario(tmp_path, stream, path)


@pytest.fixture
def local_ray() -> Iterator[None]:
    driver.connect("local", 2)
    yield
    driver.shutdown()


@pytest.mark.slow
async def test_cluster_command_gives_the_single_process_detections(scenario: Scenario) -> None:
    whole = await scenario.single_process(scenario.tmp_path / "whole")
    closed = [m for m in whole if m["status"] == "closed"]
    assert len(closed) == len(PLACED)
    # The calls really straddle the unit boundaries: detections open across them.
    starts = sorted((m["start_utc"], m["end_utc"]) for m in closed)
    boundaries = [format_utc(scenario.start + timedelta(seconds=s)) for s in (20, 40, 60)]
    assert all(any(lo < b < hi for lo, hi in starts) for b in boundaries), starts

    out = scenario.tmp_path / "cluster"
    status = scenario.tmp_path / "status.json"
    command = [
        str(Path(sys.executable).parent / "hydromon"),
        "replay",
        "--config",
        str(scenario.config_path),
        "--feed",
        NODE,
        "--start",
        format_utc(scenario.start),
        "--end",
        format_utc(scenario.end),
        "--out",
        str(out),
        "--cluster",
        "local",
        "--status-file",
        str(status),
    ]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "× real time" in done.stderr
    assert sorted(map(summary, detections(out))) == sorted(map(summary, whole))
    # Published in each feed's time order: the Raven tables are the single-process ones.
    assert raven_ids(out) == raven_ids(scenario.tmp_path / "whole")
    report = json.loads(status.read_text())
    assert report["finished"] and report["units_done"] == report["units_total"] == 4
    assert report["units_failed"] == 0 and report["eta_s"] == 0
    assert report["audio_hours_done"] == pytest.approx(80 / 3600)
    # The engine actor scored the units' windows (the cascade sends it only those around a
    # candidate, at least one per placed call).
    scored = sum(int(size) * n for size, n in report["engine_batches"].items())
    assert len(PLACED) <= scored < 160


@pytest.mark.slow
async def test_a_killed_worker_is_retried_and_the_driver_resumes(
    scenario: Scenario, local_ray: None
) -> None:
    whole = await scenario.single_process(scenario.tmp_path / "whole")
    span = ReplayRange((NODE,), scenario.start, scenario.end)
    state = scenario.tmp_path / "state"
    out = scenario.tmp_path / "cluster"
    marker = scenario.tmp_path / "killed"
    second_unit = f"{NODE}@{scenario.start + timedelta(seconds=UNIT_S):%Y%m%dT%H%M%S}Z+20s"

    # The worker running the second unit dies mid-way (once): Ray runs the unit again.
    class NoFailures:
        def add(self, feed: str, seconds: float, *, earlier: bool = False) -> None:
            pass

        def failed(self, count: int) -> None:
            raise AssertionError("no unit may fail: a dead worker's unit is retried")

    first = driver.ClusterReplay(
        scenario.config,
        span,
        [FileOutput(FileSettings(out))],
        state_dir=state,
        progress=NoFailures(),  # type: ignore[arg-type]
        hook=ExitOnce(second_unit, marker),
    )
    assert await first.run(asyncio.Event()) == 0
    assert marker.exists(), "the worker was not killed"
    assert first.status.units_failed == 0 and first.status.finished
    assert [r.unit.id for r in first.results] == [u.id for u in first.units]
    once = detections(out)
    assert len({m["message_id"] for m in once}) == len(once)  # nothing twice
    assert sorted(map(summary, once)) == sorted(map(summary, whole))
    # Every unit after the first ran again with a longer warm-up, which then held calls.
    history_s = scenario.config.detector.history_s
    assert first.results[0].attempts == 1
    assert all(r.attempts > 1 and r.warmup_s > history_s for r in first.results[1:])

    # The driver dies after publishing the last two units but before recording them: run
    # again, it skips the two recorded ones and publishes the others again, adding nothing.
    (ledger,) = state.glob("*.units.jsonl")
    ledger.write_text("".join(ledger.read_text().splitlines(keepends=True)[:2]))
    second = driver.ClusterReplay(
        scenario.config, span, [FileOutput(FileSettings(out))], state_dir=state
    )
    assert await second.run(asyncio.Event()) == 0
    assert second.status.units_done_before == 2
    assert [r.unit.id for r in second.results] == [u.id for u in second.units[2:]]
    assert detections(out) == once
