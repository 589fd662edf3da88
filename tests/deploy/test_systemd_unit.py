"""deploy/hydromon.service: systemd accepts it without a warning, and it stops the daemon the
way the daemon expects (SIGTERM, with time for its shutdown)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

from monitor.runtime.daemon_settings import DaemonSettings

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "hydromon.service"
INSTALLED = "/opt/hydromon/.venv/bin/hydromon"


def service_section() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def test_systemd_analyze_verify_passes_without_warnings(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    assert tool is not None, "systemd-analyze is missing: scripts/ensure-services.sh installs it"
    # verify checks that ExecStart exists: point it at this checkout's interpreter.
    unit = tmp_path / "hydromon.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED, sys.executable))
    done = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # Unknown keys and bad values are only warnings to systemd: none may be about our unit.
    complaints = [line for line in done.stderr.splitlines() if "hydromon.service" in line]
    assert complaints == [], done.stderr


def test_the_unit_stops_with_sigterm_after_the_daemons_own_timeouts() -> None:
    service = service_section()
    assert service["ExecStart"].startswith(f"{INSTALLED} run ")
    assert service["KillSignal"] == "SIGTERM"
    defaults = DaemonSettings()
    needed = defaults.shutdown_timeout_s + defaults.output_close_timeout_s
    assert float(service["TimeoutStopSec"]) > needed
    assert service["User"] == "hydromon" and service["StateDirectory"] == "hydromon"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"  # a config error is not retried
