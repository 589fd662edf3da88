"""One logging configuration: stdlib and library records reach the same JSON log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import logging
import transformers
from monitor.health.logs import configure_logging, get_logger

configure_logging(json_lines=True)
get_logger("monitor.test").info("structlog line")
logging.getLogger("models.device").info("engine ready on %s", "cpu")
transformers.utils.logging.get_logger("transformers.modeling_utils").warning("from transformers")
try:
    raise RuntimeError("engine failed")
except RuntimeError:
    logging.getLogger("monitor.inference.engine").exception("batch failed")
logging.getLogger("quiet").debug("below the level")
"""


def test_stdlib_and_transformers_records_are_json_lines_with_their_exceptions() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]
    events = {record["event"]: record for record in records}
    assert list(events) == [
        "structlog line",
        "engine ready on cpu",
        "from transformers",
        "batch failed",
    ]
    assert events["engine ready on cpu"]["logger"] == "models.device"
    assert events["from transformers"]["level"] == "warning"
    failed = events["batch failed"]
    assert failed["level"] == "error" and "RuntimeError: engine failed" in failed["exception"]
    assert all(record["timestamp"].endswith("Z") for record in records)
