"""The local mirror store's own edges: key safety, missing root, caps, conditional GETs, listing,
selection through ``s3.endpoint_url``, and a directory that grows while it is followed."""

from __future__ import annotations

import asyncio
import os
from contextlib import aclosing
from pathlib import Path

import pytest

from monitor.cli.main import main
from monitor.ingest.archive import read_archive
from monitor.ingest.live import SegmentCursor, follow_live
from monitor.ingest.local_store import LocalStore, UnsafeKey, local_root
from monitor.ingest.s3 import S3Settings, S3Store, open_store
from monitor.ingest.slots import Segment
from monitor.ingest.store import (
    BucketMissingError,
    NotModified,
    S3Object,
    S3ObjectTooLarge,
)
from monitor.timebase import from_epoch
from tests.ingest.test_live import FAST, brief, take
from tests.support.synthetic_node import mirror_node

E1 = 1717761600
E2 = E1 + 100


def settings(root: Path, **overrides: object) -> S3Settings:
    return S3Settings(bucket="mirror", endpoint_url=root.as_uri(), **overrides)  # type: ignore[arg-type]


def test_file_urls_name_the_root() -> None:
    assert local_root("file:///srv/orcasound") == Path("/srv/orcasound")
    assert local_root("file://localhost/srv/o%20s") == Path("/srv/o s")
    assert local_root("file://var/demo/mirror") == Path("var/demo/mirror")
    assert local_root("file:var/demo/mirror") == Path("var/demo/mirror")
    with pytest.raises(ValueError):
        S3Settings(endpoint_url="file://")


async def test_open_store_picks_the_store_from_the_endpoint(tmp_path, moto_server) -> None:
    async with open_store(settings(tmp_path)) as store:
        assert isinstance(store, LocalStore) and store.root == tmp_path
    async with open_store(S3Settings(bucket="b", endpoint_url=moto_server.endpoint_url)) as store:
        assert isinstance(store, S3Store)


async def test_keys_that_leave_the_root_are_refused(tmp_path) -> None:
    root = tmp_path / "mirror"
    (root / "node").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("outside")
    async with open_store(settings(root)) as store:
        for key in ("../secret.txt", "node/../../secret.txt", "/etc/passwd", "node//x", "a\\b"):
            with pytest.raises(UnsafeKey):
                await store.get(key)
        for prefix in ("../", "node/../", "..", "/"):
            with pytest.raises(UnsafeKey):
                await store.list(prefix, delimiter="/")
        assert await store.get("node/secret.txt") is None


async def test_a_missing_root_is_a_missing_bucket_at_once(tmp_path) -> None:
    async with open_store(settings(tmp_path / "nowhere")) as store:
        with pytest.raises(BucketMissingError, match="nowhere"):
            await store.get("rpi_x/latest.txt")
        with pytest.raises(BucketMissingError):
            await store.list("rpi_x/hls/", delimiter="/")
        async with asyncio.timeout(5):
            with pytest.raises(BucketMissingError):
                async with aclosing(follow_live(store, "rpi_x", FAST)) as items:
                    await anext(items)
            with pytest.raises(BucketMissingError):
                span = (from_epoch(E1), from_epoch(E1 + 60))
                async with aclosing(read_archive(store, "rpi_x", *span)) as items:
                    await anext(items)


async def test_size_caps_conditional_gets_and_mtime(tmp_path) -> None:
    node = mirror_node(tmp_path, "mirror", node="n")
    await node.put("n/big.bin", b"x" * 5000)
    await node.put("n/latest.txt", f"{E1}\n")
    mtime = 1_717_761_700.25
    os.utime(tmp_path / "n" / "latest.txt", (mtime, mtime))
    async with open_store(settings(tmp_path)) as store:
        with pytest.raises(S3ObjectTooLarge) as refused:
            await store.get("n/big.bin", max_bytes=4096)
        assert refused.value.size == 5000 and store.stats.too_large == 1
        first = await store.get("n/latest.txt")
        assert isinstance(first, S3Object) and first.text == f"{E1}\n"
        assert first.last_modified == from_epoch(mtime)
        assert isinstance(await store.get("n/latest.txt", etag=first.etag), NotModified)
        since = from_epoch(mtime)
        assert isinstance(await store.get("n/latest.txt", if_modified_since=since), NotModified)
        await node.set_latest(E2)  # the same size, replaced (a new file)
        os.utime(tmp_path / "n" / "latest.txt", (mtime, mtime))
        second = await store.get("n/latest.txt", etag=first.etag)
        assert isinstance(second, S3Object) and second.text == f"{E2}\n"
        assert second.etag != first.etag
        assert await store.get("n/none.txt") is None and store.stats.not_found == 1


async def test_listing_pages_prefixes_and_hidden_files(tmp_path) -> None:
    node = mirror_node(tmp_path, "mirror", node="n")
    for epoch in (E1, E2, E2 + 5):
        await node.put_segment(epoch, 0)
    await node.put_segments(E1, [1, 2])
    (tmp_path / "n" / "hls" / str(E1) / ".live003.ts.partial").write_bytes(b"half")
    async with open_store(settings(tmp_path, list_page_size=2)) as store:
        folders = await store.list("n/hls/17", delimiter="/")
        assert folders.prefixes == [f"n/hls/{e}/" for e in (E1, E2, E2 + 5)]
        assert folders.objects == []
        assert store.stats.lists == 2  # three prefixes, two to a page
        inside = await store.list(f"n/hls/{E1}/")
        assert inside.keys == [f"n/hls/{E1}/live{n:03d}.ts" for n in range(3)]
        assert [o.size for o in inside.objects] == [len(node.sample(n)) for n in range(3)]
        everything = await store.list("n/")
        assert len(everything.keys) == 5 and everything.prefixes == []
        assert (await store.list("other/")).keys == []


async def test_a_growing_mirror_is_followed_live_across_a_restart(tmp_path) -> None:
    """A writer extends the mirror (segments, playlist, then a new folder) while the follower
    reads it through ``open_store``: every slot, in order, no gap but the restart."""
    node = mirror_node(tmp_path, "mirror")
    await node.set_latest(E1)
    await node.put_segment(E1, 0)

    async def writer() -> None:
        for number in range(1, 4):
            await asyncio.sleep(0.1)
            await node.put_segment(E1, number)
            await node.put_legacy_playlist(E1, range(number + 1))
        await asyncio.sleep(0.1)
        await node.put_segment(E2, 0)
        await node.set_latest(E2)
        await asyncio.sleep(0.1)
        await node.put_segment(E2, 1)

    async with open_store(settings(tmp_path)) as store:
        follow = follow_live(store, node.node, FAST, cursor=SegmentCursor(E1, 0))
        async with aclosing(follow) as items:
            task = asyncio.create_task(writer())
            got = await take(items, 7)
            await task
    assert brief(got) == [
        *[("seg", E1, n) for n in range(4)],
        ("restart", None, None),
        ("seg", E2, 0),
        ("seg", E2, 1),
    ]
    assert all(i.data == node.sample(i.ref.number) for i in got if isinstance(i, Segment))


def test_fetch_reads_a_mirror(tmp_path) -> None:
    node = mirror_node(tmp_path / "mirror", "mirror")
    asyncio.run(node.put_segments(E1, range(3)))
    out = tmp_path / "x.wav"
    argv = ["fetch", "--feed", node.node, "--start", "2024-06-07T12:00:02Z", "--duration", "30s"]
    argv += ["-o", str(out), "--endpoint-url", node.endpoint_url, "--no-progress"]
    assert main(argv) == 0
    assert out.stat().st_size > 30 * 48_000
