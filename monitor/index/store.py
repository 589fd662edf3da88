"""The detection index: an embedded SQLite database of every message the daemon publishes.

Tables: ``detections`` (the latest wire message of each detection: ``closed`` replaces
``opened``, never the other way round; its media URLs inside), ``feed_status`` (the history of
feed-state changes) and ``reviews`` (a reviewer's verdict per detection). Queries page newest
first on ``(start_ms, id)`` through an opaque cursor and use the indexes, never a scan of the
JSON-lines files.

The class is synchronous and thread-safe: one connection per thread (SQLite in WAL mode lets
readers run beside the one writer). The daemon calls it from worker threads only
(``monitor.index.output`` for writes, ``monitor.api`` for reads), never on the event loop.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from monitor.timebase import format_utc, parse_utc, to_epoch_ms

Verdict = Literal["confirmed", "rejected", "unsure"]
VERDICTS: tuple[str, ...] = ("confirmed", "rejected", "unsure")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS detections (
    id TEXT PRIMARY KEY,
    feed TEXT NOT NULL,
    label TEXT NOT NULL,
    status TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    score_max REAL NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS detections_start ON detections (start_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS detections_feed ON detections (feed, start_ms DESC, id DESC);
CREATE TABLE IF NOT EXISTS feed_status (
    message_id TEXT PRIMARY KEY,
    feed TEXT NOT NULL,
    state TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    emitted_ms INTEGER NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feed_status_feed ON feed_status (feed, emitted_ms DESC);
CREATE TABLE IF NOT EXISTS reviews (
    id TEXT PRIMARY KEY,
    verdict TEXT NOT NULL,
    note TEXT NOT NULL,
    reviewed_ms INTEGER NOT NULL,
    reviewed_utc TEXT NOT NULL
);
"""

_STATUS_RANK = {"opened": 0, "closed": 1}


@dataclass(frozen=True, slots=True)
class IndexSettings:
    enabled: bool = True
    path: Path = Path("var/index.sqlite")
    # SQLite's own wait for a lock held by another connection
    busy_timeout_s: float = field(default=5.0, metadata={"gt": 0.0})


@dataclass(frozen=True, slots=True)
class DetectionQuery:
    """Filters of ``GET /api/v1/detections`` and ``hydromon export`` (all optional)."""

    feeds: frozenset[str] | None = None
    labels: frozenset[str] | None = None
    since: datetime | None = None  # start_utc ≥ since
    until: datetime | None = None  # start_utc < until
    min_score: float | None = None  # against score.max
    status: str | None = None  # opened | closed
    verdicts: frozenset[str] | None = None  # only reviewed detections with these verdicts


@dataclass(frozen=True, slots=True)
class Page:
    detections: list[dict[str, Any]]
    next_cursor: str | None


class BadCursor(ValueError):
    """A cursor this index did not hand out."""


def encode_cursor(start_ms: int, detection_id: str) -> str:
    raw = f"{start_ms}:{detection_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        start, _, detection_id = base64.urlsafe_b64decode(padded).decode().partition(":")
        return int(start), detection_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor(f"bad cursor {cursor!r}") from None


