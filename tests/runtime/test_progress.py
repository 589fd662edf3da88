"""The replay progress bar counts audio time across feeds and the speed of this run only."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from monitor.runtime.progress import ReplayProgress

START = datetime(2024, 6, 7, 12, 0, tzinfo=UTC)
END = START + timedelta(minutes=10)


def test_counts_audio_across_feeds_clamped_to_the_range() -> None:
    progress = ReplayProgress(["a", "b"], START, END, enabled=False)
    assert progress.bar.total == 1200
    progress.update("a", START + timedelta(seconds=100))
    progress.update("b", START + timedelta(seconds=40))
    progress.update("a", START + timedelta(seconds=90))  # never backwards
    assert progress.total_done_s == 140
    progress.update("b", END + timedelta(seconds=30))  # the last segment runs past the end
    assert progress.total_done_s == 700
    assert progress.bar.n == 700
    progress.close()


def test_speed_leaves_out_what_an_earlier_run_did() -> None:
    progress = ReplayProgress(["a"], START, END, enabled=False)
    progress.resumed("a", START + timedelta(seconds=300))
    assert progress.speed() == 0.0
    time.sleep(0.05)
    progress.update("a", START + timedelta(seconds=310))
    assert 10 / 5.0 < progress.speed() <= 10 / 0.05
    progress.close()


def test_the_bar_eta_uses_this_runs_speed_after_a_resume() -> None:
    progress = ReplayProgress(["a"], START, END, enabled=True)  # drawn on stderr (captured)
    progress.resumed("a", START + timedelta(seconds=300))
    time.sleep(0.2)
    progress.update("a", START + timedelta(seconds=310))
    meter = progress.bar.format_dict
    assert meter["initial"] == 300 and meter["n"] == 310
    # tqdm's own text: the rate (so the ETA) comes from the 10 s done in this run only
    text = progress.bar.format_meter(**meter)
    rate = float(text.split("s/s")[0].rsplit(" ", 1)[-1])
    assert rate <= 10 / 0.2
    progress.close()
