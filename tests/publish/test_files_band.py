"""Raven rows carry a cascade detection's box: its times and its band in Low/High Freq."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

from monitor.candidates.regions import CandidateBox
from monitor.detect.schema import schema_errors
from monitor.publish.files import FileOutput, FileSettings
from tests.support.detections import T0, checked, make_builder, window


async def test_raven_low_and_high_freq_are_the_box_band(tmp_path: Path) -> None:
    builder = make_builder(min_positive_windows=1, quiet_s=2.0)
    call = CandidateBox(
        T0 + timedelta(seconds=1.25), T0 + timedelta(seconds=2.5), 212.5, 1187.5, 400.0, 30.0
    )
    messages = builder.observe(window(0), {"humpback": 0.9}, boxes=(call,))
    messages += builder.observe(window(1), {"humpback": 0.9})  # a window without a box
    for index in range(2, 6):
        messages += builder.observe(window(index), None)
    messages += builder.observe(window(6), {"humpback": 0.8})  # every-window style: no box
    messages += builder.flush()
    output = FileOutput(FileSettings(directory=tmp_path, low_freq_hz=0.0, high_freq_hz=8000.0))
    await output.start()
    for message in checked(messages):
        await output.publish(message)
    await output.close()
    table = output.raven_path("rpi_orcasound_lab", T0)
    with table.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [(r["Begin Time (s)"], r["Low Freq (Hz)"], r["High Freq (Hz)"]) for r in rows] == [
        (f"{43200 + 1.25:.3f}", "212.5", "1187.5"),
        (f"{43200 + 6.0:.3f}", "0.0", "8000.0"),  # floats, as crowsetta reads them
    ]
    lines = [json.loads(x) for p in (tmp_path / "jsonl").glob("*.jsonl") for x in p.open()]
    boxed = [m for m in lines if "low_freq_hz" in m]
    assert {m["status"] for m in boxed} == {"opened", "closed"}
    assert all(schema_errors(m) == [] for m in lines)
