"""Media and API benchmark: media write time per detection, API latency under 50 concurrent
clients, index size per 10k detections.

- media: ``MediaWriter.write_now`` (FLAC + Ogg/Opus + spectrogram PNG, atomic files) on real
  Orcasound audio for clips of 7, 20 and 60 s, thread CPU time per detection; baseline in the
  same run: decoding the same seconds of the real AAC segments (the pipeline's own per-second
  work), so the ratio says what media costs next to ingest.
- API: a health server with the API over an index of 10k detections on loopback; 50 aiohttp
  clients, each sending requests back to back (a page of 50 detections, one detection by id);
  latency p50/p95; baseline: ``/healthz`` under the same load (the server's floor).
- index: the SQLite file for 10k closed detections (with media and a review each tenth) against
  the same messages as JSON lines.

Run: ``.venv/bin/python bench/media_api.py [--clients 50] [--requests 40]``.
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
from datetime import timedelta
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.api.routes import Api, ApiSettings  # noqa: E402
from monitor.audio.audiofile import read_audio  # noqa: E402
from monitor.detect.records import DetectionMedia  # noqa: E402
from monitor.detect.wire import encode  # noqa: E402
from monitor.health.board import HealthBoard  # noqa: E402
from monitor.health.http import HealthServer, HttpSettings  # noqa: E402
from monitor.health.metrics import Metrics  # noqa: E402
from monitor.index.store import DetectionIndex, IndexSettings  # noqa: E402
from monitor.media.capture import Clip, ClipAudio  # noqa: E402
from monitor.media.writer import MediaSettings, MediaWriter  # noqa: E402
from monitor.timebase import utc_now  # noqa: E402
from tests.support.detections import detection_series  # noqa: E402

DATA = ROOT / "tests" / "data"
RATE = 48_000


def bench_media(directory: Path) -> list[dict[str, float]]:
    paths = sorted((DATA / "orcasound-hls" / "normal").glob("*.ts"))
    # baseline: decoding the real segments, CPU time per audio second
    started = time.thread_time()
    parts = [read_audio(path)[0].mean(axis=0) for path in paths]
    bed = np.concatenate(parts)
    decode_cpu_per_s = (time.thread_time() - started) / (bed.shape[0] / RATE)
    writer = MediaWriter(MediaSettings(directory=directory))
    writer.retention.scan()
    detection = next(m for m in detection_series(2) if m.status == "closed")
    rows = []
    for seconds in (7.0, 20.0, 60.0):
        samples = np.resize(bed, round(seconds * RATE)).astype(np.float32)
        clip = ClipAudio(Clip(samples, RATE, detection.summary.start_utc - timedelta(seconds=2)))
        times = []
        for _ in range(5):
            cpu = time.thread_time()
            writer.write_now(detection, clip)
            times.append(time.thread_time() - cpu)
        cpu_s = statistics.median(times)
        rows.append(
            {
                "clip_s": seconds,
                "cpu_ms": cpu_s * 1000,
                "decode_ms": decode_cpu_per_s * seconds * 1000,
                "ratio": cpu_s / (decode_cpu_per_s * seconds),
                "bytes": sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()),
            }
        )
    return rows


def fill_index(path: Path, count: int) -> tuple[DetectionIndex, list[str], int]:
    index = DetectionIndex(IndexSettings(path=path))
    index.open()
    template = next(m for m in detection_series(2) if m.status == "closed")
    ids, jsonl_bytes = [], 0
    messages = []
    for number in range(count):
        start = template.summary.start_utc + timedelta(seconds=30 * number)
        summary = dataclasses.replace(
            template.summary,
            id=f"{template.id[:-12]}{number:012x}",
            start_utc=start,
            end_utc=start + timedelta(seconds=8),
        )
        url = f"media/rpi_orcasound_lab/{start:%Y-%m-%d}/{summary.id}"
        media = DetectionMedia(f"{url}.ogg", f"{url}.flac", f"{url}.png", start)
        wire = encode(dataclasses.replace(template, summary=summary, media=media))
        messages.append(wire)
        jsonl_bytes += len(json.dumps(wire, separators=(",", ":"))) + 1
        ids.append(summary.id)
    index.put_many(messages)
    for detection_id in ids[::10]:
        index.review(detection_id, "confirmed", "ok", utc_now())
    return index, ids, jsonl_bytes


async def bench_api(index: DetectionIndex, ids: list[str], clients: int, requests: int) -> dict:
    metrics = Metrics()
    board = HealthBoard(metrics=metrics)
    api = Api(ApiSettings(), index, board=board)
    server = HealthServer(HttpSettings(port=0), board, metrics, [api.install])
    port = await server.start()
    base = f"http://127.0.0.1:{port}"
    connector = aiohttp.TCPConnector(limit=clients)
    results: dict[str, list[float]] = {"healthz": [], "page": [], "one": []}
    try:
        async with aiohttp.ClientSession(connector=connector) as session:

            async def client(number: int) -> None:
                for request in range(requests):
                    kind = ("healthz", "page", "one")[request % 3]
                    if kind == "healthz":
                        url = f"{base}/healthz"
                    elif kind == "page":
                        url = f"{base}/api/v1/detections?limit=50&feed=rpi_orcasound_lab"
                    else:
                        url = f"{base}/api/v1/detections/{ids[(number * 97 + request) % len(ids)]}"
                    began = time.perf_counter()
                    async with session.get(url) as response:
                        await response.read()
                        assert response.status == 200, (url, response.status)
                    results[kind].append(time.perf_counter() - began)

            began = time.perf_counter()
            await asyncio.gather(*(client(n) for n in range(clients)))
            wall = time.perf_counter() - began
    finally:
        await server.close()

    def pct(values: list[float], q: float) -> float:
        return float(np.percentile(values, q) * 1000)

    out = {
        kind: {"p50_ms": pct(v, 50), "p95_ms": pct(v, 95), "n": len(v)}
        for kind, v in results.items()
    }
    out["requests_per_s"] = sum(len(v) for v in results.values()) / wall
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--detections", type=int, default=10_000)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for row in bench_media(root / "media"):
            print(
                f"media {row['clip_s']:>4.0f} s clip: {row['cpu_ms']:7.1f} ms CPU per detection "
                f"(decoding that audio: {row['decode_ms']:6.1f} ms; ratio {row['ratio']:.1f}x)"
            )
        cpu = time.process_time()
        index, ids, jsonl_bytes = fill_index(root / "index.sqlite", args.detections)
        fill_s = time.process_time() - cpu
        index_bytes = sum(p.stat().st_size for p in root.glob("index.sqlite*") if p.is_file())
        print(
            f"index: {args.detections} detections → {index_bytes / 1e6:.1f} MB "
            f"(JSON lines of the same messages: {jsonl_bytes / 1e6:.1f} MB, "
            f"ratio {index_bytes / jsonl_bytes:.2f}); written in {fill_s:.1f} s CPU"
        )
        api = asyncio.run(bench_api(index, ids, args.clients, args.requests))
        for kind in ("healthz", "page", "one"):
            row = api[kind]
            print(
                f"api {kind:8s} p50 {row['p50_ms']:7.1f} ms  p95 {row['p95_ms']:7.1f} ms  "
                f"(n={row['n']}, {args.clients} concurrent clients)"
            )
        print(f"api throughput: {api['requests_per_s']:.0f} requests/s")
        index.close()


if __name__ == "__main__":
    main()