class DetectionIndex:
    def __init__(self, settings: IndexSettings) -> None:
        self.settings = settings
        self.path = Path(settings.path)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()

    # ---- connections ----

    def open(self) -> None:
        """Create the file and tables (raises ``OSError``/``sqlite3.Error`` when it cannot)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = self._connection()
        with connection:
            connection.executescript(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=self.settings.busy_timeout_s, check_same_thread=False
            )
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    # ---- writing ----

    def put(self, message: dict[str, Any]) -> None:
        """Store one wire message (idempotent: the same message twice changes nothing)."""
        kind = message.get("kind")
        if kind == "detection":
            self._put_detection(message)
        elif kind == "feed_status":
            self._put_status(message)
        else:
            raise ValueError(f"the index takes detection and feed_status messages, not {kind!r}")

    def put_many(self, messages: Iterable[dict[str, Any]]) -> None:
        for message in messages:
            self.put(message)

    def _put_detection(self, message: dict[str, Any]) -> None:
        connection = self._connection()
        row = (
            message["id"],
            message["feed"]["node"],
            message["label"],
            message["status"],
            int(message["start_epoch_ms"]),
            int(message["end_epoch_ms"]),
            float(message["score"]["max"]),
            json.dumps(message, separators=(",", ":")),
        )
        rank = _STATUS_RANK.get(message["status"], 0)
        with self._write_lock, connection:
            current = connection.execute(
                "SELECT status FROM detections WHERE id = ?", (message["id"],)
            ).fetchone()
            if current is not None and _STATUS_RANK.get(current["status"], 0) > rank:
                return  # a late "opened" never replaces the "closed" message
            connection.execute(
                "INSERT OR REPLACE INTO detections "
                "(id, feed, label, status, start_ms, end_ms, score_max, message) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

    def _put_status(self, message: dict[str, Any]) -> None:
        connection = self._connection()
        with self._write_lock, connection:
            connection.execute(
                "INSERT OR IGNORE INTO feed_status "
                "(message_id, feed, state, since_ms, emitted_ms, message) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    message["message_id"],
                    message["feed"]["node"],
                    message["state"],
                    int(message["since_epoch_ms"]),
                    to_epoch_ms(parse_utc(message["emitted_utc"])),
                    json.dumps(message, separators=(",", ":")),
                ),
            )

    def review(
        self, detection_id: str, verdict: str, note: str, at: datetime
    ) -> dict[str, Any] | None:
        """Record a verdict (the latest one counts); the updated detection, or None when the
        index does not know the id."""
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
        connection = self._connection()
        with self._write_lock, connection:
            known = connection.execute(
                "SELECT 1 FROM detections WHERE id = ?", (detection_id,)
            ).fetchone()
            if known is None:
                return None
            connection.execute(
                "INSERT OR REPLACE INTO reviews (id, verdict, note, reviewed_ms, reviewed_utc) "
                "VALUES (?, ?, ?, ?, ?)",
                (detection_id, verdict, note, to_epoch_ms(at), format_utc(at)),
            )
        return self.detection(detection_id)

    def forget_media(self, detection_ids: Sequence[str]) -> None:
        """The retention policy removed these detections' files: drop their URLs."""
        connection = self._connection()
        with self._write_lock, connection:
            for detection_id in detection_ids:
                row = connection.execute(
                    "SELECT message FROM detections WHERE id = ?", (detection_id,)
                ).fetchone()
                if row is None:
                    continue
                message = json.loads(row["message"])
                if message.pop("media", None) is not None:
                    connection.execute(
                        "UPDATE detections SET message = ? WHERE id = ?",
                        (json.dumps(message, separators=(",", ":")), detection_id),
                    )

    # ---- reading ----

    def detection(self, detection_id: str) -> dict[str, Any] | None:
        row = self._connection().execute(_SELECT + " WHERE d.id = ?", (detection_id,)).fetchone()
        return None if row is None else _detection(row)

    def detections(self, query: DetectionQuery, limit: int, cursor: str | None = None) -> Page:
        """One page, newest first; ``next_cursor`` is None on the last page."""
        where, params = _where(query)
        if cursor is not None:
            start_ms, detection_id = decode_cursor(cursor)
            where.append("(d.start_ms < ? OR (d.start_ms = ? AND d.id < ?))")
            params += [start_ms, start_ms, detection_id]
        sql = _SELECT + _clause(where) + " ORDER BY d.start_ms DESC, d.id DESC LIMIT ?"
        rows = self._connection().execute(sql, [*params, limit + 1]).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["start_ms"], rows[-1]["id"]) if more else None
        return Page([_detection(row) for row in rows], next_cursor)

    def iter_detections(self, query: DetectionQuery, batch: int = 500) -> Iterator[dict[str, Any]]:
        """Every matching detection, oldest first (for exports), read in batches."""
        where, params = _where(query)
        after: tuple[int, str] | None = None
        while True:
            clauses = list(where)
            extra: list[Any] = []
            if after is not None:
                clauses.append("(d.start_ms > ? OR (d.start_ms = ? AND d.id > ?))")
                extra = [after[0], after[0], after[1]]
            sql = _SELECT + _clause(clauses) + " ORDER BY d.start_ms, d.id LIMIT ?"
            rows = self._connection().execute(sql, [*params, *extra, batch]).fetchall()
            if not rows:
                return
            for row in rows:
                yield _detection(row)
            after = (rows[-1]["start_ms"], rows[-1]["id"])

    def feed_history(self, feed: str, limit: int = 100) -> list[dict[str, Any]]:
        rows = (
            self._connection()
            .execute(
                "SELECT message FROM feed_status WHERE feed = ? ORDER BY emitted_ms DESC LIMIT ?",
                (feed, limit),
            )
            .fetchall()
        )
        return [json.loads(row["message"]) for row in rows]

    def latest_feed_status(self) -> dict[str, dict[str, Any]]:
        """Each feed's newest ``feed_status`` message."""
        rows = (
            self._connection()
            .execute(
                "SELECT feed, message FROM feed_status AS f WHERE emitted_ms = "
                "(SELECT MAX(emitted_ms) FROM feed_status WHERE feed = f.feed)"
            )
            .fetchall()
        )
        return {row["feed"]: json.loads(row["message"]) for row in rows}

    def counts(self) -> dict[str, int]:
        connection = self._connection()
        return {
            table: int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            for table in ("detections", "feed_status", "reviews")
        }


_SELECT = (
    "SELECT d.id, d.start_ms, d.message, r.verdict, r.note, r.reviewed_utc "
    "FROM detections AS d LEFT JOIN reviews AS r ON r.id = d.id"
)


def _clause(where: list[str]) -> str:
    return (" WHERE " + " AND ".join(where)) if where else ""


def _in(column: str, values: frozenset[str], params: list[Any]) -> str:
    ordered = sorted(values)
    params.extend(ordered)
    return f"{column} IN ({', '.join('?' for _ in ordered)})"


def _where(query: DetectionQuery) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if query.feeds:
        where.append(_in("d.feed", query.feeds, params))
    if query.labels:
        where.append(_in("d.label", query.labels, params))
    if query.since is not None:
        where.append("d.start_ms >= ?")
        params.append(to_epoch_ms(query.since))
    if query.until is not None:
        where.append("d.start_ms < ?")
        params.append(to_epoch_ms(query.until))
    if query.min_score is not None:
        where.append("d.score_max >= ?")
        params.append(query.min_score)
    if query.status is not None:
        where.append("d.status = ?")
        params.append(query.status)
    if query.verdicts:
        where.append(_in("r.verdict", query.verdicts, params))
    return where, params


def _detection(row: sqlite3.Row) -> dict[str, Any]:
    """The API's DETECTION: the latest wire message, its media (or null) and its review."""
    message = json.loads(row["message"])
    message.setdefault("media", None)
    message["review"] = (
        None
        if row["verdict"] is None
        else {
            "verdict": row["verdict"],
            "note": row["note"],
            "reviewed_utc": row["reviewed_utc"],
        }
    )
    return message
