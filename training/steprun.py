"""What every training step shares: the output folder, ``params.json``, the log beside the
results, and the progress file that lets an interrupted step resume where it stopped."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.fileio import sha256_tree
from monitor import __version__
from monitor.health.logs import get_logger
from monitor.timebase import format_utc, utc_now
from training.result_files import atomic_write_json, checksum
from training.step_settings import as_dict

ROOT = Path(__file__).resolve().parent.parent


class StepInterrupted(Exception):
    """Raised when a step stops early on purpose (``--max-units``); rerun it to go on."""


def code_version() -> dict[str, str]:
    """The package version, the git commit if there is one, and a hash of the model/training
    sources (so uncommitted edits still change the version)."""
    sources = sorted([*ROOT.glob("training/*.py"), *ROOT.glob("models/**/*.py")])
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "hydromon": __version__,
        "git_commit": commit or "unknown",
        "sources_sha256": sha256_tree(ROOT, sources),
    }


class StepLog:
    """JSON lines in ``<out>/<step>.log``, echoed to the console logger."""

    def __init__(self, path: Path, step: str) -> None:
        self.path = path
        self._logger = get_logger(f"training.{step}")

    def __call__(self, event: str, **fields: Any) -> None:
        record = {"time": format_utc(utc_now()), "event": event, **fields}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
        self._logger.info(event, **fields)


class Progress:
    """Finished units of work, one JSON line each, appended and flushed as each one completes.
    A torn last line (the process died mid-write) is ignored, so that unit is simply redone."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self.records[str(record["unit"])] = record

    def done(self, unit: str) -> bool:
        return unit in self.records

    def mark(self, unit: str, **record: Any) -> None:
        entry = {"unit": unit, "time": format_utc(utc_now()), **record}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, default=str) + "\n")
            handle.flush()
        self.records[unit] = entry


@dataclass
class StepRun:
    """One run of one step in ``out``. ``max_units`` stops it after that many new units."""

    step: str
    out: Path
    settings: object
    inputs: dict[str, Path] = field(default_factory=dict)
    max_units: int | None = None
    new_units: int = 0

    def __post_init__(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.log = StepLog(self.out / f"{self.step}.log", self.step)
        self.progress = Progress(self.out / "progress.jsonl")
        self._params = self._check_params()

    def _check_params(self) -> dict[str, Any]:
        settings = json.loads(json.dumps(as_dict(self.settings), default=str))
        inputs = {
            name: {"path": str(path), "sha256": checksum(path)}
            for name, path in self.inputs.items()
        }
        path = self.out / "params.json"
        if path.exists():
            previous = json.loads(path.read_text(encoding="utf-8"))
            if previous.get("settings") != settings or previous.get("inputs") != inputs:
                raise ValueError(
                    f"{self.out} holds a {previous.get('step')} run with other settings or inputs; "
                    "use a new --out folder (or delete this one) to start over"
                )
            if previous.get("step") != self.step:
                raise ValueError(f"{self.out} holds the output of step {previous.get('step')!r}")
        params = {
            "step": self.step,
            "settings": settings,
            "inputs": inputs,
            "code_version": code_version(),
            "started_utc": format_utc(utc_now()),
            "finished_utc": None,
        }
        atomic_write_json(path, params)
        self.log("start", out=str(self.out), resumed_units=len(self.progress.records))
        return params

    def unit_done(self, unit: str, **record: Any) -> None:
        self.progress.mark(unit, **record)
        self.new_units += 1
        if self.max_units is not None and self.new_units >= self.max_units:
            self.log("stopped", reason="max_units", units=self.new_units)
            raise StepInterrupted(
                f"{self.step}: stopped after {self.new_units} unit(s); rerun to go on"
            )

    def finish(self, **summary: Any) -> None:
        self._params["finished_utc"] = format_utc(utc_now())
        self._params["summary"] = summary
        atomic_write_json(self.out / "params.json", self._params)
        self.log("finished", **summary)
