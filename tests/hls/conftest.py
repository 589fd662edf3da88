"""Fixtures for the HLS client tests: a synthetic node on the real moto server, a real store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from monitor.hls.s3 import S3Settings, S3Store, open_store
from tests.support.synthetic_node import SyntheticNode, synthetic_node


def store_settings(endpoint_url: str, bucket: str, **overrides: object) -> S3Settings:
    base: dict[str, object] = {
        "bucket": bucket,
        "endpoint_url": endpoint_url,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "connect_timeout_s": 2.0,
        "read_timeout_s": 5.0,
    }
    base.update(overrides)
    return S3Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
async def node(moto_server, bucket_name) -> AsyncIterator[SyntheticNode]:
    async with synthetic_node(moto_server.endpoint_url, bucket_name) as created:
        yield created


@pytest.fixture
async def store(moto_server, node) -> AsyncIterator[S3Store]:
    async with open_store(store_settings(moto_server.endpoint_url, node.bucket)) as opened:
        yield opened
