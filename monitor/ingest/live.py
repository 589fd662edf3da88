"""Following one feed's live stream, segment by segment, never skipping a slot.

The cursor is "the next segment to yield" (folder epoch, number). Each step either yields that
segment (a 0-byte file becomes an "empty" gap) or waits for it. While waiting, the follower polls
with cheap requests: the segment key itself (segments are on S3 before the playlist lists them),
``latest.txt`` and ``live.m3u8`` with conditional GETs, and the next key or two directly.

A slot becomes a "missing" gap only on evidence: a later segment of the same folder exists and
the slot stayed absent for ``missing_grace_s``. When ``latest.txt`` names a newer folder, the old
folder is finished from a LIST of its keys (its playlist may lag or never list its tail) once the
grace time has passed, then the follower moves to the next folder, with a "restart" gap covering
the time between the two.

An optional ``FollowerObserver`` hears what the follower sees of the node itself: ``latest.txt``
missing or present, and the S3 Last-Modified of the current folder's playlist (a 304 says
"unchanged", so it reports nothing). The feed's health turns that into Absent and Offline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import ParamSpec, Protocol, TypeVar

from monitor.health.logs import get_logger
from monitor.ingest.archive import ArchiveSettings, folders_after, read_archive
from monitor.ingest.keys import folder_prefix, latest_key, playlist_key
from monitor.ingest.numbers import parse_epoch
from monitor.ingest.playlist import (
    Playlist,
    PlaylistError,
    bad_segment_name,
    parse_playlist,
    segment_number,
)
from monitor.ingest.slots import (
    GAP_EMPTY,
    GAP_MISSING,
    GAP_OVERSIZED,
    GAP_RESTART,
    Segment,
    SegmentGap,
    make_segment,
    segment_key,
    slot_gap,
    slot_ref,
    slot_start,
)
from monitor.ingest.store import NotModified, S3Object, S3ObjectTooLarge, S3Unavailable, Store
from monitor.ingest.timing import TimingSettings, TimingSource, folder_audio_start, number_covering
from monitor.limits import check_limits
from monitor.timebase import from_epoch, require_aware, utc_now

log = get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FollowerSettings:
    poll_interval_s: float = field(default=2.0, metadata={"min": 0.0})
    # how long a slot may stay absent while later segments exist before it becomes a gap; also
    # how long after a restart the old folder may still receive its last upload
    missing_grace_s: float = field(default=60.0, metadata={"min": 0.0})
    # after a segment that arrived while we waited, the next cannot come for ~10 s: stay quiet
    quiet_after_arrival_s: float = field(default=6.0, metadata={"min": 0.0})
    probe_ahead: int = field(default=2, metadata={"min": 0})  # keys fetched ahead while waiting
    # polling slows down to this while S3 keeps failing
    outage_backoff_max_s: float = field(default=60.0, metadata={"gt": 0.0})
    # a latest.txt epoch further than this ahead of our clock is refused (a node with a wrong
    # clock): the feed waits as if latest.txt were missing, and reads it again each poll
    max_future_skew_s: float = field(default=3600.0, metadata={"gt": 0.0})
    timing: TimingSettings = field(default_factory=TimingSettings)
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)

    def __post_init__(self) -> None:
        check_limits(self)


@dataclass(frozen=True, slots=True)
class SegmentCursor:
    """The next segment to yield; persist it to resume without losing or repeating audio."""

    folder_epoch: int
    number: int


def cursor_after(item: Segment | SegmentGap) -> SegmentCursor | None:
    """The cursor that follows ``item`` (None for items not tied to one slot)."""
    if item.ref is None:
        return None
    return SegmentCursor(item.ref.folder_epoch, item.ref.number + 1)


class FollowerObserver(Protocol):
    """What the follower reports about the node; awaited in the follower's loop: be quick."""

    async def latest_missing(self) -> None: ...

    async def latest_seen(self, epoch: int) -> None: ...

    async def playlist_modified(self, folder_epoch: int, last_modified: datetime) -> None:
        """The playlist of the node's current folder, as read; ``last_modified`` aware UTC."""
        ...


