"""Cluster replay benchmark: units/s and × real time on a local Ray cluster with 1 and 2 unit
workers, against the single-process replay of the same range in the same run.

The scenario is bench/e2e.py's (real Orcasound background with real humpback calls mixed in,
re-encoded as AAC/MPEG-TS, in a moto S3 server on loopback; the tests' tiny AST fine-tuned on
it), --feeds feeds of --minutes each, split into --unit-s units. One engine actor
(``engine_cpus = 0``: it shares the workers' cores), ``unit_cpus = 1``, so N CPUs = N units at
once. Times count from the driver's first unit submitted to the last published (the local
cluster's start and the engine actor's model load excluded); CPU time is the units' own
(decode, cutting, events; the engine actor's is not in it).

    nice python bench/cluster.py                 # 2 feeds × 10 min, 150 s units
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

from bench.e2e import make_config, placed_calls, replay_speed, upload  # noqa: E402
from monitor.cluster import driver  # noqa: E402
from monitor.cluster.units import ReplayRange  # noqa: E402
from monitor.health.logs import configure_logging  # noqa: E402
from monitor.publish.files import FileOutput, FileSettings  # noqa: E402
from monitor.runtime.daemon import ReplayMode  # noqa: E402
from monitor.timebase import utc_now  # noqa: E402
from tests.support.e2e import build_stream, train_classifier  # noqa: E402
from tests.support.services import MotoServer  # noqa: E402
from tests.support.synthetic_node import synthetic_node  # noqa: E402


async def cluster_run(config, span: ReplayRange, out: Path, workers: int) -> dict[str, float]:
    settings = dataclasses.replace(config.cluster, engine_cpus=0.0, unit_cpus=1.0)
    config = dataclasses.replace(config, cluster=settings)
    driver.connect("local", workers)
    try:
        replay = driver.ClusterReplay(
            config, span, [FileOutput(FileSettings(out, fsync=False))], state_dir=None
        )
        began = time.perf_counter()
        code = await replay.run(asyncio.Event())
        wall = time.perf_counter() - began
    finally:
        driver.shutdown()
    assert code == 0, code
    results = replay.results
    work = sum(r.wall_s for r in results)
    return {
        "units": len(results),
        "wall_s": wall,
        "units_per_s": len(results) / wall,
        "x_real_time": span.seconds / wall,
        "unit_cpu_s": sum(r.cpu_s for r in results),
        "unit_wall_s": work,
        "windows": sum(r.windows_scored for r in results),
        "detections": sum(len(r.messages) for r in results),
        "mean_batch": mean_batch(replay.status.engine_batches),
    }


def mean_batch(batches: dict[str, int]) -> float:
    windows = sum(int(size) * count for size, count in batches.items())
    return windows / max(1, sum(batches.values()))


def detection_keys(directory: Path) -> set[tuple[str, str, str]]:
    """(message id, start, end) of every detection message a files output wrote."""
    keys = set()
    for path in (directory / "jsonl").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            message = json.loads(line)
            keys.add((message["message_id"], message["start_utc"], message["end_utc"]))
    return keys


async def engine_call_cost(config, calls: int) -> tuple[float, float]:
    """Seconds per window scored, ``calls`` windows 32 at a time: through this process's own
    engine, and through an engine actor (what a unit pays per window)."""
    import numpy as np
    import ray

    from monitor.cluster.ray_engine import EngineActor, RemoteEngine
    from monitor.runtime import wiring

    window = np.random.default_rng(0).standard_normal(48_000).astype(np.float32) * 0.05

    async def timed(engine) -> float:
        await engine.score(window, 48_000)  # warm
        began = time.perf_counter()
        for _ in range(calls // 32):
            await asyncio.gather(*(engine.score(window, 48_000) for _ in range(32)))
        return (time.perf_counter() - began) / (calls // 32 * 32)

    _models, local = await wiring.open_engine(config)
    local.start()
    await local.wait_ready()
    try:
        own = await timed(local)
    finally:
        await local.stop()
    driver.connect("local", 2)
    try:
        actor = EngineActor.options(num_cpus=0).remote(config)
        info = await actor.ready.remote()
        through_actor = await timed(RemoteEngine(actor, info))
        ray.kill(actor)
    finally:
        driver.shutdown()
    return own, through_actor


async def main(args: argparse.Namespace) -> None:
    configure_logging(json_lines=True, level="warning")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the moto server's request lines
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}")
    moto = MotoServer()
    moto.start()
    work = Path(tempfile.mkdtemp(prefix="hydromon-bench-cluster-"))
    try:
        classifier = train_classifier(work / "tiny-ast")
        seconds = args.minutes * 60
        feeds = [f"rpi_bench_{i}" for i in range(args.feeds)]
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        epoch = int(utc_now().timestamp()) - 7200
        stream = build_stream(epoch, seconds, placed_calls(seconds))
        async with synthetic_node(moto.endpoint_url, bucket, feeds[0]) as node:
            for feed in feeds:
                await upload(node, epoch, stream, feed)
        config = make_config(work / "cfg", moto.endpoint_url, bucket, feeds, classifier, 0.5)
        config = dataclasses.replace(
            config,
            cluster=dataclasses.replace(config.cluster, unit_s=args.unit_s, warmup_s=args.warmup_s),
        )
        end = stream.start_utc + timedelta(seconds=seconds)
        _whole, single = await replay_speed(
            config, feeds, ReplayMode(stream.start_utc, end), work / "single"
        )
        print(f"single process, {len(feeds)} feeds × {args.minutes} min: {single:.0f}× real time")
        span = ReplayRange(tuple(feeds), stream.start_utc, end)
        runs = {}
        for workers in (1, 2):
            runs[workers] = await cluster_run(config, span, work / f"cluster-{workers}", workers)
            row = runs[workers]
            print(
                f"cluster, {workers} worker(s): {row['units']} units in {row['wall_s']:.1f} s = "
                f"{row['units_per_s']:.2f} units/s, {row['x_real_time']:.0f}× real time; "
                f"units' CPU {row['unit_cpu_s']:.1f} s, windows {row['windows']}, "
                f"mean engine batch {row['mean_batch']:.2f}; "
                f"detections {row['detections']}; the single-process ones: "
                f"{detection_keys(work / f'cluster-{workers}') == detection_keys(work / 'single')}"
            )
        own, through_actor = await engine_call_cost(config, 320)
        print(f"per window scored: own engine {own * 1000:.2f} ms, through an engine actor "
              f"{through_actor * 1000:.2f} ms ({through_actor / own:.2f}×)")  # fmt: skip
        ratio = runs[2]["x_real_time"] / runs[1]["x_real_time"]
        print(f"2 workers / 1 worker: {ratio:.2f}×; 1 worker / single process: "
              f"{runs[1]['x_real_time'] / single:.2f}×; load after {os.getloadavg()}")  # fmt: skip
    finally:
        moto.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="audio per feed")
    parser.add_argument("--feeds", type=int, default=2)
    parser.add_argument("--unit-s", type=float, default=150.0, help="work unit length")
    # The scenario's quiet_s is 2 s: 15 s settles a unit unless a call sits in its warm-up.
    parser.add_argument("--warmup-s", type=float, default=15.0, help="cluster.warmup_s")
    asyncio.run(main(parser.parse_args()))
