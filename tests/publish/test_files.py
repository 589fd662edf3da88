from __future__ import annotations

import asyncio
import errno
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.detect.records import FeedInfo, Message
from monitor.publish.files import FileOutput, FileSettings
from monitor.publish.raven import RAVEN_COLUMNS
from tests.support.detections import (
    T0,
    checked,
    detection_series,
    feed_status,
    make_builder,
    run_scores,
    wire,
)

LATE = datetime(2024, 6, 7, 23, 59, 57, tzinfo=UTC)


async def write_all(settings: FileSettings, messages: list[Message]) -> FileOutput:
    output = FileOutput(settings)
    await output.start()
    for message in messages:
        await output.publish(message)
    await output.close()
    return output


def raven_rows(path: Path) -> list[dict[str, str]]:
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == list(RAVEN_COLUMNS)
    return [dict(zip(RAVEN_COLUMNS, line.split("\t"), strict=True)) for line in lines[1:]]


async def test_jsonl_per_utc_day_and_raven_for_closed_detections(tmp_path: Path) -> None:
    day_one = detection_series(4)
    # a detection that starts 3 s before midnight and ends after it
    midnight = run_scores(make_builder(), [0.9] * 5 + [0.0] * 4, origin=LATE)
    status = feed_status("offline", LATE, feed=FeedInfo("rpi_orcasound_lab", "Orcasound Lab"))
    messages = checked([*day_one, *midnight, status])
    output = await write_all(FileSettings(directory=tmp_path), messages)
    sent = wire(messages)

    jsonl = tmp_path / "jsonl" / "2024-06-07.jsonl"
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == sent
    assert sorted(p.name for p in (tmp_path / "jsonl").iterdir()) == ["2024-06-07.jsonl"]

    table = output.raven_path("rpi_orcasound_lab", T0)
    assert table == tmp_path / "raven/rpi_orcasound_lab/rpi_orcasound_lab.2024-06-07.selections.txt"
    rows = raven_rows(table)
    closed = [m for m in sent if m.get("status") == "closed"]
    assert [row["Detection Id"] for row in rows] == [m["id"] for m in closed]
    assert [row["Selection"] for row in rows] == ["1", "2", "3"]
    first = rows[0]
    assert first["Begin Time (s)"] == "43200.000"  # 12:00:00 UTC
    assert first["End Time (s)"] == f"{43200 + closed[0]['duration_s']:.3f}"
    assert first["View"] == "Spectrogram 1" and first["Channel"] == "1"
    assert first["Low Freq (Hz)"] == "0.0" and first["High Freq (Hz)"] == "8000.0"
    assert first["Call Type"] == "humpback" and first["Score Max"] == "0.6000"
    assert first["Begin File"] == first["File Offset (s)"] == ""  # no media
    assert first["Begin UTC"] == closed[0]["start_utc"]
    late = rows[-1]
    assert late["Begin Time (s)"] == "86397.000" and late["End Time (s)"] == "86403.000"
    assert late["End UTC"] == "2024-06-08T00:00:03.000Z"


async def test_restart_continues_selection_numbers_and_repairs_a_torn_line(tmp_path) -> None:
    messages = detection_series(4)
    settings = FileSettings(directory=tmp_path, fsync=False)
    output = await write_all(settings, messages[:2])
    jsonl = output.jsonl_path(T0)
    with jsonl.open("a") as handle:  # a crash in the middle of a line
        handle.write('{"kind": "detec')
    await write_all(settings, messages[2:])
    lines = jsonl.read_text().splitlines()
    assert lines[2] == '{"kind": "detec'
    assert [json.loads(line) for line in lines[:2] + lines[3:]] == wire(messages)
    rows = raven_rows(output.raven_path("rpi_orcasound_lab", T0))
    assert [row["Selection"] for row in rows] == ["1", "2"]
    assert [row["Detection Id"] for row in rows] == [messages[1].id, messages[3].id]


async def test_only_raven_or_only_jsonl(tmp_path: Path) -> None:
    messages = detection_series(2)
    await write_all(FileSettings(directory=tmp_path / "a", jsonl=False), messages)
    assert not (tmp_path / "a" / "jsonl").exists()
    assert (tmp_path / "a" / "raven").exists()
    await write_all(FileSettings(directory=tmp_path / "b", raven=False), messages)
    assert not (tmp_path / "b" / "raven").exists()


