"""A local directory in the bucket's layout, read like the bucket (``s3.endpoint_url =
"file:///path"``): ``<root>/<node>/latest.txt``, ``<root>/<node>/hls/<epoch>/live.m3u8``,
``live000.ts``, … — what ``aws s3 sync s3://audio-orcasound-net/<node> <root>/<node>`` leaves.

Same answers as :class:`monitor.ingest.s3.S3Store`: a missing key is None, a missing root is
``S3BucketMissing``, size caps raise ``S3ObjectTooLarge`` unread, an unreadable file is
``S3AccessDenied``. Last-Modified is the file's mtime and the ETag is made of mtime and size, so
conditional GETs work and a directory that grows is followed live. All file I/O runs in worker
threads. Keys that would leave the root (``..``, absolute, backslashes) are refused, and names
starting with ``.`` (a writer's temporary files) are not listed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from monitor.ingest.store import (
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
    gather_pages,
)

if TYPE_CHECKING:
    from monitor.ingest.s3 import S3Settings

FILE_SCHEME = "file:"


def is_local_endpoint(endpoint_url: str | None) -> bool:
    return endpoint_url is not None and endpoint_url.startswith(FILE_SCHEME)


def local_root(endpoint_url: str) -> Path:
    """``file:///abs/dir`` (or ``file://localhost/abs/dir``) → /abs/dir; ``file://rel/dir`` or
    ``file:rel/dir`` → rel/dir, relative to the working directory."""
    if not is_local_endpoint(endpoint_url):
        raise ValueError(f"not a file: URL: {endpoint_url!r}")
    rest = endpoint_url[len(FILE_SCHEME) :]
    if rest.startswith("//"):
        rest = rest[2:]
        if rest.startswith("localhost/"):
            rest = rest[len("localhost") :]
    path = unquote(rest)
    if not path or "\0" in path:
        raise ValueError(f"file: URL names no directory: {endpoint_url!r}")
    return Path(path)


class UnsafeKey(S3Error):
    """A key or prefix that would name a path outside the mirror's root."""


def _parts(key: str, *, prefix: bool) -> list[str]:
    """The key's path components, checked; for a prefix the last one may be empty or partial."""
    if "\\" in key or "\0" in key or key.startswith("/"):
        raise UnsafeKey(f"refused key {key[:120]!r}: not a relative bucket key", key=key[:120])
    parts = key.split("/")
    checked = parts[:-1] if prefix else parts
    if any(part in ("", ".", "..") for part in checked) or parts[-1] in (".", ".."):
        raise UnsafeKey(f"refused key {key[:120]!r}: empty, '.' or '..' part", key=key[:120])
    return parts


def _etag(info: os.stat_result) -> str:
    # the inode too: a file replaced by rename within one mtime tick still reads as changed
    return f'"{info.st_ino:x}-{info.st_mtime_ns:x}-{info.st_size:x}"'


def _mtime(info: os.stat_result) -> datetime:
    return datetime.fromtimestamp(info.st_mtime_ns / 1e9, UTC)


@dataclass(frozen=True, slots=True)
class _Read:
    data: bytes
    info: os.stat_result


