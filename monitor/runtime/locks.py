"""One daemon per state directory and per Redis spool: an exclusive ``flock`` on a lock file.

Two daemons sharing a state directory would write the same resume points and publish the same
detections twice; two sharing a spool would drain it twice. Each lock is held for the whole run
(``run`` and ``replay``) and released by the kernel when the process ends, however it ends; the
file itself stays (removing it could let a third process lock a different file of the same name).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "hydromon.lock"


class LockBusy(RuntimeError):
    """Another process holds the lock."""


class ExclusiveLock:
    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, path: Path, what: str, hint: str) -> ExclusiveLock:
        """Lock ``path`` (created with its folder if missing) or raise ``LockBusy`` naming
        ``what`` and the holder's pid; ``OSError`` when the file cannot be made at all."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise LockBusy(f"{what} is in use by another hydromon (pid {holder}); {hint}") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the last descriptor drops the lock


def lock_state_dir(directory: Path) -> ExclusiveLock:
    return ExclusiveLock.acquire(
        directory / LOCK_NAME, f"state directory {directory}", "give each daemon its own state.dir"
    )


def lock_spool(spool_path: Path) -> ExclusiveLock:
    return ExclusiveLock.acquire(
        spool_path.with_name(spool_path.name + ".lock"),
        f"redis spool {spool_path}",
        "give each daemon its own redis.spool_path",
    )
