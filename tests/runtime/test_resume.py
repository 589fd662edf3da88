"""Resume points on disk: atomic, validated, throttled."""

from __future__ import annotations

import asyncio
import errno
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.runtime.resume import (
    FeedStateFile,
    ResumePoint,
    StateError,
    load_resume_point,
    state_path,
    write_atomically,
)

T0 = datetime(2024, 6, 7, 12, 0, tzinfo=UTC)


def point(number: int = 7, feed: str = "rpi_bush_point") -> ResumePoint:
    return ResumePoint(feed, 1_717_761_600, number, T0 + timedelta(seconds=72.5), T0)


def test_round_trip_and_file_name(tmp_path: Path) -> None:
    path = state_path(tmp_path, "replay-20240607T120000Z-20240607T130000Z", "rpi/bush point")
    assert path.parent == tmp_path and "/" not in path.name and " " not in path.name
    write_atomically(path, json.dumps(point().to_json()))
    assert load_resume_point(path, "rpi_bush_point") == point()


def test_missing_file_means_no_resume_point(tmp_path: Path) -> None:
    assert load_resume_point(tmp_path / "none.json", "rpi_bush_point") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "corrupt state file"),
        ('{"version": 99}', "not a hydromon state file"),
        ('{"version": 1, "feed": "rpi_bush_point"}', "bad state entry"),
        (
            '{"version": 1, "feed": "rpi_bush_point", "folder_epoch": 1, "number": 2,'
            ' "next_window_utc": "yesterday", "updated_utc": "2024-06-07T12:00:00Z"}',
            "bad state entry",
        ),
    ],
)
def test_damaged_files_are_errors_not_silent_restarts(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "s.json"
    path.write_text(text)
    with pytest.raises(StateError, match=message):
        load_resume_point(path, "rpi_bush_point")


def test_a_file_of_another_feed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_atomically(path, json.dumps(point(feed="rpi_other").to_json()))
    with pytest.raises(StateError, match="holds feed 'rpi_other'"):
        load_resume_point(path, "rpi_bush_point")


def test_atomic_write_leaves_old_content_when_the_write_fails(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_atomically(path, "old")
    with pytest.raises(TypeError):
        write_atomically(path, None)  # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["s.json"]  # no temporary file left behind


async def test_saves_are_throttled_but_force_and_flush_write(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    state = FeedStateFile(path, "rpi_bush_point", min_interval_s=3600)
    await state.save(point(1))
    assert state.load() == point(1)
    await state.save(point(2))  # within the interval: kept in memory only
    assert state.load() == point(1)
    await state.flush()
    assert state.load() == point(2)
    await state.save(point(3), force=True)
    assert state.load() == point(3)


async def test_naive_times_are_refused(tmp_path: Path) -> None:
    state = FeedStateFile(tmp_path / "s.json", "rpi_bush_point")
    naive = ResumePoint("rpi_bush_point", 1, 2, datetime(2024, 6, 7), T0)  # noqa: DTZ001
    with pytest.raises(ValueError, match="naive"):
        await state.save(naive)


async def test_a_throttled_save_is_written_when_the_interval_is_over(tmp_path: Path) -> None:
    """A live feed that waits for its next segment still gets its last point on disk."""
    state = FeedStateFile(tmp_path / "s.json", "rpi_bush_point", min_interval_s=0.2)
    await state.save(point(1))
    await state.save(point(2))
    assert state.load() == point(1)
    await asyncio.sleep(0.4)
    assert state.load() == point(2)


async def test_discard_removes_the_file_and_cancels_a_pending_write(tmp_path: Path) -> None:
    state = FeedStateFile(tmp_path / "s.json", "rpi_bush_point", min_interval_s=0.2)
    await state.save(point(1))
    await state.save(point(2))  # throttled: a write is scheduled
    await state.discard()
    await asyncio.sleep(0.4)
    assert not state.path.exists()


async def test_a_failed_background_write_keeps_the_point_for_the_next_flush(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "state"
    state = FeedStateFile(folder / "live--rpi_bush_point.json", "rpi_bush_point", 0.05)
    await state.save(point(1))
    folder.rename(tmp_path / "moved")
    folder.write_text("a file where the state directory was")
    await state.save(point(2))  # throttled: written in the background, which fails
    background = state._later
    assert background is not None
    await asyncio.sleep(0.2)
    assert background.done() and background.exception() is None  # logged, not left unseen
    folder.unlink()
    await state.flush()
    assert state.load() == point(2)


async def test_a_full_disk_keeps_the_point_pending_and_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk cannot be made here, so the rename that would fail on one is made to raise
    ENOSPC (the only thing patched): the save does not raise, the error is reported, and the
    point is written by the retry once space is back."""
    import models.fileio as fileio
    import monitor.runtime.resume as resume

    errors: list[OSError] = []
    state = FeedStateFile(
        tmp_path / "s.json", "rpi_bush_point", 0.0, on_error=lambda _f, e: errors.append(e)
    )
    real_replace = os.replace

    def full_disk(*_args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio.os, "replace", full_disk)
    await state.save(point(1))
    assert [e.errno for e in errors] == [errno.ENOSPC]
    assert state.pending == point(1) and "No space left" in (state.error or "")
    assert not state.path.exists()
    assert os.listdir(tmp_path) == []  # no temporary file left behind
    monkeypatch.setattr(fileio.os, "replace", real_replace)
    await asyncio.sleep(resume.RETRY_S + 0.5)
    assert state.load() == point(1) and state.pending is None and state.error is None
