"""An Orcasound node in the emulated bucket, or in a local mirror directory in the bucket's
layout: latest.txt, playlists of both generations, segments.

On S3, uploads go through a signed admin client (as the nodes' own uploads do); objects are
public-read so that the code under test reads them anonymously, like the real bucket. In a
mirror, each file is written whole under a temporary name and renamed (as ``aws s3 sync`` does).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from aiobotocore.session import AioSession, get_session

from monitor.ingest.demo_node import legacy_playlist, write_object

# The two stores the readers run on (tests about reading parametrize ``store_kind`` over both).
STORE_KINDS = ("s3", "local")
SAMPLES = Path(__file__).resolve().parent.parent / "data" / "orcasound-hls" / "normal"
PACIFIC_DAYLIGHT = timezone(timedelta(hours=-7))


def real_segments() -> list[bytes]:
    """The real Orcasound .ts files, in a fixed order."""
    return [path.read_bytes() for path in sorted(SAMPLES.glob("*.ts"))]


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


class Uploader(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...

    async def delete(self, key: str) -> None: ...


@dataclass
class S3Uploader:
    admin: Any  # a signed aiobotocore S3 client
    bucket: str

    async def put(self, key: str, data: bytes) -> None:
        await self.admin.put_object(Bucket=self.bucket, Key=key, Body=data, ACL="public-read")

    async def delete(self, key: str) -> None:
        await self.admin.delete_object(Bucket=self.bucket, Key=key)


@dataclass
class MirrorUploader:
    root: Path

    async def put(self, key: str, data: bytes) -> None:
        write_object(self.root, key, data)

    async def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)


@dataclass
class SyntheticNode:
    uploader: Uploader
    bucket: str
    node: str
    samples: list[bytes]
    endpoint_url: str  # what S3Settings.endpoint_url must be to read it

    @property
    def admin(self) -> Any:
        """The signed S3 client (S3 nodes only)."""
        if not isinstance(self.uploader, S3Uploader):
            raise TypeError("a mirror node has no S3 client")
        return self.uploader.admin

    def key(self, epoch: int, name: str) -> str:
        return f"{self.node}/hls/{epoch}/{name}"

    async def put(self, key: str, body: bytes | str) -> None:
        data = body.encode() if isinstance(body, str) else body
        await self.uploader.put(key, data)

    async def delete(self, key: str) -> None:
        await self.uploader.delete(key)

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
        uploader = S3Uploader(admin, bucket)
        yield SyntheticNode(uploader, bucket, node, real_segments(), endpoint_url)


def mirror_node(root: Path, bucket: str, node: str = "rpi_test_node") -> SyntheticNode:
    """A node in a local mirror directory (created here) read as bucket ``bucket``."""
    root.mkdir(parents=True, exist_ok=True)
    return SyntheticNode(MirrorUploader(root), bucket, node, real_segments(), root.as_uri())


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)
