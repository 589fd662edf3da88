"""Decode benchmark: audio seconds decoded per wall second (one thread), bytes per audio second.

Baseline (same process, same data): PyAV's plain decode of each segment with a fresh decoder
(``av.open`` + ``decode`` + ``to_ndarray``), which is what decoding segment by segment costs.
Ours: the ``ContinuousDecoder`` (demux + one decoder per run + channel policy + channel RMS).

- real: the 12 real Orcasound segments in tests/data (not consecutive, so ours restarts a run at
  each one, as it must).
- continuous: 30 consecutive segments (5 min) made by tests/support/aac.py, decoded as one run.
- fetch: ``hydromon fetch`` of those 5 min from the moto S3 emulator to FLAC (S3 + decode +
  write), wall time, and the bytes and requests it took.

Run: ``.venv/bin/python bench/decode.py [--no-fetch] [--write-docs]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.audio.decode import ContinuousDecoder  # noqa: E402
from monitor.ingest.slots import Segment  # noqa: E402
from tests.support.aac import as_segments, encode_segments, noise  # noqa: E402

SEGMENTS = ROOT / "tests" / "data" / "orcasound-hls"
RATE = 48000


def plain_decode(data: bytes) -> int:
    """Open, decode with the stream's own (fresh) decoder, and gather the samples."""
    with av.open(io.BytesIO(data)) as container:
        samples = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    return samples.shape[1]


def fresh_per_segment(segments: list[Segment]) -> int:
    return sum(plain_decode(s.data) for s in segments)


def ours(segments: list[Segment]) -> int:
    decoder = ContinuousDecoder()
    return sum(getattr(item, "frames", 0) for item in decoder.feed_all(segments))


def rates(
    runs: list[Callable[[list[Segment]], int]], segments: list[Segment], repeats: int
) -> list[float]:
    """Audio seconds per wall second of each run, best of ``repeats``. The runs alternate
    within every repeat, so load from other processes hits them alike."""
    best = [float("inf")] * len(runs)
    samples = [0] * len(runs)
    for _ in range(repeats):
        for index, run in enumerate(runs):
            began = time.perf_counter()
            samples[index] = run(segments)
            best[index] = min(best[index], time.perf_counter() - began)
    return [n / RATE / wall for n, wall in zip(samples, best, strict=True)]


def real_segments() -> list[Segment]:
    paths = sorted(SEGMENTS.glob("*/*.ts"))
    return [
        as_segments([p.read_bytes()], feed="rpi_real", first_number=int(p.stem[4:]))[0]
        for p in paths
    ]


def bytes_per_second(segments: list[Segment]) -> dict[str, float]:
    by_channels: dict[str, list[tuple[int, int]]] = {"mono": [], "stereo": []}
    for segment in segments:
        with av.open(io.BytesIO(segment.data)) as container:
            stream = container.streams.audio[0]
            kind = "stereo" if stream.codec_context.channels == 2 else "mono"
            frames = sum(1 for p in container.demux(stream) if p.size)
        by_channels[kind].append((len(segment.data), frames * 1024))
    return {
        kind: sum(b for b, _ in rows) / (sum(n for _, n in rows) / RATE)
        for kind, rows in by_channels.items()
        if rows
    }


def fetch_through_emulator(datas: list[bytes]) -> dict[str, float]:
    from monitor.audio.decode import DecoderSettings
    from monitor.cli.fetch import fetch_range
    from monitor.ingest.archive import ArchiveSettings
    from monitor.ingest.s3 import S3Settings
    from monitor.timebase import from_epoch
    from tests.support.services import MotoServer
    from tests.support.synthetic_node import synthetic_node

    # The emulator's admin client signs its uploads: give it the same fake keys the tests use.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    epoch = 1717761600
    server = MotoServer()
    server.start()
    try:

        async def upload() -> None:
            async with synthetic_node(server.endpoint_url, "bench-bucket", "rpi_bench") as node:
                for number, data in enumerate(datas):
                    await node.put(node.key(epoch, f"live{number:03d}.ts"), data)
                await node.put_legacy_playlist(epoch, range(len(datas)))

        asyncio.run(upload())
        seconds = 10 * (len(datas) - 1)
        with tempfile.TemporaryDirectory() as folder:
            began = time.perf_counter()
            record = asyncio.run(
                fetch_range(
                    "rpi_bench",
                    from_epoch(epoch + 2),
                    from_epoch(epoch + 2 + seconds),
                    Path(folder) / "bench.flac",
                    s3=S3Settings(bucket="bench-bucket", endpoint_url=server.endpoint_url),
                    archive=ArchiveSettings(),
                    decoder=DecoderSettings(),
                    progress=False,
                )
            )
            wall = time.perf_counter() - began
    finally:
        server.stop()
    return {
        "audio_s": seconds,
        "wall_s": wall,
        "realtime": seconds / wall,
        "bytes_per_audio_s": record.bytes_fetched / seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-fetch", action="store_true", help="skip the S3 emulator part")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()

    real = real_segments()
    continuous = as_segments(encode_segments(noise(300.5, RATE, level=0.05, seed=5)))
    rows = []
    for name, segments in (("real (12 segments)", real), ("continuous (5 min)", continuous)):
        base, mine = rates([fresh_per_segment, ours], segments, args.repeats)
        rows.append((name, base, mine))
    sizes = bytes_per_second(real)
    fetched = None if args.no_fetch else fetch_through_emulator([s.data for s in continuous])

    machine = (
        f"{platform.machine()}, {_cores()} cores, Python {platform.python_version()}, "
        f"PyAV {av.__version__} (FFmpeg aac decoder), one thread; load average "
        f"{os.getloadavg()[0]:.1f} at the end of the run (the cores were shared)"
    )
    lines = [
        "## Decode",
        "",
        f"Machine: {machine}. `bench/decode.py`, best of {args.repeats}; audio seconds decoded "
        "per wall second on one thread (× real time).",
        "",
        "| data | fresh decoder per segment (PyAV) | ContinuousDecoder | ratio |",
        "|---|---|---|---|",
    ]
    for name, base, mine in rows:
        lines.append(f"| {name} | {base:,.0f}× | {mine:,.0f}× | {mine / base:.2f} |")
    lines += [
        "",
        "Bytes per audio second (real segments, MPEG-TS as stored): "
        + ", ".join(f"{k} {v / 1000:,.1f} kB/s" for k, v in sizes.items())
        + ".",
    ]
    if fetched:
        lines += [
            "",
            f"`fetch` of {fetched['audio_s']:.0f} s from the moto S3 emulator to FLAC: "
            f"{fetched['wall_s']:.2f} s wall ({fetched['realtime']:,.0f}× real time), "
            f"{fetched['bytes_per_audio_s'] / 1000:,.1f} kB of segments per audio second "
            "(synthetic 72 kb/s AAC, one PES per frame, so larger than the nodes' files).",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write_docs:
        _write_section(ROOT / "docs" / "benchmarks.md", text)
    return 0


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def _write_section(path: Path, section: str) -> None:
    """Replace (or append) the ``## Decode`` section, leaving other sections alone."""
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = current.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == "## Decode"), None)
    if start is None:
        updated = current.rstrip("\n") + "\n\n" + section
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        tail = "".join(lines[end:])
        updated = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    path.write_text(updated)


if __name__ == "__main__":
    sys.exit(main())