class LocalStore:
    """A mirror directory read as the bucket. Create it with :func:`monitor.ingest.s3.open_store`
    and ``endpoint_url = "file:///path"``."""

    def __init__(self, root: Path, settings: S3Settings):
        self.root = root
        self.settings = settings
        self.stats = RequestStats()

    @property
    def bucket(self) -> str:
        return self.settings.bucket

    def _check_root(self, key: str) -> None:
        if not self.root.is_dir():
            raise S3BucketMissing(
                f"local mirror {str(self.root)!r} is not a directory ({key!r})", key=key
            )

    def _read(self, key: str, max_bytes: int | None) -> _Read | None:
        path = self.root.joinpath(*_parts(key, prefix=False))
        try:
            with path.open("rb") as handle:
                info = os.fstat(handle.fileno())
                if max_bytes is not None and info.st_size > max_bytes:
                    raise S3ObjectTooLarge(
                        f"GET {path}: {info.st_size} bytes, over the limit of {max_bytes}",
                        key=key,
                        size=info.st_size,
                        limit=max_bytes,
                    )
                data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            self._check_root(key)
            return None
        except PermissionError as error:
            raise S3AccessDenied(f"access denied: {path}: {error}", key=key, status=403) from error
        except OSError as error:
            raise S3Unavailable(f"GET {path} failed: {error}", key=key) from error
        if max_bytes is not None and len(data) > max_bytes:  # grew while being read
            raise S3ObjectTooLarge(
                f"GET {path}: over the limit of {max_bytes} bytes",
                key=key,
                size=None,
                limit=max_bytes,
            )
        return _Read(data, info)

    async def get(
        self,
        key: str,
        *,
        etag: str | None = None,
        if_modified_since: datetime | None = None,
        max_bytes: int | None = None,
    ) -> S3Object | NotModified | None:
        self.stats.gets += 1
        try:
            found = await asyncio.to_thread(self._read, key, max_bytes)
        except S3ObjectTooLarge:
            self.stats.too_large += 1
            raise
        if found is None:
            self.stats.not_found += 1
            return None
        tag, modified = _etag(found.info), _mtime(found.info)
        unchanged = etag is not None and etag == tag
        if etag is None and if_modified_since is not None:
            unchanged = modified <= if_modified_since
        if unchanged:
            self.stats.not_modified += 1
            return NotModified(key=key, etag=etag)
        return S3Object(key=key, data=found.data, etag=tag, last_modified=modified)

    async def get_text(self, key: str) -> str | None:
        found = await self.get(key, max_bytes=self.settings.max_text_bytes)
        return found.text if isinstance(found, S3Object) else None

    def reject(self, kind: str) -> None:
        self.stats.rejected[kind] += 1

    def _entries(self, prefix: str, delimiter: str | None) -> list[ObjectInfo | str]:
        """Every key (ObjectInfo) and common prefix (str) under ``prefix``, in key order."""
        if delimiter not in (None, "/"):
            raise S3Error(f"LIST {prefix!r}: the local store supports only the '/' delimiter")
        parts = _parts(prefix, prefix=True)
        base, start = parts[:-1], parts[-1]
        directory = self.root.joinpath(*base)
        head = "".join(f"{part}/" for part in base)
        found: list[ObjectInfo | str] = []
        try:
            with os.scandir(directory) as scan:
                entries = [e for e in scan if e.name.startswith(start) and e.name[:1] != "."]
            for entry in entries:
                key = head + entry.name
                if entry.is_dir():
                    if delimiter == "/":
                        found.append(key + "/")
                    else:
                        found.extend(self._walk(Path(entry.path), key + "/"))
                elif entry.is_file():
                    found.append(_info(key, entry.stat()))
        except (FileNotFoundError, NotADirectoryError):
            self._check_root(prefix)
            return []
        except PermissionError as error:
            raise S3AccessDenied(f"access denied: LIST {directory}: {error}", key=prefix) from error
        except OSError as error:
            raise S3Unavailable(f"LIST {directory} failed: {error}", key=prefix) from error
        return sorted(found, key=lambda item: item if isinstance(item, str) else item.key)

    def _walk(self, directory: Path, head: str) -> list[ObjectInfo]:
        out: list[ObjectInfo] = []
        with os.scandir(directory) as scan:
            for entry in scan:
                if entry.name[:1] == ".":
                    continue
                if entry.is_dir():
                    out.extend(self._walk(Path(entry.path), f"{head}{entry.name}/"))
                elif entry.is_file():
                    out.append(_info(head + entry.name, entry.stat()))
        return out

    async def list_pages(
        self, prefix: str, *, delimiter: str | None = None
    ) -> AsyncIterator[Listing]:
        entries = await asyncio.to_thread(self._entries, prefix, delimiter)
        size = self.settings.list_page_size
        for begin in range(0, max(len(entries), 1), size):
            page = entries[begin : begin + size]
            self.stats.lists += 1
            yield Listing(
                objects=[item for item in page if isinstance(item, ObjectInfo)],
                prefixes=[item for item in page if isinstance(item, str)],
            )

    async def list(self, prefix: str, *, delimiter: str | None = None) -> Listing:
        return await gather_pages(self.list_pages(prefix, delimiter=delimiter))


def _info(key: str, info: os.stat_result) -> ObjectInfo:
    return ObjectInfo(key=key, size=info.st_size, etag=_etag(info), last_modified=_mtime(info))
