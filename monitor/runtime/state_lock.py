"""One daemon per state directory: an exclusive ``flock`` on ``<state.dir>/hydromon.lock``.

Two daemons sharing a state directory would write the same resume points and publish the same
detections twice. The lock is held for the whole run (``run`` and ``replay``) and released by
the kernel when the process ends, however it ends; the file itself stays (removing it could let a
third process lock a different file of the same name).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "hydromon.lock"


class StateDirBusy(RuntimeError):
    """Another process holds the state directory's lock."""


class StateDirLock:
    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, directory: Path) -> StateDirLock:
        """Lock ``directory`` (created if missing) or raise ``StateDirBusy`` naming the holder;
        ``OSError`` when the directory cannot be used at all."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StateDirBusy(
                f"state directory {directory} is in use by another hydromon (pid {holder}); "
                "give each daemon its own state.dir"
            ) from None
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
