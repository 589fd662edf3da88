"""A bucket that does not exist is a configuration error: the readers raise ``S3BucketMissing``
(= ``BucketMissingError``) at once, with a one-line message, instead of retrying or restarting;
``hydromon fetch`` exits 2."""

from __future__ import annotations

import argparse
import asyncio
from contextlib import aclosing

import pytest

from monitor.cli import fetch as fetch_command
from monitor.ingest.archive import read_archive
from monitor.ingest.live import follow_live
from monitor.ingest.s3 import BucketMissingError, S3BucketMissing, open_store
from monitor.timebase import from_epoch
from tests.ingest.test_live import FAST
from tests.support.s3_store import store_settings

E1 = 1717761600


async def test_the_follower_and_the_archive_raise_bucket_missing_at_once(moto_server):
    assert BucketMissingError is S3BucketMissing
    settings = store_settings(moto_server.endpoint_url, "no-such-bucket-anywhere")
    async with open_store(settings) as store:
        async with asyncio.timeout(5):
            with pytest.raises(BucketMissingError) as live:
                async with aclosing(follow_live(store, "rpi_x", FAST)) as items:
                    await anext(items)
            with pytest.raises(BucketMissingError) as archive:
                span = (from_epoch(E1), from_epoch(E1 + 60))
                async with aclosing(read_archive(store, "rpi_x", *span)) as items:
                    await anext(items)
        assert store.stats.retries == 0
    for error in (live.value, archive.value):
        assert "no-such-bucket-anywhere" in str(error) and "\n" not in str(error)


def test_fetch_from_a_missing_bucket_exits_2(moto_server, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="hydromon")
    fetch_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "fetch",
            "--feed",
            "rpi_x",
            "--start",
            "2024-06-07T12:00:05Z",
            "--duration",
            "30s",
            "-o",
            str(tmp_path / "x.flac"),
            "--bucket",
            "no-such-bucket-anywhere",
            "--endpoint-url",
            moto_server.endpoint_url,
            "--no-progress",
        ]
    )
    assert args.func(args) == 2
    assert not list(tmp_path.iterdir())
