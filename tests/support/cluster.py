"""Faults for cluster replays: a unit hook that kills its Ray worker once, mid-unit."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from monitor.cluster.units import WorkUnit


@dataclass(frozen=True)
class ExitOnce:
    """Ends the worker process (``os._exit``, as a crash or OOM kill would) the first time
    unit ``unit_id`` has read ``after_s`` into its span; ``marker`` records that it happened,
    so the retried attempt runs through."""

    unit_id: str
    marker: Path
    after_s: float = 5.0

    def __call__(self, unit: WorkUnit, until: datetime) -> None:
        if unit.id != self.unit_id or until < unit.start + timedelta(seconds=self.after_s):
            return
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os._exit(17)
