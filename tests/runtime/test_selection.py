"""Window selection on real audio: the cascade hands out every cut window exactly once and in
order, scores only those centred on stage-1 boxes, and never lets the resume point pass a
window it still holds."""

from __future__ import annotations

from datetime import timedelta

from monitor.audio.windows import WindowSettings
from monitor.candidates.settings import DetectorSettings
from monitor.runtime.cutter import WindowCutter, WindowRange
from monitor.runtime.selection import Cascade, EveryWindow, selection_for, window_steps
from tests.support.candidates import T0, mixed, segment_chunks

RATE = 48_000
PLACED = [("Chirp", 13.5), ("DescMoan", 32.5), ("Buzz", 53.0)]
WINDOWS = WindowSettings(length_s=2.0, hop_s=0.5)


def cutter() -> WindowCutter:
    return WindowCutter("feed", WINDOWS, WindowRange(), 60.0, None)


def test_cascade_scores_only_windows_centred_on_boxes_and_hands_out_all_once() -> None:
    signal, truth = mixed(PLACED)
    signal = signal[: RATE * 70]
    every = EveryWindow(cutter())
    cascade = selection_for(DetectorSettings())(cutter())
    assert isinstance(cascade, Cascade)
    all_windows, picked = [], []
    for chunk in segment_chunks(signal):
        all_windows += [s.window.start_utc for s in every.cut(chunk)]
        picked += cascade.cut(chunk)
        # The resume point is never past a window the cascade still holds.
        handed = picked[-1].window.start_utc if picked else None
        if handed is not None:
            assert cascade.next_start == handed + timedelta(seconds=WINDOWS.hop_s)
    picked += cascade.flush()
    assert [s.window.start_utc for s in picked] == all_windows
    scored = [s for s in picked if s.score]
    assert all(s.boxes for s in scored) and not any(s.boxes for s in picked if not s.score)
    for selected in scored:
        for box in selected.boxes:
            centre = selected.window.start_utc + timedelta(seconds=WINDOWS.length_s / 2)
            if box.duration_s <= WINDOWS.length_s:
                assert abs((centre - box.centre_utc).total_seconds()) <= WINDOWS.hop_s / 2
    for name, start, end in truth:
        middle = T0 + timedelta(seconds=(start + end) / 2)
        assert any(s.window.start_utc <= middle <= s.window.end_utc for s in scored), (
            f"{name}: no scored window over the call"
        )
    assert len(scored) <= 0.3 * len(picked), (len(scored), len(picked))


def test_a_long_box_is_tiled_by_windows_centred_on_equal_parts() -> None:
    from monitor.candidates.regions import CandidateBox

    long = CandidateBox(T0, T0 + timedelta(seconds=5.0), 100.0, 900.0, 300.0, 30.0)
    steps = window_steps(long, 2.0, 0.5)
    base = round(T0.timestamp() / 0.5)
    # three parts of 5/3 s, centred at 0.83, 2.5, 4.17 s → windows starting at -0.17, 1.5, 3.17
    assert [s - base for s in steps] == [0, 3, 6]


def test_every_window_mode_scores_everything() -> None:
    signal, _truth = mixed(PLACED[:1])
    selection = selection_for(DetectorSettings(mode="every-window"))(cutter())
    out = []
    for chunk in segment_chunks(signal[: RATE * 20]):
        out += selection.cut(chunk)
    assert out and all(s.score and not s.boxes for s in out)
