"""What a cluster replay has finished, and how it is going, in the state directory.

``UnitLedger``: one JSON line per unit whose detections were published (appended and fsynced),
so a driver run again over the same range and unit size skips them; a torn last line (the
driver killed mid-write) is ignored and that unit runs again (its outputs de-duplicate by id).
``write_status``: a JSON snapshot for scripts and dashboards, replaced atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from models.fileio import atomic_write_text


def ledger_scope(range_scope: str, unit_s: float) -> str:
    """Units of another size are other units: their ledgers are kept apart."""
    return f"cluster-{range_scope}-{unit_s:g}s"


class UnitLedger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: set[str] = set()
        if path.exists():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("unit"), str):
                    self.done.add(record["unit"])

    def record(self, unit_id: str, **details: object) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"unit": unit_id, **details}, separators=(",", ":")) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self.done.add(unit_id)


@dataclass
class ReplayStatus:
    """The JSON status file's content."""

    start_utc: str
    end_utc: str
    feeds: list[str]
    unit_s: float
    units_total: int
    units_done: int = 0  # published, this run and earlier ones
    units_done_before: int = 0  # of those, by an earlier run (skipped now)
    units_running: int = 0
    units_failed: int = 0
    audio_hours_total: float = 0.0  # the range × feeds
    audio_hours_done: float = 0.0  # of the range, by the units done
    audio_hours_decoded: float = 0.0  # audio actually decoded by this run's units (no gaps)
    x_real_time: float = 0.0  # this run: range seconds done per wall-clock second
    eta_s: float | None = None
    failed: list[dict[str, str]] = field(default_factory=list)  # unit, error
    engine_batches: dict[str, int] = field(default_factory=dict)  # batch size → batches (at end)
    finished: bool = False
    updated_utc: str = ""


def write_status(path: Path, status: ReplayStatus) -> None:
    atomic_write_text(path, json.dumps(asdict(status), indent=1) + "\n", durable=False)
