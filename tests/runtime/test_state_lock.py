"""One daemon per state directory and per spool: an exclusive flock, held until released or the
process ends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.runtime.locks import LockBusy, lock_spool, lock_state_dir


def test_a_second_lock_on_the_same_directory_is_refused_until_released(tmp_path: Path) -> None:
    first = lock_state_dir(tmp_path / "state")  # created when missing
    with pytest.raises(LockBusy, match="in use by another hydromon"):
        lock_state_dir(tmp_path / "state")
    lock_state_dir(tmp_path / "other").release()  # another directory is free
    first.release()
    lock_state_dir(tmp_path / "state").release()


def test_a_lock_held_by_another_process_names_its_pid(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib\n"
            "from monitor.runtime.locks import lock_state_dir\n"
            f"lock_state_dir(pathlib.Path({str(tmp_path)!r}))\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(LockBusy, match=f"pid {holder.pid}"):
            lock_state_dir(tmp_path)
    finally:
        holder.communicate("", timeout=30)
    # The holder ended without releasing: the kernel dropped its lock.
    lock_state_dir(tmp_path).release()


def test_a_spool_is_locked_beside_its_file(tmp_path: Path) -> None:
    spool = tmp_path / "spool" / "redis.sqlite3"
    first = lock_spool(spool)
    with pytest.raises(LockBusy, match=r"redis\.spool_path"):
        lock_spool(spool)
    first.release()
    assert (tmp_path / "spool" / "redis.sqlite3.lock").exists() and not spool.exists()
    lock_spool(spool).release()
