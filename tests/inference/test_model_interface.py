"""The engine talks to the models through ``models.interface`` only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_model_interface_needs_no_monitor_code() -> None:
    code = (
        "import sys, models.interface; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('monitor', 'training')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_engine_has_no_concrete_model_imports() -> None:
    source = (ROOT / "monitor" / "inference" / "engine.py").read_text()
    assert "models.classifier" not in source and "models.denoiser" not in source
