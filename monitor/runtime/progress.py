"""Replay progress: audio time done across feeds, speed × real time and ETA, on a tqdm bar."""

from __future__ import annotations

import time
from datetime import datetime

from tqdm import tqdm

from monitor.timebase import require_aware


class ReplayProgress:
    """``update(feed, until)`` as each feed's audio is processed up to ``until``."""

    def __init__(
        self, feeds: list[str], start: datetime, end: datetime, *, enabled: bool | None = None
    ) -> None:
        self.start = require_aware(start)
        self.end = require_aware(end)
        self.span_s = (self.end - self.start).total_seconds()
        self.done_s: dict[str, float] = dict.fromkeys(feeds, 0.0)
        self._began = time.monotonic()
        self._initial_s = 0.0  # audio done by an earlier, interrupted run
        self.failed_units = 0
        # enabled=None: tqdm shows the bar only on a terminal.
        self.bar = tqdm(
            total=round(self.span_s * len(feeds)),
            unit="s",
            unit_scale=False,
            desc="replay (audio s)",
            disable=False if enabled else None if enabled is None else True,
            dynamic_ncols=True,
            smoothing=0.1,
        )

    @property
    def total_done_s(self) -> float:
        return sum(self.done_s.values())

    def update(self, feed: str, until: datetime) -> None:
        self._set(feed, self._done(until))

    def resumed(self, feed: str, until: datetime) -> None:
        """``feed`` resumes at ``until``: that much was done before (not counted in speed)."""
        self._set(feed, self._done(until), earlier=True)

    def add(self, feed: str, seconds: float, *, earlier: bool = False) -> None:
        """``seconds`` more of ``feed``'s range are done, in any order (a cluster replay's work
        unit); ``earlier``: by an earlier, interrupted run (not counted in speed)."""
        self._set(feed, min(self.span_s, self.done_s.get(feed, 0.0) + seconds), earlier=earlier)

    def failed(self, count: int) -> None:
        """Work units that failed so far (shown beside the speed)."""
        self.failed_units = count
        self._show()

    def _set(self, feed: str, done: float, *, earlier: bool = False) -> None:
        before = self.done_s.get(feed, 0.0)
        if done <= before:
            return
        self.done_s[feed] = done
        if earlier:
            self._initial_s += done - before
            # tqdm's rate (and so its ETA) is (n - initial) / elapsed: only this run's work.
            self.bar.initial = round(self._initial_s)
        self._show()

    def _show(self) -> None:
        self.bar.n = round(self.total_done_s)
        postfix = f"{self.speed():.1f}× real time"
        if self.failed_units:
            postfix += f", {self.failed_units} failed"
        self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.refresh()

    def _done(self, until: datetime) -> float:
        return min(self.span_s, max(0.0, (require_aware(until) - self.start).total_seconds()))

    def speed(self) -> float:
        """Audio seconds processed per wall-clock second (all feeds together), this run."""
        elapsed = time.monotonic() - self._began
        done = self.total_done_s - self._initial_s
        return done / elapsed if elapsed > 0 else 0.0

    def summary(self, audio_s: float) -> str:
        """The closing line: ``audio_s`` is the audio this run actually decoded (a range with
        little audio in it is mostly gaps, which the bar counts as done but this does not)."""
        elapsed = time.monotonic() - self._began
        speed = audio_s / elapsed if elapsed > 0 else 0.0
        feeds = len(self.done_s)
        return f"replayed {audio_s:.0f} s of audio from {feeds} feed(s) at {speed:.1f}× real time"

    def close(self) -> None:
        self.bar.close()
