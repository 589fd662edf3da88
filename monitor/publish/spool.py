"""A bounded, durable FIFO of messages on disk (sqlite3, WAL, synchronous=FULL).

sqlite gives atomic append and pop-front that survive a crash or restart without a format of
our own. Methods are blocking: call them from a worker thread (``asyncio.to_thread``). When the
bound is reached ``append`` raises ``SpoolFull``: the caller refuses the message and counts it —
nothing is dropped silently.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any


class SpoolFull(Exception):
    pass


class SpoolNoSpace(Exception):
    """The spool's disk (or its database) is full: nothing was written; try again later."""


def _no_space(error: sqlite3.Error) -> bool:
    return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


class Spool:
    def __init__(self, path: Path, max_messages: int) -> None:
        if max_messages < 1:
            raise ValueError("spool max_messages must be ≥ 1")
        self.path = Path(path)
        self.max_messages = max_messages
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS spool "
                "(seq INTEGER PRIMARY KEY AUTOINCREMENT, message TEXT NOT NULL)"
            )
            (self._depth,) = self._db.execute("SELECT count(*) FROM spool").fetchone()
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise RuntimeError(f"spool {self.path} cannot be opened: {error}") from error

    @property
    def depth(self) -> int:
        return self._depth

    def append(self, message: dict[str, Any]) -> None:
        text = json.dumps(message, separators=(",", ":"))
        with self._lock:
            if self._depth >= self.max_messages:
                raise SpoolFull(f"spool {self.path} holds {self._depth} messages (its limit)")
            try:
                self._db.execute("INSERT INTO spool (message) VALUES (?)", (text,))
            except sqlite3.OperationalError as error:
                if _no_space(error):
                    raise SpoolNoSpace(f"spool {self.path}: {error}") from error
                raise
            self._depth += 1

    def peek(self) -> tuple[int, dict[str, Any]] | None:
        with self._lock:
            row = self._db.execute("SELECT seq, message FROM spool ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), json.loads(row[1]))

    def remove(self, seq: int) -> None:
        with self._lock:
            try:
                removed = self._db.execute("DELETE FROM spool WHERE seq = ?", (seq,)).rowcount
            except sqlite3.OperationalError as error:
                if _no_space(error):
                    raise SpoolNoSpace(f"spool {self.path}: {error}") from error
                raise
            self._depth -= removed

    def close(self) -> None:
        with self._lock:
            self._db.close()


def read_spool(path: Path, after: str | None, limit: int) -> tuple[bool, list[dict[str, Any]]]:
    """A read-only look at a spool that a ``Spool`` elsewhere writes (blocking: use a thread).

    ``after`` None: ``(True, the oldest `limit` messages)``; ``after`` (a ``message_id``) in the
    spool: ``(True, the messages after it)``; not in it: ``(False, [])``. No file: empty spool.
    """
    path = Path(path)
    if not path.exists():
        return after is None, []
    # WAL: this reader never blocks the writer, and sees only committed rows.
    db = sqlite3.connect(path, timeout=5.0)
    try:
        start = 0
        if after is not None:
            row = db.execute(
                "SELECT seq FROM spool WHERE json_extract(message, '$.message_id') = ? "
                "ORDER BY seq LIMIT 1",
                (after,),
            ).fetchone()
            if row is None:
                return False, []
            start = int(row[0])
        rows = db.execute(
            "SELECT message FROM spool WHERE seq > ? ORDER BY seq LIMIT ?", (start, limit)
        ).fetchall()
    except sqlite3.DatabaseError as error:
        raise RuntimeError(f"spool {path} cannot be read: {error}") from error
    finally:
        db.close()
    return True, [json.loads(text) for (text,) in rows]
