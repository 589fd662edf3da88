"""The one interface the readers (live follower, archive reader, ``fetch``) use to read a bucket,
and the records and errors both implementations share.

Two implementations: :class:`monitor.ingest.s3.S3Store` (the Orcasound bucket, aiobotocore) and
:class:`monitor.ingest.local_store.LocalStore` (a local directory in the bucket's layout, e.g. an
``aws s3 sync`` mirror). :func:`monitor.ingest.s3.open_store` picks one from ``S3Settings``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from monitor.ingest.s3 import S3Settings


class S3Error(Exception):
    """A request that failed for a reason retrying cannot fix, or after all retries."""

    def __init__(self, message: str, *, key: str | None = None, status: int | None = None):
        super().__init__(message)
        self.key = key
        self.status = status


class S3AccessDenied(S3Error):
    """403: the bucket or key is not public (or our credentials are refused)."""


class S3BucketMissing(S3Error):
    """The bucket itself does not exist: a configuration error (commands exit 2, the daemon
    must not restart a feed on it)."""


BucketMissingError = S3BucketMissing


class S3ObjectTooLarge(S3Error):
    """The object is larger than the caller's limit; it was not read."""

    def __init__(self, message: str, *, key: str, size: int | None, limit: int):
        super().__init__(message, key=key)
        self.size = size
        self.limit = limit


class S3Unavailable(S3Error):
    """Transient failures (5xx, timeouts, connection errors) outlasted every retry."""


@dataclass(frozen=True, slots=True)
class S3Object:
    key: str
    data: bytes
    etag: str | None
    last_modified: datetime | None  # aware UTC

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class NotModified:
    """A conditional GET found the object unchanged."""

    key: str
    etag: str | None


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None
    last_modified: datetime | None  # aware UTC


@dataclass(frozen=True, slots=True)
class Listing:
    objects: list[ObjectInfo]
    prefixes: list[str]  # CommonPrefixes when a delimiter was given

    @property
    def keys(self) -> list[str]:
        return [item.key for item in self.objects]


@dataclass(slots=True)
class RequestStats:
    """Counts of calls made by the store (one per logical request, retries counted apart)."""

    gets: int = 0
    lists: int = 0
    retries: int = 0
    not_modified: int = 0
    not_found: int = 0
    too_large: int = 0
    # bucket content refused by the readers (bad latest.txt, playlist, key names), by kind
    rejected: Counter[str] = field(default_factory=Counter)


class Store(Protocol):
    """What the readers call. Keys are the bucket's (``<node>/hls/<epoch>/live000.ts``)."""

    settings: S3Settings  # max_text_bytes / max_segment_bytes / list_page_size are the caps
    stats: RequestStats

    @property
    def bucket(self) -> str: ...

    async def get(
        self,
        key: str,
        *,
        etag: str | None = None,
        if_modified_since: datetime | None = None,
        max_bytes: int | None = None,
    ) -> S3Object | NotModified | None:
        """The object, ``NotModified`` (the ETag matches or it is not newer than
        ``if_modified_since``), or None when absent; over ``max_bytes``: ``S3ObjectTooLarge``."""
        ...

    async def get_text(self, key: str) -> str | None:
        """The object as UTF-8 text (at most ``settings.max_text_bytes``), or None."""
        ...

    def reject(self, kind: str) -> None:
        """Count bucket content a reader refused."""
        ...

    def list_pages(self, prefix: str, *, delimiter: str | None = None) -> AsyncIterator[Listing]:
        """Keys starting with ``prefix`` in key order, page by page (a delimiter rolls keys up
        into common prefixes, as S3 does)."""
        ...

    async def list(self, prefix: str, *, delimiter: str | None = None) -> Listing:
        """Every key (and common prefix) under ``prefix``, all pages."""
        ...


async def gather_pages(pages: AsyncIterator[Listing]) -> Listing:
    """All pages of a listing as one."""
    objects: list[ObjectInfo] = []
    prefixes: list[str] = []
    async for page in pages:
        objects.extend(page.objects)
        prefixes.extend(page.prefixes)
    return Listing(objects=objects, prefixes=prefixes)
