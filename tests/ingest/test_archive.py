"""The archive reader on a synthetic node: folder search cost, order, gaps, clipping, timing."""

from __future__ import annotations

from contextlib import aclosing
from datetime import timedelta

import pytest

from monitor.ingest.archive import ArchiveSettings, find_folders, read_archive
from monitor.ingest.slots import Segment, SegmentGap
from monitor.ingest.timing import TimingSettings
from monitor.timebase import from_epoch
from tests.support.synthetic_node import STORE_KINDS

E1 = 1717761600  # 2024-06-07T12:00:00Z
E2 = E1 + 100  # the node restarted 100 s later


def at(epoch: float) -> object:
    return from_epoch(epoch)


def count_calls(store, operation: str) -> dict[str, int]:
    counts = {"calls": 0, "in_flight": 0, "max_in_flight": 0}

    def before(**_: object) -> None:
        counts["calls"] += 1
        counts["in_flight"] += 1
        counts["max_in_flight"] = max(counts["max_in_flight"], counts["in_flight"])

    def after(**_: object) -> None:
        counts["in_flight"] -= 1

    store.client.meta.events.register(f"before-call.s3.{operation}", before)
    store.client.meta.events.register(f"after-call.s3.{operation}", after)
    return counts


async def collect(iterator) -> list[Segment | SegmentGap]:
    async with aclosing(iterator) as items:
        return [item async for item in items]


@pytest.mark.parametrize("store_kind", STORE_KINDS)
async def test_two_folders_in_order_with_gaps_restart_and_pdt(node, store):
    await node.put_segments(E1, [0, 1, 3, 5])  # 2 never uploaded
    await node.put_segment(E1, 4, empty=True)
    await node.put_legacy_playlist(E1, [0, 1, 2, 3])  # lags: the keys are the truth
    await node.put_segments(E2, [0, 1, 2, 3])
    pdt = {n: at(E2 + 2.5 + 10 * n) for n in range(3)}
    await node.put_pdt_playlist(E2, [0, 1, 2], pdt)
    # far-away folders that the search must not list
    for k in range(12):
        await node.put_segment(1_700_000_000 + 1_000_003 * k, 0)
    lists = store.stats.lists

    items = await collect(read_archive(store, node.node, at(E1 + 17), at(E2 + 27)))

    assert store.stats.lists - lists == 3  # one for the folder search, one per folder
    summary = [
        (
            type(i).__name__,
            i.ref.folder_epoch if i.ref else None,
            i.ref.number if i.ref else None,
            getattr(i, "reason", None),
        )
        for i in items
    ]
    assert summary == [
        ("Segment", E1, 1, None),
        ("SegmentGap", E1, 2, "missing"),
        ("Segment", E1, 3, None),
        ("SegmentGap", E1, 4, "empty"),
        ("Segment", E1, 5, None),
        ("SegmentGap", None, None, "restart"),
        ("Segment", E2, 0, None),
        ("Segment", E2, 1, None),
        ("Segment", E2, 2, None),
    ]
    segments = [i for i in items if isinstance(i, Segment)]
    assert [s.start_utc for s in segments] == [
        at(E1 + 12),
        at(E1 + 32),
        at(E1 + 52),
        at(E2 + 2.5),
        at(E2 + 12.5),
        at(E2 + 22.5),
    ]
    assert [s.timing_source for s in segments] == ["number"] * 3 + ["program-date-time"] * 3
    assert all(s.start_utc.utcoffset() == timedelta(0) for s in segments)
    assert segments[0].data == node.sample(1) and segments[-1].data == node.sample(2)
    assert segments[0].ref.key == f"{node.node}/hls/{E1}/live001.ts"
    restart = items[5]
    assert (restart.start_utc, restart.end_utc) == (at(E1 + 62), at(E2 + 2))
    gaps = [i for i in items if isinstance(i, SegmentGap) and i.ref is not None]
    assert [(g.start_utc, g.end_utc) for g in gaps] == [
        (at(E1 + 22), at(E1 + 32)),
        (at(E1 + 42), at(E1 + 52)),
    ]


@pytest.mark.parametrize("store_kind", STORE_KINDS)
async def test_folder_covering_the_start_found_by_widening_prefix(node, store):
    folders = [1_600_000_000 + 1_000_003 * k for k in range(60)]
    for epoch in folders:
        await node.put_segment(epoch, 0)
    start = folders[50] + 400_000  # 4.6 days into folder 50: another 5-digit block
    lists = store.stats.lists

    found = await find_folders(store, node.node, start, start + 60)
    assert found == [folders[50]]
    # start 1650400150: "1650400" (the range's block), then "165040", "16504", "1650":
    # 4 LISTs, whatever the number of folders on the node
    assert start == 1_650_400_150
    assert store.stats.lists - lists == 4

    items = await collect(read_archive(store, node.node, at(start), at(start + 60)))
    assert len(items) == 1 and isinstance(items[0], SegmentGap)
    assert (items[0].start_utc, items[0].end_utc, items[0].reason) == (
        at(start),
        at(start + 60),
        "missing",
    )


@pytest.mark.parametrize("store_kind", STORE_KINDS)
async def test_range_before_any_folder_and_between_folders(node, store):
    await node.put_segments(E1, [0, 1])
    items = await collect(read_archive(store, node.node, at(E1 - 3600), at(E1 + 12)))
    assert [type(i).__name__ for i in items] == ["SegmentGap", "Segment"]
    assert (items[0].start_utc, items[0].end_utc) == (at(E1 - 3600), at(E1 + 2))
    assert items[1].ref.number == 0
    assert await find_folders(store, node.node, E1 - 7200, E1 - 3600) == []


async def test_prefetch_is_bounded_and_order_kept(moto_server, node, store):
    numbers = list(range(12))
    await node.put_segments(E1, numbers)
    gets = count_calls(store, "GetObject")
    settings = ArchiveSettings(prefetch=3, timing=TimingSettings(precedence="number"))
    items = await collect(read_archive(store, node.node, at(E1 + 2), at(E1 + 122), settings))
    assert [i.ref.number for i in items] == numbers
    assert all(i.data == node.sample(i.ref.number) for i in items)
    assert gets["calls"] == 12  # no playlist GET when PDT is not wanted
    assert 1 < gets["max_in_flight"] <= 3


@pytest.mark.parametrize("store_kind", STORE_KINDS)
async def test_stopping_early_leaves_no_fetch_running(node, store):
    import asyncio

    await node.put_segments(E1, range(8))
    before = len(asyncio.all_tasks())
    async with aclosing(read_archive(store, node.node, at(E1 + 2), at(E1 + 82))) as items:
        async for item in items:
            assert item.ref.number == 0
            break
    assert len(asyncio.all_tasks()) == before


@pytest.mark.parametrize("store_kind", STORE_KINDS)
async def test_bad_ranges_are_refused(store):
    with pytest.raises(ValueError):
        await collect(read_archive(store, "rpi_test_node", at(E1), at(E1)))
    with pytest.raises(ValueError):
        await collect(read_archive(store, "rpi_test_node", at(E1).replace(tzinfo=None), at(E1 + 1)))
