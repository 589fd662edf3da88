"""Read-only access to the Orcasound bucket through one shared aiobotocore client.

botocore's own retries are switched off (one attempt per call) so that the retry policy is ours:
exponential backoff with full jitter on 5xx, throttling, timeouts and connection errors. A 404 is
an answer (``None``), a 304 is an answer (``NotModified``), a 403 is an error that retrying will
not fix.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore import UNSIGNED
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from monitor.backoff import backoff_delay
from monitor.health.logs import get_logger
from monitor.ingest.local_store import LocalStore, is_local_endpoint, local_root
from monitor.ingest.store import (
    BucketMissingError,
    Listing,
    NotModified,
    ObjectInfo,
    RequestStats,
    S3AccessDenied,
    S3BucketMissing,
    S3Error,
    S3Object,
    S3ObjectTooLarge,
    S3Unavailable,
    Store,
    gather_pages,
)
from monitor.limits import check_limits

log = get_logger(__name__)

T = TypeVar("T")

# The shared records and errors, importable from here as before.
__all__ = [
    "BucketMissingError",
    "Listing",
    "LocalStore",
    "NotModified",
    "ObjectInfo",
    "RequestStats",
    "S3AccessDenied",
    "S3BucketMissing",
    "S3Error",
    "S3Object",
    "S3ObjectTooLarge",
    "S3Settings",
    "S3Store",
    "S3Unavailable",
    "Store",
    "open_store",
]

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_RETRY_CODES = frozenset(
    {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling", "503"}
)
_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectTimeoutError,
    ReadTimeoutError,
    EndpointConnectionError,
    ConnectionClosedError,
    ResponseStreamingError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
)


@dataclass(frozen=True, slots=True)
class S3Settings:
    bucket: str = "audio-orcasound-net"
    region: str = "us-west-2"
    # None: AWS; "http://127.0.0.1:5000": another S3 (moto, minio); "file:///path": a local
    # mirror directory in the bucket's layout (monitor/ingest/local_store.py)
    endpoint_url: str | None = None
    anonymous: bool = True  # the Orcasound bucket is public: unsigned requests
    connect_timeout_s: float = field(default=5.0, metadata={"gt": 0.0})
    read_timeout_s: float = field(default=20.0, metadata={"gt": 0.0})
    max_attempts: int = field(default=5, metadata={"min": 1})  # per call, the first included
    backoff_base_s: float = field(default=0.25, metadata={"min": 0.0})
    backoff_max_s: float = field(default=10.0, metadata={"min": 0.0})
    max_pool_connections: int = field(default=32, metadata={"min": 1})
    list_page_size: int = field(default=1000, metadata={"min": 1, "max": 1000})
    # Largest latest.txt / live.m3u8 read (a real playlist is a few kB; a day-long one ~2 MB
    # would be a node fault): bigger objects are refused unread, logged and counted.
    max_text_bytes: int = field(default=1 << 20, metadata={"min": 1024, "max": 1 << 28})
    # Largest segment read (a real 10 s segment is 100-200 kB).
    max_segment_bytes: int = field(default=4 << 20, metadata={"min": 1 << 16, "max": 1 << 30})

    def __post_init__(self) -> None:
        if not self.bucket:
            raise ValueError("S3Settings.bucket must not be empty")
        if is_local_endpoint(self.endpoint_url):
            local_root(str(self.endpoint_url))  # a file: URL that names no directory is refused
        check_limits(self)


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


def _status(error: ClientError) -> int | None:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _is_retryable(error: BaseException) -> bool:
    if isinstance(error, ClientError):
        status = _status(error)
        return (status is not None and status >= 500) or _code(error) in _RETRY_CODES
    return isinstance(error, _TRANSIENT_ERRORS)


async def _read_at_most(body: Any, limit: int) -> bytes:
    """The body, or its first ``limit + 1`` bytes when it is longer (``read(n)`` may return
    less than ``n`` before the end)."""
    parts: list[bytes] = []
    held = 0
    while held <= limit:
        part = await body.read(limit + 1 - held)
        if not part:
            break
        parts.append(part)
        held += len(part)
    return b"".join(parts)


class S3Store:
    """One bucket, one client. Create it with :func:`open_store`."""

    def __init__(self, client: Any, settings: S3Settings, *, rng: random.Random | None = None):
        self.client = client
        self.settings = settings
        self.stats = RequestStats()
        self._rng = rng or random.Random()

    @property
    def bucket(self) -> str:
        return self.settings.bucket

    async def _with_retries(self, what: str, key: str, call: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            try:
                return await call()
            except ClientError as error:
                status, code = _status(error), _code(error)
                if code == "NoSuchBucket":
                    raise S3BucketMissing(
                        f"bucket {self.bucket!r} does not exist ({what} {key!r})",
                        key=key,
                        status=status,
                    ) from error
                if status == 403 or code == "AccessDenied":
                    raise S3AccessDenied(
                        f"access denied: {what} s3://{self.bucket}/{key}", key=key, status=403
                    ) from error
                if not _is_retryable(error):
                    raise S3Error(
                        f"{what} s3://{self.bucket}/{key} failed: {code} (HTTP {status})",
                        key=key,
                        status=status,
                    ) from error
                last: BaseException = error
            except _TRANSIENT_ERRORS as error:
                last = error
            except BotoCoreError as error:
                raise S3Error(
                    f"{what} s3://{self.bucket}/{key} failed: {error}", key=key
                ) from error
            attempt += 1
            if attempt >= self.settings.max_attempts:
                raise S3Unavailable(
                    f"{what} s3://{self.bucket}/{key} failed after {attempt} attempts: {last!r}",
                    key=key,
                    status=_status(last) if isinstance(last, ClientError) else None,
                ) from last
            self.stats.retries += 1
            delay = backoff_delay(
                attempt - 1,
                base_s=self.settings.backoff_base_s,
                max_s=self.settings.backoff_max_s,
                rng=self._rng,
            )
            log.warning("s3_retry", op=what, key=key, attempt=attempt, delay_s=round(delay, 3))
            await asyncio.sleep(delay)

    async def get(
        self,
        key: str,
        *,
        etag: str | None = None,
        if_modified_since: datetime | None = None,
        max_bytes: int | None = None,
    ) -> S3Object | NotModified | None:
        """GET ``key``: the object, ``NotModified`` (conditional GET), or None when absent.

        With ``max_bytes``, a larger object raises ``S3ObjectTooLarge`` without being read
        (its Content-Length decides; a body longer than announced is cut off at the limit)."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if etag is not None:
            params["IfNoneMatch"] = etag
        if if_modified_since is not None:
            params["IfModifiedSince"] = if_modified_since

        async def call() -> S3Object | NotModified | None:
            try:
                response = await self.client.get_object(**params)
            except ClientError as error:
                if _status(error) == 304 or _code(error) in ("304", "NotModified"):
                    return NotModified(key=key, etag=etag)
                if _code(error) in _NOT_FOUND_CODES:
                    return None
                raise
            async with response["Body"] as body:
                size = response.get("ContentLength")
                if max_bytes is not None and size is not None and int(size) > max_bytes:
                    raise S3ObjectTooLarge(
                        f"GET s3://{self.bucket}/{key}: {size} bytes, over the limit of "
                        f"{max_bytes}",
                        key=key,
                        size=int(size),
                        limit=max_bytes,
                    )
                data = await (body.read() if max_bytes is None else _read_at_most(body, max_bytes))
                if max_bytes is not None and len(data) > max_bytes:
                    raise S3ObjectTooLarge(
                        f"GET s3://{self.bucket}/{key}: over the limit of {max_bytes} bytes",
                        key=key,
                        size=None,
                        limit=max_bytes,
                    )
            return S3Object(
                key=key,
                data=data,
                etag=response.get("ETag"),
                last_modified=_utc(response.get("LastModified")),
            )

        self.stats.gets += 1
        try:
            result = await self._with_retries("GET", key, call)
        except S3ObjectTooLarge:
            self.stats.too_large += 1
            raise
        if isinstance(result, NotModified):
            self.stats.not_modified += 1
        elif result is None:
            self.stats.not_found += 1
        return result

    async def get_text(self, key: str) -> str | None:
        """The object as UTF-8 text (at most ``max_text_bytes``), or None when absent."""
        found = await self.get(key, max_bytes=self.settings.max_text_bytes)
        return found.text if isinstance(found, S3Object) else None

    def reject(self, kind: str) -> None:
        """Count bucket content a reader refused (the reader logs it)."""
        self.stats.rejected[kind] += 1

    async def list_pages(
        self, prefix: str, *, delimiter: str | None = None
    ) -> AsyncIterator[Listing]:
        """LIST page by page (each page retried on its own); callers may stop early."""
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "Bucket": self.bucket,
                "Prefix": prefix,
                "MaxKeys": self.settings.list_page_size,
            }
            if delimiter is not None:
                params["Delimiter"] = delimiter
            if token is not None:
                params["ContinuationToken"] = token

            async def call(params: dict[str, Any] = params) -> dict[str, Any]:
                return await self.client.list_objects_v2(**params)

            self.stats.lists += 1
            page = await self._with_retries("LIST", prefix, call)
            yield Listing(
                objects=[
                    ObjectInfo(
                        key=item["Key"],
                        size=int(item.get("Size", 0)),
                        etag=item.get("ETag"),
                        last_modified=_utc(item.get("LastModified")),
                    )
                    for item in page.get("Contents", [])
                ],
                prefixes=[item["Prefix"] for item in page.get("CommonPrefixes", [])],
            )
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")
            if not token:
                raise S3Error(f"LIST {prefix!r}: truncated page without a continuation token")

    async def list(self, prefix: str, *, delimiter: str | None = None) -> Listing:
        """Every key (and common prefix) under ``prefix``, all pages."""
        return await gather_pages(self.list_pages(prefix, delimiter=delimiter))


@functools.cache
def _session() -> AioSession:
    # One session per process: building one reloads botocore's service models (~0.5 s).
    return get_session()


@asynccontextmanager
async def open_store(
    settings: S3Settings | None = None, *, rng: random.Random | None = None
) -> AsyncIterator[Store]:
    """The store ``settings`` name: a :class:`LocalStore` for a ``file:`` endpoint, else an
    :class:`S3Store` around one pooled client, closed on exit."""
    settings = settings or S3Settings()
    if is_local_endpoint(settings.endpoint_url):
        yield LocalStore(local_root(str(settings.endpoint_url)), settings)
        return
    config = AioConfig(
        region_name=settings.region,
        signature_version=UNSIGNED if settings.anonymous else None,
        connect_timeout=settings.connect_timeout_s,
        read_timeout=settings.read_timeout_s,
        max_pool_connections=settings.max_pool_connections,
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    async with _session().create_client(
        "s3", region_name=settings.region, endpoint_url=settings.endpoint_url, config=config
    ) as client:
        yield S3Store(client, settings, rng=rng)
