"""Shared fixtures: real redis-server, real moto S3 server, real test data."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

# No hub downloads in tests, ever; fake credentials so botocore never looks elsewhere.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-west-2")

from monitor.ingest.s3 import open_store
from monitor.ingest.store import Store
from tests.support.s3_store import store_settings
from tests.support.services import MotoServer, RedisServer
from tests.support.synthetic_node import SyntheticNode, mirror_node, synthetic_node

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def hls_samples() -> Path:
    return DATA / "orcasound-hls"


@pytest.fixture(scope="session")
def humpback_calls() -> Path:
    return DATA / "humpback-calls"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def bucket_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; tests use distinct keys."""
    server = RedisServer(workdir=tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which the test may stop and restart."""
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def trained_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny AST fine-tuned on the scenario's calls vs its background (~15 s on 2 cores)."""
    from tests.support.e2e import train_classifier

    return train_classifier(tmp_path_factory.mktemp("humpback-ast"))


@pytest.fixture(autouse=True)
def fresh_logging():
    """A test that runs ``hydromon`` in-process configures structlog to write to its captured
    stderr; later tests must not log into that file once it is closed."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def store_kind() -> str:
    """Which store ``node`` and ``store`` use: "s3" (the moto server) unless a test
    parametrizes it over ``STORE_KINDS`` (tests/support/synthetic_node.py)."""
    return "s3"


@pytest.fixture
async def node(request, store_kind, bucket_name, tmp_path) -> AsyncIterator[SyntheticNode]:
    """A synthetic node on the real moto server, or in a local mirror directory."""
    if store_kind == "local":
        yield mirror_node(tmp_path / "mirror", bucket_name)
        return
    moto_server = request.getfixturevalue("moto_server")
    async with synthetic_node(moto_server.endpoint_url, bucket_name) as created:
        yield created


@pytest.fixture
async def store(node) -> AsyncIterator[Store]:
    async with open_store(store_settings(node.endpoint_url, node.bucket)) as opened:
        yield opened
