"""One daemon per state directory: an exclusive flock, held until released or the process ends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.runtime.state_lock import StateDirBusy, StateDirLock


def test_a_second_lock_on_the_same_directory_is_refused_until_released(tmp_path: Path) -> None:
    first = StateDirLock.acquire(tmp_path / "state")  # created when missing
    with pytest.raises(StateDirBusy, match="in use by another hydromon"):
        StateDirLock.acquire(tmp_path / "state")
    StateDirLock.acquire(tmp_path / "other").release()  # another directory is free
    first.release()
    StateDirLock.acquire(tmp_path / "state").release()


def test_a_lock_held_by_another_process_names_its_pid(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib\n"
            "from monitor.runtime.state_lock import StateDirLock\n"
            f"StateDirLock.acquire(pathlib.Path({str(tmp_path)!r}))\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(StateDirBusy, match=f"pid {holder.pid}"):
            StateDirLock.acquire(tmp_path)
    finally:
        holder.communicate("", timeout=30)
    # The holder ended without releasing: the kernel dropped its lock.
    StateDirLock.acquire(tmp_path).release()