@dataclass(slots=True)
class _Watch:
    """What the follower knows about a feed between polls."""

    store: Store
    node: str
    settings: FollowerSettings
    observer: FollowerObserver | None = None
    latest_epoch: int | None = None
    latest_etag: str | None = None
    warned: set[str] = field(default_factory=set)
    # observer only: when the current folder's playlist was last asked for, and that folder
    # while the follower is still in an older one
    node_checked_at: float | None = None
    current: _Folder | None = None

    def warn_once(self, event: str, **details: object) -> None:
        if event not in self.warned:
            self.warned.add(event)
            log.warning(event, node=self.node, **details)

    def refuse(self, event: str, *, folder: int | None = None, **details: object) -> None:
        """Bucket content that cannot be used: counted every time (by kind), logged once per
        kind and folder."""
        self.store.reject(event)
        self.warn_once(event if folder is None else f"{event}:{folder}", **details)

    async def refresh_latest(self) -> int | None:
        key = latest_key(self.node)
        try:
            found = await self.store.get(
                key, etag=self.latest_etag, max_bytes=self.store.settings.max_text_bytes
            )
        except S3ObjectTooLarge as error:
            self.refuse("latest_txt_too_large", key=key, error=str(error))
            return await self._latest_unusable()
        if isinstance(found, NotModified):
            return self.latest_epoch
        if found is None:
            self.warn_once("latest_txt_missing", key=key)
            self.latest_etag = None  # the same text uploaded again must read as present
            if self.observer is not None:
                await self.observer.latest_missing()
            return self.latest_epoch
        text = found.text.strip()
        skew = timedelta(seconds=self.settings.max_future_skew_s)
        epoch = parse_epoch(text, latest=utc_now() + skew)
        if epoch is None:
            # Not stored as seen (no ETag kept): the next poll reads it again.
            future = parse_epoch(text) is not None
            event = "latest_txt_in_future" if future else "latest_txt_unreadable"
            self.refuse(event, key=key, text=text[:40])
            return await self._latest_unusable()
        self.latest_etag = found.etag
        self.latest_epoch = epoch
        if self.observer is not None:
            await self.observer.latest_seen(self.latest_epoch)
        return self.latest_epoch

    async def _latest_unusable(self) -> int | None:
        """latest.txt names no usable folder: keep the one known, else the feed is absent."""
        self.latest_etag = None
        if self.latest_epoch is None and self.observer is not None:
            await self.observer.latest_missing()
        return self.latest_epoch

    def node_check_due(self) -> bool:
        checked = self.node_checked_at
        return checked is None or time.monotonic() - checked >= self.settings.poll_interval_s

    async def wait_latest(self) -> int:
        """Poll until ``latest.txt`` names a folder (a node that never started has none)."""
        while True:
            epoch = await guarded(self, self.refresh_latest)
            if epoch is not None:
                return epoch
            await asyncio.sleep(self.settings.poll_interval_s)


