"""Cluster replays in tests: a unit hook that kills its Ray worker once, mid-unit; a range's
units run in this process."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.cluster.unit import UnitResult, run_unit
from monitor.cluster.units import ReplayRange, WorkUnit, plan_units
from monitor.publish.files import FileOutput, FileSettings
from monitor.runtime.selection import selection_margin_s
from monitor.runtime.wiring import open_engine


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


async def replay_in_units(config: Any, span: ReplayRange, out: Path) -> list[UnitResult]:
    """Every unit of ``span`` run here, one after another, as a Ray worker runs it (the driver's
    window and resume margin, the process's own engine); the detections each owns written to
    a files output in ``out``."""
    models, engine = await open_engine(config)
    window = config.windows.resolved(models.classifier.window_seconds)
    margin_s = config.daemon.pipeline.for_models(
        window.length_s, engine.denoise_geometry, selection_margin_s(config.detector)
    ).resume_margin_s
    output = FileOutput(FileSettings(out))
    await output.start()
    results = []
    try:
        for unit in plan_units(span, config.cluster.unit_s):
            result = await run_unit(
                config, unit, span, open_engine, window_s=window.length_s, margin_s=margin_s
            )
            for message in result.messages:
                await output.publish(message)
            results.append(result)
    finally:
        await output.close()
    return results
