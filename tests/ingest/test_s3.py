"""S3Store against the real moto server: answers, conditional GETs, listing, retry policy."""

from __future__ import annotations

import pytest

from monitor.ingest.s3 import (
    NotModified,
    S3AccessDenied,
    S3BucketMissing,
    S3Object,
    S3Settings,
    S3Unavailable,
    open_store,
)
from tests.support.s3_proxy import flaky_proxy
from tests.support.s3_store import store_settings
from tests.support.services import free_port


async def test_get_returns_object_none_and_not_modified(node, store):
    await node.set_latest(1717761600)
    found = await store.get("rpi_test_node/latest.txt")
    assert isinstance(found, S3Object)
    assert found.text.strip() == "1717761600"
    assert found.etag
    assert found.last_modified is not None and found.last_modified.utcoffset().total_seconds() == 0
    assert await store.get("rpi_test_node/nothing-here") is None
    unchanged = await store.get("rpi_test_node/latest.txt", etag=found.etag)
    assert isinstance(unchanged, NotModified)
    unchanged = await store.get("rpi_test_node/latest.txt", if_modified_since=found.last_modified)
    assert isinstance(unchanged, NotModified)
    await node.set_latest(1717765200)
    changed = await store.get("rpi_test_node/latest.txt", etag=found.etag)
    assert isinstance(changed, S3Object) and changed.text.strip() == "1717765200"
    assert await store.get_text("rpi_test_node/latest.txt") == "1717765200\n"
    assert await store.get_text("rpi_test_node/absent.txt") is None
    assert store.stats.not_modified == 2 and store.stats.not_found == 2


async def test_list_paginates_with_and_without_delimiter(moto_server, node):
    for epoch in (1717000000, 1717000100, 1717000200, 1718000000, 1727000000):
        await node.put(node.key(epoch, "live000.ts"), b"x")
    await node.put(node.key(1717000000, "live001.ts"), b"")
    settings = store_settings(moto_server.endpoint_url, node.bucket, list_page_size=2)
    async with open_store(settings) as store:
        listing = await store.list("rpi_test_node/hls/1717", delimiter="/")
        assert listing.prefixes == [
            "rpi_test_node/hls/1717000000/",
            "rpi_test_node/hls/1717000100/",
            "rpi_test_node/hls/1717000200/",
        ]
        assert store.stats.lists == 2  # 3 prefixes at 2 a page
        listing = await store.list("rpi_test_node/hls/1717000000/")
        assert listing.keys == [
            "rpi_test_node/hls/1717000000/live000.ts",
            "rpi_test_node/hls/1717000000/live001.ts",
        ]
        assert [o.size for o in listing.objects] == [1, 0]


async def test_503_is_retried_then_succeeds(moto_server, node):
    await node.set_latest(1717761600)
    async with (
        flaky_proxy(moto_server.endpoint_url, failures=2) as proxy,
        open_store(store_settings(proxy["url"], node.bucket)) as store,
    ):
        found = await store.get("rpi_test_node/latest.txt")
        assert isinstance(found, S3Object) and found.text.strip() == "1717761600"
        assert proxy["requests"] == 3
        assert store.stats.retries == 2


async def test_404_is_an_answer_not_a_retry(moto_server, node):
    async with (
        flaky_proxy(moto_server.endpoint_url, failures=0) as proxy,
        open_store(store_settings(proxy["url"], node.bucket)) as store,
    ):
        assert await store.get("rpi_test_node/latest.txt") is None
        assert proxy["requests"] == 1
        assert store.stats.retries == 0


async def test_403_is_not_retried(moto_server, node):
    async with (
        flaky_proxy(moto_server.endpoint_url, failures=5, status=403) as proxy,
        open_store(store_settings(proxy["url"], node.bucket)) as store,
    ):
        with pytest.raises(S3AccessDenied):
            await store.get("rpi_test_node/latest.txt")
        assert proxy["requests"] == 1


async def test_5xx_outlasting_the_retries_is_unavailable(moto_server, node):
    async with flaky_proxy(moto_server.endpoint_url, failures=10, status=500) as proxy:
        settings = store_settings(proxy["url"], node.bucket, max_attempts=3)
        async with open_store(settings) as store:
            with pytest.raises(S3Unavailable):
                await store.list("rpi_test_node/hls/")
            assert proxy["requests"] == 3


async def test_connection_refused_is_unavailable_after_retries(node):
    settings = store_settings(f"http://127.0.0.1:{free_port()}", node.bucket, max_attempts=2)
    async with open_store(settings) as store:
        with pytest.raises(S3Unavailable):
            await store.get("rpi_test_node/latest.txt")
        assert store.stats.retries == 1


async def test_missing_bucket_is_a_clear_error(moto_server, node):
    settings = store_settings(moto_server.endpoint_url, "no-such-bucket-here")
    async with open_store(settings) as store:
        with pytest.raises(S3BucketMissing):
            await store.get("rpi_test_node/latest.txt")


async def test_unsigned_reads_of_a_private_bucket_are_denied(moto_server, node):
    private = node.bucket + "-private"
    await node.admin.create_bucket(
        Bucket=private, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    await node.admin.put_object(Bucket=private, Key="private.txt", Body=b"secret")
    async with open_store(store_settings(moto_server.endpoint_url, private)) as store:
        with pytest.raises(S3AccessDenied):
            await store.get("private.txt")
        assert store.stats.retries == 0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        S3Settings(max_attempts=0)
    with pytest.raises(ValueError):
        S3Settings(list_page_size=5000)
