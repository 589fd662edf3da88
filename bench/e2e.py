"""End-to-end daemon benchmark on an emulated bucket (moto server on loopback).

The stream is the end-to-end tests' scenario: real Orcasound background with real humpback calls
mixed in, re-encoded as continuous AAC/MPEG-TS segments; the classifier is the tests' tiny AST
fine-tuned on it (or, with --full-size, a random-init AST-base with the default 10.24 s window).

  latency  `Daemon` following one live node while segments are uploaded every --pace seconds:
           per segment, upload done → its audio scored (pipeline progress), and per detection,
           upload of the segment holding the audio that opened it → "opened" on a websocket
           client. Baseline: GET + decode of one segment, nothing else.
  replay   `Daemon` over [start, end) of --minutes of audio, for 1 feed and --feeds feeds sharing
           one engine, JSON-lines output: audio seconds per wall second (× real time).
           Baseline: the same archive read + decoded, no windows, no model.

    python bench/e2e.py                       # tiny model: latency + replay
    nice python bench/e2e.py --full-size      # adds AST-base (random init) replay, 2 min
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import statistics
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

import torch  # noqa: E402
from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from monitor.audio.decode import decode_stream  # noqa: E402
from monitor.config.loader import load_config  # noqa: E402
from monitor.health.logs import configure_logging  # noqa: E402
from monitor.ingest.archive import read_archive  # noqa: E402
from monitor.ingest.live import FollowerSettings  # noqa: E402
from monitor.ingest.s3 import open_store  # noqa: E402
from monitor.publish.files import FileOutput, FileSettings  # noqa: E402
from monitor.runtime.daemon import Daemon, LiveMode, ReplayMode  # noqa: E402
from monitor.timebase import parse_utc, utc_now  # noqa: E402
from tests.support.e2e import (  # noqa: E402
    LABEL,
    Stream,
    build_stream,
    config_toml,
    playlist,
    train_classifier,
)
from tests.support.services import MotoServer  # noqa: E402
from tests.support.synthetic_node import SyntheticNode, synthetic_node  # noqa: E402

CALLS = ["AscMoan", "DescMoan", "Growl", "moan", "Creak", "Chirp", "Buzz"]


def placed_calls(seconds: float) -> list[tuple[str, float]]:
    """A call every 40 s, 13.3 s into each 40 s block."""
    return [(CALLS[i % len(CALLS)], 40.0 * i + 13.3) for i in range(int(seconds // 40))]


def full_size_checkpoint(directory: Path) -> Path:
    config = ASTConfig(
        id2label={0: "background", 1: LABEL},
        label2id={"background": 0, LABEL: 1},
        problem_type="single_label_classification",
    )
    torch.manual_seed(0)
    ASTForAudioClassification(config).save_pretrained(directory)
    ASTFeatureExtractor().save_pretrained(directory)
    return directory


async def upload(node: SyntheticNode, epoch: int, stream: Stream, feed: str) -> None:
    for number, data in enumerate(stream.segments):
        await node.put(f"{feed}/hls/{epoch}/live{number:03d}.ts", data)
    await node.put(f"{feed}/hls/{epoch}/live.m3u8", playlist(range(len(stream.segments))))
    await node.put(f"{feed}/latest.txt", f"{epoch}\n")


def make_config(workdir: Path, endpoint: str, bucket: str, feeds: list[str], classifier: Path,
                hop_s: float):  # fmt: skip
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "hydromon.toml"
    text = config_toml(
        endpoint=endpoint,
        bucket=bucket,
        node=feeds[0],
        classifier=classifier,
        workdir=workdir,
        extra_nodes=tuple(feeds[1:]),
    )
    path.write_text(text.replace("hop_s = 0.5", f"hop_s = {hop_s}"))
    return load_config(path, env={})


async def replay_speed(
    config, feeds: list[str], span: ReplayMode, out: Path
) -> tuple[float, float]:
    """× real time over the whole run, and from the moment the feeds started (model loading and
    the engine's precision probe excluded)."""
    daemon = Daemon(config, span, feeds, outputs=[FileOutput(FileSettings(out))], serve_http=False)
    began = time.perf_counter()
    run = asyncio.create_task(daemon.run(asyncio.Event()))
    await daemon.started.wait()
    started = time.perf_counter()
    code = await run
    ended = time.perf_counter()
    assert code == 0, code
    audio = sum(
        (p.progress.processed_until - span.start).total_seconds() for p in daemon.pipelines.values()
    )
    return audio / (ended - began), audio / (ended - started)


async def decode_only_speed(config, feed: str, span: ReplayMode) -> float:
    began = time.perf_counter()
    audio = 0.0
    async with open_store(config.s3) as store:
        async for item in decode_stream(read_archive(store, feed, span.start, span.end)):
            audio += getattr(item, "duration", 0.0)
    return audio / (time.perf_counter() - began)


async def live_latency(config, node: SyntheticNode, feed: str, stream: Stream, pace_s: float):
    epoch = stream.folder_epoch
    uploaded: dict[int, float] = {}
    scored: dict[int, float] = {}
    received: list[tuple[float, dict]] = []
    await node.put(f"{feed}/hls/{epoch}/live000.ts", stream.segments[0])
    await node.put(f"{feed}/hls/{epoch}/live.m3u8", playlist(range(1)))
    await node.put(f"{feed}/latest.txt", f"{epoch}\n")
    uploaded[0] = time.monotonic()
    stop = asyncio.Event()
    daemon = Daemon(config, LiveMode(), [feed])
    run = asyncio.create_task(daemon.run(stop))
    await asyncio.wait_for(daemon.started.wait(), 120)

    async def listen() -> None:
        async with connect(f"ws://127.0.0.1:{daemon.websocket_port}") as ws:
            await ws.send(json.dumps({"type": "subscribe", "kinds": ["detection"]}))
            async for raw in ws:
                received.append((time.monotonic(), json.loads(raw)))

    async def watch() -> None:
        pipeline = daemon.pipelines[feed]
        while True:
            # segments are processed in order from live000: the count says which are done
            for number in range(pipeline.progress.segments):
                scored.setdefault(number, time.monotonic())
            await asyncio.sleep(0.005)

    listener = asyncio.create_task(listen())
    watcher = asyncio.create_task(watch())
    await asyncio.sleep(1.0)
    for number in range(1, len(stream.segments)):
        await asyncio.sleep(pace_s)
        await node.put(f"{feed}/hls/{epoch}/live{number:03d}.ts", stream.segments[number])
        uploaded[number] = time.monotonic()
    await asyncio.sleep(max(3.0, pace_s))
    stop.set()
    await run
    for task in (listener, watcher):
        task.cancel()
    await asyncio.gather(listener, watcher, return_exceptions=True)
    segment = [scored[n] - uploaded[n] for n in range(1, len(stream.segments)) if n in scored]
    detection = []
    for at, message in received:
        if message.get("kind") == "detection" and message["status"] == "opened":
            audio_end = parse_utc(message["emitted_utc"]) - timedelta(
                milliseconds=message["latency_ms"]
            )
            number = stream.segment_of(audio_end - timedelta(microseconds=1))
            if number in uploaded and number > 0:
                detection.append(at - uploaded[number])
    return segment, detection


async def get_and_decode_s(config, feed: str, epoch: int, count: int) -> float:
    from monitor.audio.decode import ContinuousDecoder
    from monitor.ingest.slots import make_segment, slot_ref
    from monitor.ingest.timing import TimingSettings

    async with open_store(config.s3) as store:
        times = []
        for number in range(1, count):
            began = time.perf_counter()
            ref = slot_ref(store.bucket, feed, epoch, number)
            found = await store.get(ref.key)
            segment = make_segment(ref, feed, found.data, {}, TimingSettings())
            await asyncio.to_thread(ContinuousDecoder().feed, segment)
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def describe(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    return f"median {statistics.median(ordered):.2f} s, max {ordered[-1]:.2f} s (n={len(ordered)})"


async def main(args: argparse.Namespace) -> None:
    configure_logging(json_lines=True, level="warning")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{'cuda ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    moto = MotoServer()
    moto.start()
    work = Path(tempfile.mkdtemp(prefix="hydromon-bench-"))
    began = time.perf_counter()
    tiny = train_classifier(work / "tiny")
    print(f"tiny classifier trained in {time.perf_counter() - began:.1f} s")
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    feeds = [f"rpi_bench_{i}" for i in range(args.feeds)]
    follower = FollowerSettings(poll_interval_s=0.2, quiet_after_arrival_s=0.0)
    try:
        async with synthetic_node(moto.endpoint_url, bucket, feeds[0]) as node:
            # ---- replay ----
            epoch = int(utc_now().timestamp()) - 86_400
            seconds = args.minutes * 60.0
            stream = build_stream(epoch, seconds, placed_calls(seconds))
            for feed in feeds:
                await upload(node, epoch, stream, feed)
            config = make_config(work / "r", moto.endpoint_url, bucket, feeds, tiny, 0.5)
            span = ReplayMode(stream.start_utc, stream.start_utc + timedelta(seconds=seconds))
            base = await decode_only_speed(config, feeds[0], span)
            print(f"replay baseline (S3 read + decode only, 1 feed): {base:.0f}× real time")
            print("(replay speeds from the feeds' start: model loading excluded)")
            _, one = await replay_speed(config, feeds[:1], span, work / "r1")
            print(f"replay tiny AST, 1 feed, hop 0.5 s: {one:.0f}× real time "
                  f"({one / base:.2f} of baseline)")  # fmt: skip
            if len(feeds) > 1:
                _, many = await replay_speed(config, feeds, span, work / "rn")
                print(f"replay tiny AST, {len(feeds)} feeds, one engine: {many:.0f}× real time "
                      f"(all feeds together)")  # fmt: skip
            if args.full_size:
                full = full_size_checkpoint(work / "full")
                short = ReplayMode(span.start, span.start + timedelta(seconds=120))
                big = make_config(work / "f", moto.endpoint_url, bucket, feeds, full, 2.0)
                whole, speed = await replay_speed(big, feeds[:1], short, work / "rf")
                print(
                    "replay AST-base random init, 1 feed, 10.24 s windows, hop 2 s: "
                    f"{speed:.2f}× real time ({whole:.2f}× with model load and probe)"
                )

            # ---- live latency ----
            live_feed = "rpi_bench_live"
            live_epoch = int(utc_now().timestamp()) - 30
            live_stream = build_stream(live_epoch, args.live_segments * 10.0,
                                       placed_calls(args.live_segments * 10.0))  # fmt: skip
            live = dataclasses.replace(
                make_config(work / "l", moto.endpoint_url, bucket, [live_feed], tiny, 0.5),
                follower=follower,
            )
            segment, detection = await live_latency(live, node, live_feed, live_stream, args.pace)
            floor = await get_and_decode_s(live, live_feed, live_epoch, len(live_stream.segments))
            print(f"live, segments every {args.pace} s, poll 0.2 s, tiny AST:")
            print(f"  baseline GET + decode of one segment: {floor * 1000:.0f} ms")
            print(f"  upload → segment scored: {describe(segment)}")
            print(f"  upload → detection opened on websocket: {describe(detection)}")
    finally:
        moto.stop()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="replay length")
    parser.add_argument("--feeds", type=int, default=4, help="feeds in the multi-feed replay")
    parser.add_argument("--full-size", action="store_true", help="also AST-base (2 min)")
    parser.add_argument("--live-segments", type=int, default=12)
    parser.add_argument("--pace", type=float, default=2.0, help="seconds between uploads")
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
