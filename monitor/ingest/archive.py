"""Reading a time range of a feed from the store (S3 or a local mirror) as ``Segment |
SegmentGap`` in time order.

Folder search: a node can hold ~17,000 ``<epoch>`` folders (a full listing takes ~20 s), so the
folders are found by LISTing ``<node>/hls/<prefix>`` with Delimiter "/", where ``<prefix>`` is the
common leading digits of the start and end epochs; the folder that covers the start (the newest
one at or before it) is found by widening the prefix one digit at a time, stopping each listing
as soon as it reaches digits already seen. Folder ``i`` covers ``[epoch_i, epoch_{i+1})``.

Inside a folder the keys (one LIST) are the truth, not the playlist; the playlist is read only for
PROGRAM-DATE-TIME. Bodies are fetched a few ahead with bounded concurrency, yielded in order.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime

from monitor.health.logs import get_logger
from monitor.ingest.keys import folder_prefix, folders_prefix, playlist_key
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
    GAP_UNAVAILABLE,
    Segment,
    SegmentGap,
    SegmentRef,
    make_segment,
    slot_gap,
    slot_ref,
    slot_start,
)
from monitor.ingest.store import S3Object, S3ObjectTooLarge, S3Unavailable, Store
from monitor.ingest.timing import TimingSettings, TimingSource, number_covering, number_start
from monitor.limits import check_limits
from monitor.timebase import format_utc, require_aware, to_epoch

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    timing: TimingSettings = field(default_factory=TimingSettings)
    prefetch: int = field(default=4, metadata={"min": 1})  # bodies in flight ahead of the consumer
    # Shortest epoch prefix listed when looking back for the folder that covers the start:
    # 4 digits = a 10^6 s (~11.6 day) block; each digit less is 10× more folders per LIST.
    lookback_prefix_digits: int = field(default=4, metadata={"min": 0})

    def __post_init__(self) -> None:
        check_limits(self)


def common_digits(a: int, b: int) -> str:
    """The leading decimal digits ``a`` and ``b`` share (the LIST prefix that holds both)."""
    left, right = str(a), str(b)
    if len(left) != len(right):
        return ""
    shared = 0
    while shared < len(left) and left[shared] == right[shared]:
        shared += 1
    return left[:shared]


def _folder_name(prefix: str) -> str:
    """``<node>/hls/<epoch>/`` → ``<epoch>``."""
    return prefix.rstrip("/").rsplit("/", 1)[-1]


def _folder_epoch(prefix: str) -> int | None:
    return parse_epoch(_folder_name(prefix))


async def _list_block(store: Store, node: str, block: str) -> list[int]:
    """Folder epochs whose decimal digits start with ``block`` (one LIST per 1000 folders)."""
    found: set[int] = set()
    async for page in store.list_pages(folders_prefix(node) + block, delimiter="/"):
        found.update(e for e in map(_folder_epoch, page.prefixes) if e is not None)
    return sorted(found)


async def folder_at_or_before(
    store: Store,
    node: str,
    epoch: int,
    *,
    min_prefix_digits: int = 4,
    covered: str | None = None,
) -> int | None:
    """The newest folder with epoch ≤ ``epoch``, widening the epoch prefix one digit at a time.

    ``covered`` is a prefix of ``epoch`` already searched without success: each wider listing
    stops as soon as it reaches it, so no folder is listed twice.
    """
    digits = str(epoch)
    longest = len(covered) - 1 if covered is not None else len(digits)
    for length in range(longest, min_prefix_digits - 1, -1):
        block = digits[:length]
        best: int | None = None
        pages = store.list_pages(folders_prefix(node) + block, delimiter="/")
        async with aclosing(pages):
            async for page in pages:
                names = [_folder_name(p) for p in page.prefixes]
                if covered is not None:
                    names = [n for n in names if n[: len(covered)] < covered]
                for name in names:
                    found = parse_epoch(name)
                    if found is not None and found <= epoch:
                        best = max(best or 0, found)
                if len(names) < len(page.prefixes):
                    break  # reached the block already searched
        if best is not None:
            return best
        covered = block
    return None


async def find_folders(
    store: Store, node: str, start_epoch: int, end_epoch: int, *, min_prefix_digits: int = 4
) -> list[int]:
    """Folders whose span ``[epoch_i, epoch_{i+1})`` meets ``[start_epoch, end_epoch)``: those
    inside the range plus the newest one at or before its start."""
    if end_epoch <= start_epoch:
        return []
    block = common_digits(start_epoch, end_epoch - 1)
    listed = await _list_block(store, node, block)
    inside = [e for e in listed if start_epoch <= e < end_epoch]
    if inside and inside[0] == start_epoch:
        return inside
    earlier = [e for e in listed if e < start_epoch]
    if earlier:
        return [earlier[-1], *inside]
    before = await folder_at_or_before(
        store, node, start_epoch, min_prefix_digits=min_prefix_digits, covered=block
    )
    return ([before] if before is not None else []) + inside


async def folders_after(store: Store, node: str, epoch: int, until: int) -> list[int]:
    """Folder epochs in ``(epoch, until]``, listing only their common-prefix block."""
    block = common_digits(epoch + 1, until)
    return [e for e in await _list_block(store, node, block) if epoch < e <= until]


@dataclass(frozen=True, slots=True)
class _Fetch:
    ref: SegmentRef
    known_pdt: dict[int, datetime]


async def folder_pdts(store: Store, node: str, folder_epoch: int) -> dict[int, datetime]:
    """PROGRAM-DATE-TIME per segment number from a folder's playlist ({} when there is none,
    or when it is too large or unreadable: logged and counted)."""
    try:
        text = await store.get_text(playlist_key(node, folder_epoch))
    except S3ObjectTooLarge as error:
        store.reject("playlist_too_large")
        log.warning("playlist_too_large", node=node, folder=folder_epoch, error=str(error))
        return {}
    if text is None:
        return {}
    try:
        playlist: Playlist = await asyncio.to_thread(parse_playlist, text)
    except PlaylistError as error:
        store.reject("playlist_unreadable")
        log.warning("playlist_unreadable", node=node, folder=folder_epoch, error=str(error))
        return {}
    return playlist.program_date_times


def _clip(gap: SegmentGap, start: datetime, end: datetime) -> SegmentGap | None:
    lo, hi = max(gap.start_utc, start), min(gap.end_utc, end)
    if hi <= lo:
        return None
    return SegmentGap(feed=gap.feed, ref=gap.ref, start_utc=lo, end_utc=hi, reason=gap.reason)


async def _plan(
    store: Store, node: str, start: datetime, end: datetime, settings: ArchiveSettings
) -> AsyncIterator[_Fetch | SegmentGap]:
    timing = settings.timing
    folders = await find_folders(
        store,
        node,
        math.floor(to_epoch(start)),
        math.ceil(to_epoch(end)),
        min_prefix_digits=settings.lookback_prefix_digits,
    )
    if not folders:
        yield SegmentGap(feed=node, ref=None, start_utc=start, end_utc=end, reason=GAP_MISSING)
        return
    first_audio = number_start(folders[0], 0, timing)
    if start < first_audio:
        yield SegmentGap(node, None, start, min(first_audio, end), GAP_MISSING)
    for index, folder in enumerate(folders):
        following = folders[index + 1] if index + 1 < len(folders) else None
        listing = await store.list(folder_prefix(node, folder))
        sizes: dict[int, int] = {}
        for item in listing.objects:
            number = segment_number(item.key)
            if number is not None:
                sizes[number] = item.size
            elif bad_segment_name(item.key):
                store.reject("segment_name_out_of_range")
                log.warning("segment_name_out_of_range", node=node, key=item.key[:120])
        known_pdt: dict[int, datetime] = {}
        if timing.precedence is TimingSource.PROGRAM_DATE_TIME:
            known_pdt = await folder_pdts(store, node, folder)
        # one slot early: PDT starts may sit a little before the number rule's
        number = max(0, number_covering(folder, start, timing) - 1)
        last = max(sizes, default=-1)
        # where the next audio after this folder starts: no gap of this folder runs past it
        tail_end = number_start(following, 0, timing) if following is not None else end
        tail_start: datetime | None = None  # first slot without audio since the last segment
        limit = store.settings.max_segment_bytes
        while number <= last and slot_start(folder, number, known_pdt, timing) < end:
            ref = slot_ref(store.bucket, node, folder, number)
            size = sizes.get(number)
            if size is None or size == 0 or size > limit:
                reason = GAP_MISSING if size is None else GAP_EMPTY if size == 0 else GAP_OVERSIZED
                if reason == GAP_OVERSIZED:
                    log.warning("segment_too_large", key=ref.key, size=size, limit=limit)
                gap = slot_gap(ref, node, reason, known_pdt, timing)
                tail_start = tail_start or gap.start_utc
                if (clipped := _clip(gap, start, min(end, tail_end))) is not None:
                    yield clipped
            else:
                tail_start = None
                if slot_start(folder, number + 1, known_pdt, timing) > start:
                    yield _Fetch(ref=ref, known_pdt=known_pdt)
            number += 1
        if following is not None:
            # the folder's audio ended with its last segment, not with slots that had none
            tail_start = tail_start or slot_start(folder, number, known_pdt, timing)
            gap = SegmentGap(node, None, tail_start, tail_end, GAP_RESTART)
        else:
            gap = SegmentGap(
                node, None, slot_start(folder, number, known_pdt, timing), end, GAP_MISSING
            )
        if (clipped := _clip(gap, start, end)) is not None:
            yield clipped


async def _resolve(
    node: str,
    item: _Fetch | SegmentGap,
    task: asyncio.Task[object] | None,
    timing: TimingSettings,
) -> Segment | SegmentGap:
    if isinstance(item, SegmentGap):
        return item
    assert task is not None
    try:
        found = await task
    except S3Unavailable as error:
        log.error("segment_unavailable", key=item.ref.key, error=str(error))
        return slot_gap(item.ref, node, GAP_UNAVAILABLE, item.known_pdt, timing)
    except S3ObjectTooLarge as error:  # grew between LIST and GET
        log.warning("segment_too_large", key=item.ref.key, error=str(error))
        return slot_gap(item.ref, node, GAP_OVERSIZED, item.known_pdt, timing)
    if not isinstance(found, S3Object):  # deleted between LIST and GET
        return slot_gap(item.ref, node, GAP_MISSING, item.known_pdt, timing)
    if found.size == 0:
        return slot_gap(item.ref, node, GAP_EMPTY, item.known_pdt, timing)
    return make_segment(item.ref, node, found.data, item.known_pdt, timing)


async def read_archive(
    store: Store,
    node: str,
    start_utc: datetime,
    end_utc: datetime,
    settings: ArchiveSettings | None = None,
) -> AsyncIterator[Segment | SegmentGap]:
    """Every 10 s slot of ``node`` meeting ``[start_utc, end_utc)``, in time order."""
    settings = settings or ArchiveSettings()
    start, end = require_aware(start_utc), require_aware(end_utc)
    if end <= start:
        raise ValueError(f"empty archive range: {format_utc(start)} .. {format_utc(end)}")
    pending: deque[tuple[_Fetch | SegmentGap, asyncio.Task[object] | None]] = deque()
    in_flight = 0
    try:
        async with aclosing(_plan(store, node, start, end, settings)) as plan:
            async for item in plan:
                task = None
                if isinstance(item, _Fetch):
                    limit = store.settings.max_segment_bytes
                    task = asyncio.create_task(store.get(item.ref.key, max_bytes=limit))
                    in_flight += 1
                pending.append((item, task))
                # gaps at the head go out at once; fetches wait only when the window is full
                while pending and (in_flight >= settings.prefetch or pending[0][1] is None):
                    head, head_task = pending.popleft()
                    if head_task is not None:
                        in_flight -= 1
                    yield await _resolve(node, head, head_task, settings.timing)
        while pending:
            head, head_task = pending.popleft()
            yield await _resolve(node, head, head_task, settings.timing)
    finally:
        for _, task in pending:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for _, t in pending if t is not None), return_exceptions=True)