async def test_a_replay_or_redelivery_adds_no_duplicate_rows(tmp_path: Path) -> None:
    messages = detection_series(6)
    settings = FileSettings(directory=tmp_path, fsync=False)
    first = await write_all(settings, messages[:4])
    # Redelivered in the same run (e.g. a spool retry), then a fresh process replays all.
    for message in messages[:4]:
        await first.publish(message)
    assert first.duplicates == 4 + 2  # four JSON lines and two Raven rows
    second = await write_all(settings, messages)
    assert second.duplicates == 4 + 2
    jsonl = first.jsonl_path(T0)
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == wire(messages)
    rows = raven_rows(first.raven_path("rpi_orcasound_lab", T0))
    closed = [m.id for m in messages if m.status == "closed"]
    assert [row["Detection Id"] for row in rows] == closed
    assert [row["Selection"] for row in rows] == ["1", "2", "3"]


async def test_idempotence_survives_index_eviction(tmp_path: Path) -> None:
    # One cached index: every other file is re-read from disk when it comes back.
    settings = FileSettings(directory=tmp_path, fsync=False, index_files=1)
    lab = detection_series(4)
    bush = detection_series(4, feed="rpi_bush_point")
    output = FileOutput(settings)
    await output.start()
    for message in [*lab, *bush, *lab, *bush]:
        await output.publish(message)
    assert output.duplicates == 8 + 4
    for feed, messages in (("rpi_orcasound_lab", lab), ("rpi_bush_point", bush)):
        rows = raven_rows(output.raven_path(feed, T0))
        assert [row["Detection Id"] for row in rows] == [messages[1].id, messages[3].id]
    lines = output.jsonl_path(T0).read_text().splitlines()
    assert sorted(json.loads(line)["message_id"] for line in lines) == sorted(
        m.message_id for m in lab + bush
    )


class FullDisk:
    """``os.write`` as on a full disk, for files under ``root`` only: the first write gets half
    its bytes onto the disk and then ENOSPC, as a real full disk does, until ``free()``.

    A real full disk cannot be made here (root, no mounts), so only the OS write call is
    replaced; everything else (open, fstat, ftruncate, fsync, rename) is the real one."""

    def __init__(self, root: Path, real: Callable[[int, Any], int]) -> None:
        self.root = str(root)
        self.real = real
        self.full = True
        self.refused = 0

    def free(self) -> None:
        self.full = False

    def __call__(self, fd: int, data: Any) -> int:
        if not self.full or not os.readlink(f"/proc/self/fd/{fd}").startswith(self.root):
            return self.real(fd, data)
        self.refused += 1
        if self.refused == 1 and len(data) > 1:
            return self.real(fd, bytes(data[: len(data) // 2]))  # a partial write first
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


async def test_a_full_disk_loses_nothing_and_leaves_no_partial_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = detection_series(6)
    settings = FileSettings(directory=tmp_path, fsync=False, retry_s=0.05)
    output = FileOutput(settings)
    await output.start()
    await output.publish(messages[0])  # written before the disk fills
    disk = FullDisk(tmp_path, os.write)
    monkeypatch.setattr(os, "write", disk)
    for message in messages[1:]:
        await output.publish(message)  # held, not lost, not raised
    await asyncio.sleep(0.2)  # a few retries while the disk is still full
    jsonl = output.jsonl_path(T0)
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == wire(messages[:1])
    assert jsonl.read_text().endswith("\n")  # the partial record was cut off again
    assert output.spool_depth == 5 and output.stats.errors >= 2
    disk.free()
    for _ in range(100):
        if output.spool_depth == 0:
            break
        await asyncio.sleep(0.02)
    await output.close()
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == wire(messages)
    rows = raven_rows(output.raven_path("rpi_orcasound_lab", T0))
    assert [row["Detection Id"] for row in rows] == [messages[1].id, messages[3].id, messages[5].id]
    assert [row["Selection"] for row in rows] == ["1", "2", "3"]