async def guarded(
    watch: _Watch, step: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run one polling step, riding out S3 outages (never the follower's end)."""
    delay = watch.settings.poll_interval_s
    while True:
        try:
            return await step(*args, **kwargs)
        except S3Unavailable as error:
            log.warning("s3_outage", node=watch.node, error=str(error), retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(max(delay * 2, 0.05), watch.settings.outage_backoff_max_s)


@dataclass(slots=True)
class _Folder:
    """One folder being followed."""

    epoch: int
    playlist_etag: str | None = None
    playlist_last: int | None = None
    known_pdt: dict[int, datetime] = field(default_factory=dict)
    ahead: dict[int, S3Object | S3ObjectTooLarge] = field(default_factory=dict)
    missing_since: dict[int, float] = field(default_factory=dict)
    superseded_at: float | None = None
    final_last: int | None = None  # last number on S3 once the folder is closed
    # An empty/oversized slot is held until the next item: if it is the folder's last, the
    # switch cuts it off where the next folder's audio starts.
    held: SegmentGap | None = None
    # start of the slots without audio since the folder's last segment (the restart gap's start)
    tail_start: datetime | None = None

    def gap(self, gap: SegmentGap) -> SegmentGap:
        if self.tail_start is None:
            self.tail_start = gap.start_utc
        return gap


def _read_playlist(data: bytes) -> Playlist:
    return parse_playlist(data.decode("utf-8", errors="replace"))


async def _refresh_playlist(watch: _Watch, folder: _Folder) -> None:
    key = playlist_key(watch.node, folder.epoch)
    limit = watch.store.settings.max_text_bytes
    try:
        found = await watch.store.get(key, etag=folder.playlist_etag, max_bytes=limit)
    except S3ObjectTooLarge as error:
        watch.refuse("playlist_too_large", folder=folder.epoch, key=key, error=str(error))
        return
    # only the folder latest.txt names tells whether the node uploads now
    current = watch.latest_epoch is not None and folder.epoch >= watch.latest_epoch
    if watch.observer is not None and current:
        watch.node_checked_at = time.monotonic()
        if isinstance(found, S3Object) and found.last_modified is not None:
            # even an unreadable playlist shows that the node is uploading
            await watch.observer.playlist_modified(folder.epoch, found.last_modified)
    if not isinstance(found, S3Object):
        return  # unchanged, or no playlist yet (a fresh folder)
    try:
        # off the loop: a playlist of up to max_text_bytes takes a while to parse
        playlist = await asyncio.to_thread(_read_playlist, found.data)
    except PlaylistError as error:
        watch.refuse("playlist_unreadable", folder=folder.epoch, key=key, error=str(error))
        return
    folder.playlist_etag = found.etag
    if playlist.last_number is not None:
        folder.playlist_last = max(folder.playlist_last or -1, playlist.last_number)
    folder.known_pdt.update(playlist.program_date_times)


async def _observe_node(watch: _Watch, folder: _Folder, *, refresh_latest: bool) -> None:
    """Observer only: keep its view of the node current while the follower is busy elsewhere
    (catching up, or finishing a superseded folder), at most once per poll interval."""
    if watch.observer is None or not watch.node_check_due():
        return
    watch.node_checked_at = time.monotonic()
    latest = await watch.refresh_latest() if refresh_latest else watch.latest_epoch
    if latest is None:
        return
    if latest <= folder.epoch:
        await _refresh_playlist(watch, folder)
        return
    if watch.current is None or watch.current.epoch != latest:
        watch.current = _Folder(latest)
    await _refresh_playlist(watch, watch.current)


async def _listed_numbers(watch: _Watch, folder_epoch: int) -> list[int]:
    listing = await watch.store.list(folder_prefix(watch.node, folder_epoch))
    for key in filter(bad_segment_name, listing.keys):
        watch.refuse("segment_name_out_of_range", key=key[:120])
    return sorted(n for n in map(segment_number, listing.keys) if n is not None)


async def _newest_number(watch: _Watch, folder: _Folder) -> int:
    """Where "now" is in a folder: the playlist's last segment, else the last key, else 0."""
    await guarded(watch, _refresh_playlist, watch, folder)
    if folder.playlist_last is not None:
        return folder.playlist_last
    numbers = await guarded(watch, _listed_numbers, watch, folder.epoch)
    return numbers[-1] if numbers else 0


async def _fetch(watch: _Watch, folder: _Folder, number: int) -> S3Object | S3ObjectTooLarge | None:
    if number in folder.ahead:
        return folder.ahead.pop(number)
    key = segment_key(watch.node, folder.epoch, number)
    try:
        found = await watch.store.get(key, max_bytes=watch.store.settings.max_segment_bytes)
    except S3ObjectTooLarge as error:
        log.warning("segment_too_large", node=watch.node, key=key, error=str(error))
        return error
    return found if isinstance(found, S3Object) else None


async def _later_exists(watch: _Watch, folder: _Folder, number: int) -> bool:
    if folder.playlist_last is not None and folder.playlist_last > number:
        return True
    if any(n > number for n in folder.ahead):
        return True
    for probe in range(number + 1, number + 1 + watch.settings.probe_ahead):
        found = await _fetch(watch, folder, probe)
        if found is not None:
            folder.ahead[probe] = found
            return True
    return False


def _mark_superseded(watch: _Watch, folder: _Folder, latest: int) -> None:
    if folder.superseded_at is not None:
        return
    # A restart long ago (resuming behind) leaves nothing in flight: close the folder at once.
    age_s = (utc_now() - from_epoch(latest)).total_seconds()
    waited = min(watch.settings.missing_grace_s, max(0.0, age_s))
    folder.superseded_at = time.monotonic() - waited
    log.info("folder_superseded", node=watch.node, folder=folder.epoch, latest=latest)


async def _follow_folder(
    watch: _Watch, folder: _Folder, number: int
) -> AsyncIterator[Segment | SegmentGap | int]:
    """Yield the folder's slots from ``number`` on; the last item is the next cursor number."""
    settings, node, bucket = watch.settings, watch.node, watch.store.bucket
    timing = settings.timing
    pdt_first = TimingSource.PROGRAM_DATE_TIME
    quiet_until = 0.0
    waited = False
    while True:
        found = None
        if time.monotonic() >= quiet_until or number in folder.ahead:
            found = await guarded(watch, _fetch, watch, folder, number)
        if found is not None:
            ref = slot_ref(bucket, node, folder.epoch, number)
            if folder.held is not None:
                yield folder.held
                folder.held = None
            if isinstance(found, S3ObjectTooLarge) or found.size == 0:
                reason = GAP_EMPTY if isinstance(found, S3Object) else GAP_OVERSIZED
                folder.held = folder.gap(slot_gap(ref, node, reason, folder.known_pdt, timing))
            else:
                if folder.playlist_etag is None and timing.precedence is pdt_first:
                    await guarded(watch, _refresh_playlist, watch, folder)
                folder.tail_start = None
                yield make_segment(ref, node, found.data, folder.known_pdt, timing)
            if waited and folder.final_last is None:  # a closed folder's tail is all there
                quiet_until = time.monotonic() + settings.quiet_after_arrival_s
            folder.missing_since.pop(number, None)
            number += 1
            waited = False
            await guarded(watch, _observe_node, watch, folder, refresh_latest=True)
            continue
        if folder.final_last is not None:
            if number > folder.final_last:
                yield number
                return
            if folder.held is not None:
                yield folder.held
                folder.held = None
            ref = slot_ref(bucket, node, folder.epoch, number)
            yield folder.gap(slot_gap(ref, node, GAP_MISSING, folder.known_pdt, timing))
            number += 1
            continue
        if time.monotonic() < quiet_until:
            await asyncio.sleep(quiet_until - time.monotonic())
            continue
        latest = await guarded(watch, watch.refresh_latest)
        if latest is not None and latest > folder.epoch:
            _mark_superseded(watch, folder, latest)
        elif latest is not None and latest < folder.epoch:
            watch.warn_once("latest_txt_older_than_folder", latest=latest, folder=folder.epoch)
        await guarded(watch, _refresh_playlist, watch, folder)
        await guarded(watch, _observe_node, watch, folder, refresh_latest=False)
        now = time.monotonic()
        if await guarded(watch, _later_exists, watch, folder, number):
            since = folder.missing_since.setdefault(number, now)
            if now - since >= settings.missing_grace_s:
                log.info("segment_missing", node=node, folder=folder.epoch, number=number)
                if folder.held is not None:
                    yield folder.held
                    folder.held = None
                ref = slot_ref(bucket, node, folder.epoch, number)
                yield folder.gap(slot_gap(ref, node, GAP_MISSING, folder.known_pdt, timing))
                folder.missing_since.pop(number, None)
                number += 1
                continue
        if folder.superseded_at is not None and now - folder.superseded_at >= (
            settings.missing_grace_s
        ):
            numbers = await guarded(watch, _listed_numbers, watch, folder.epoch)
            folder.final_last = numbers[-1] if numbers else -1
            continue
        waited = True
        await asyncio.sleep(settings.poll_interval_s)


def _cut_at(gap: SegmentGap | None, end: datetime) -> SegmentGap | None:
    """``gap`` ending no later than ``end`` (where audio resumes); None when nothing is left."""
    if gap is None or gap.end_utc <= end:
        return gap
    if end <= gap.start_utc:
        log.info("slot_gap_overlapped", key=gap.ref.key if gap.ref else None, reason=gap.reason)
        return None
    return replace(gap, end_utc=end)


async def follow_live(
    store: Store,
    node: str,
    settings: FollowerSettings | None = None,
    *,
    cursor: SegmentCursor | None = None,
    start_at: datetime | None = None,
    observer: FollowerObserver | None = None,
) -> AsyncIterator[Segment | SegmentGap]:
    """Every slot of ``node`` from the cursor (or now, or ``start_at``) on, for ever; what it
    sees of ``latest.txt`` and the current playlist goes to ``observer``, if given."""
    settings = settings or FollowerSettings()
    timing = settings.timing
    watch = _Watch(store=store, node=node, settings=settings, observer=observer)
    if cursor is not None and start_at is not None:
        raise ValueError("give follow_live a cursor or a start time, not both")
    folder: _Folder | None = None
    if cursor is None:
        latest = await watch.wait_latest()
        if start_at is None:
            folder = _Folder(latest)
            cursor = SegmentCursor(latest, await _newest_number(watch, folder))
        else:
            start_at = require_aware(start_at)
            live_start = folder_audio_start(latest, timing)
            if start_at < live_start:
                # Earlier folders are archive reading; the live folder takes over at its start.
                same_clock = replace(settings.archive, timing=timing)
                archive = read_archive(store, node, start_at, live_start, same_clock)
                async with aclosing(archive) as items:
                    async for item in items:
                        yield item
                cursor = SegmentCursor(latest, 0)
            else:
                cursor = SegmentCursor(latest, max(0, number_covering(latest, start_at, timing)))
    if folder is None or folder.epoch != cursor.folder_epoch:
        folder = _Folder(cursor.folder_epoch)
    number = cursor.number
    log.info("follow_start", node=node, folder=folder.epoch, number=number)
    while True:
        async with aclosing(_follow_folder(watch, folder, number)) as steps:
            async for step in steps:
                if isinstance(step, int):
                    number = step
                else:
                    yield step
        # a folder closes only once latest.txt named a newer one
        latest = watch.latest_epoch if watch.latest_epoch is not None else folder.epoch
        following = await guarded(watch, folders_after, store, node, folder.epoch, latest)
        next_epoch = following[0] if following else latest
        # the old folder's audio ended with its last segment, not with slots that had none
        old_end = folder.tail_start or slot_start(folder.epoch, number, folder.known_pdt, timing)
        new_start = folder_audio_start(next_epoch, timing)
        if (held := _cut_at(folder.held, new_start)) is not None:
            yield held
        if new_start > old_end:
            yield SegmentGap(node, None, old_end, new_start, GAP_RESTART)
        log.info("folder_switch", node=node, old=folder.epoch, new=next_epoch)
        folder = _Folder(next_epoch)
        number = 0
