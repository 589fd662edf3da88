"""An Orcasound node in the emulated bucket: latest.txt, playlists of both generations, segments.

Uploads go through a signed admin client (as the nodes' own uploads do); objects are public-read
so that the code under test reads them anonymously, like the real bucket.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from aiobotocore.session import AioSession, get_session

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "orcasound-hls" / "normal"
PACIFIC_DAYLIGHT = timezone(timedelta(hours=-7))


def real_segments() -> list[bytes]:
    """The real Orcasound .ts files, in a fixed order."""
    return [path.read_bytes() for path in sorted(SAMPLES.glob("*.ts"))]


def legacy_playlist(numbers: Iterable[int], *, media_sequence: int = 0) -> str:
    """What the ffmpeg segment muxer wrote: TARGETDURATION 11, EXTINF 10.005422, no PDT."""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}",
        "#EXT-X-ALLOW-CACHE:YES",
        "#EXT-X-TARGETDURATION:11",
    ]
    for number in numbers:
        lines += ["#EXTINF:10.005422,", f"live{number:03d}.ts"]
    return "\n".join(lines) + "\n"


def pdt_playlist(
    numbers: Iterable[int],
    pdt_of: dict[int, datetime],
    *,
    media_sequence: int = 0,
    zone: timezone = PACIFIC_DAYLIGHT,
) -> str:
    """What the ffmpeg hls muxer writes: PROGRAM-DATE-TIME (local, with offset) after EXTINF."""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-TARGETDURATION:10",
        f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}",
    ]
    for number in numbers:
        local = pdt_of[number].astimezone(zone)
        stamp = local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}"
        stamp += local.strftime("%z")
        lines += [
            "#EXTINF:10.005422,",
            f"#EXT-X-PROGRAM-DATE-TIME:{stamp}",
            f"live{number:03d}.ts",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class SyntheticNode:
    admin: Any  # a signed aiobotocore S3 client
    bucket: str
    node: str
    samples: list[bytes]

    def key(self, epoch: int, name: str) -> str:
        return f"{self.node}/hls/{epoch}/{name}"

    async def put(self, key: str, body: bytes | str) -> None:
        data = body.encode() if isinstance(body, str) else body
        await self.admin.put_object(Bucket=self.bucket, Key=key, Body=data, ACL="public-read")

    async def delete(self, key: str) -> None:
        await self.admin.delete_object(Bucket=self.bucket, Key=key)

    async def set_latest(self, epoch: int) -> None:
        await self.put(f"{self.node}/latest.txt", f"{epoch}\n")

    def sample(self, number: int) -> bytes:
        return self.samples[number % len(self.samples)]

    async def put_segment(self, epoch: int, number: int, *, empty: bool = False) -> bytes:
        data = b"" if empty else self.sample(number)
        await self.put(self.key(epoch, f"live{number:03d}.ts"), data)
        return data

    async def put_segments(self, epoch: int, numbers: Iterable[int]) -> None:
        for number in numbers:
            await self.put_segment(epoch, number)

    async def put_legacy_playlist(
        self, epoch: int, numbers: Iterable[int], *, media_sequence: int = 0
    ) -> None:
        text = legacy_playlist(numbers, media_sequence=media_sequence)
        await self.put(self.key(epoch, "live.m3u8"), text)

    async def put_pdt_playlist(
        self,
        epoch: int,
        numbers: Iterable[int],
        pdt_of: dict[int, datetime],
        *,
        media_sequence: int = 0,
    ) -> None:
        text = pdt_playlist(numbers, pdt_of, media_sequence=media_sequence)
        await self.put(self.key(epoch, "live.m3u8"), text)


@functools.cache
def _admin_session() -> AioSession:
    return get_session()


@asynccontextmanager
async def synthetic_node(
    endpoint_url: str, bucket: str, node: str = "rpi_test_node"
) -> AsyncIterator[SyntheticNode]:
    """Create a public bucket on the moto server and hand back a node to fill."""
    async with _admin_session().create_client(
        "s3", region_name="us-west-2", endpoint_url=endpoint_url
    ) as admin:
        await admin.create_bucket(
            Bucket=bucket,
            CreateBucketConfiguration={"LocationConstraint": "us-west-2"},
            ACL="public-read",
        )
        yield SyntheticNode(admin=admin, bucket=bucket, node=node, samples=real_segments())


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)
