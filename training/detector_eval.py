"""Does the detector generalise? Leave-one-call-type-out cross-validation at the event level.

For each humpback call type of the open audio set, a classifier is trained without it (and
without the held-out background files), then run like the daemon runs it (window/hop of the
bundle, the monitor's ``EventBuilder``) over two continuous streams made of held-out audio only:

* a *call* stream: the held-out call, unmodified, placed every ``slot_s`` seconds into held-out
  background at each of ``snrs_db``; a call is found when a detection overlaps it;
* a *background* stream: the held-out ordinary and hum segments, rotated (order, circular shift,
  level) to ``background_hours``, with held-out killer-whale calls mixed in as hard negatives;
  every detection there is false.

Window scores are computed once per stream; the event rules (threshold, minimum positive
windows, quiet time) are then swept on them and one operating point is chosen over all folds.

Two modes, as the daemon's ``detector.mode``: ``every-window`` scores every window of the grid;
``cascade`` runs the daemon's own stage 1 and window selection (``monitor.runtime.selection.
Cascade`` over the stream cut into chunks) and scores only the windows it picks; the others reach
the event builder unscored, detections take their boxes' start and end, and the minimum positive
windows rule counts candidates (``min_positive_candidates``)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.classifier.ast import Classifier, load_classifier
from monitor.audio.chunks import AudioChunk, Window
from monitor.audio.windows import WindowSettings
from monitor.candidates.regions import CandidateBox
from monitor.candidates.settings import DetectorSettings
from monitor.detect.builder import EventBuilder, EventSettings
from monitor.detect.records import ModelIdentity, PipelineModels
from monitor.ingest.slots import SegmentRef
from monitor.runtime.cutter import WindowCutter, WindowRange
from monitor.runtime.selection import Cascade
from training.audio import load_mono
from training.manifest import Clip
from training.open_audio import ORCA

FEED = "benchmark"
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
MODES = ("every-window", "cascade")
CHUNK_S = 10.0  # the cascade's input chunks (an HLS segment); its boxes do not depend on it


@dataclass(frozen=True)
class StreamSettings:
    hop_s: float = 1.0
    snrs_db: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 20.0)
    repeats: int = 2  # placements per SNR
    slot_s: float = 25.0  # one call per slot, in its middle
    background_hours: float = 0.5  # per fold
    orca_every_s: float = 30.0  # a hard negative this often in the background stream
    seed: int = 7


@dataclass(frozen=True)
class Rules:
    threshold: float
    min_positive_windows: int
    quiet_s: float


RULE_GRID = {
    "threshold": (0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9, 0.95, 0.99),
    "min_positive_windows": (1, 2, 3),
    "quiet_s": (3.0, 5.0, 10.0),
}
MAX_FALSE_PER_HOUR = 2.0
DETECTED_RECALL = 0.5  # a held-out call type counts as detected at this recall or more


@dataclass(frozen=True)
class Selection:
    """The windows (grid indices) the cascade scores on a stream, with the boxes that chose
    them, and every box it handed to a window."""

    boxes: dict[int, tuple[CandidateBox, ...]]
    box_spans: list[tuple[float, float]]  # seconds from the stream start
    windows: int  # windows on the grid

    @property
    def scored_fraction(self) -> float:
        return len(self.boxes) / max(self.windows, 1)


@dataclass(frozen=True)
class FoldScores:
    """One fold's window scores on its two streams, and where its calls are. Scores are NaN
    for windows that were not scored (the cascade's unpicked windows when only it ran)."""

    call_type: str
    call_scores: np.ndarray
    calls: list[tuple[float, float]]  # call spans (s) in the call stream
    background_scores: np.ndarray
    background_s: float
    call_selection: Selection | None = None  # None: the cascade was not run
    background_selection: Selection | None = None

    def selection(self, stream: str, mode: str) -> Selection | None:
        if mode == "every-window":
            return None
        chosen = self.call_selection if stream == "calls" else self.background_selection
        if chosen is None:
            raise ValueError(f"{self.call_type}: the cascade was not run on this fold")
        return chosen


def _power(wave: np.ndarray) -> float:
    return max(float(np.mean(wave**2)), 1e-12)


def held_out_audio(clips: Sequence[Clip], rate: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(background segments incl. hum, hard negatives) of the test split."""
    test = [c for c in clips if c.split == "test" and c.binary == 0]
    background = [load_mono(c.path, rate) for c in test if c.label != ORCA]
    orca = [load_mono(c.path, rate) for c in test if c.label == ORCA]
    if not background:
        raise ValueError("the benchmark needs held-out background (test split) segments")
    return background, orca


def background_loop(
    segments: list[np.ndarray], seconds: float, rate: int, rng: np.random.Generator
) -> np.ndarray:
    """``seconds`` of held-out background: rotations of the segments (shuffled order, circular
    shift, ±6 dB level per segment)."""
    parts, total = [], 0
    need = round(seconds * rate)
    while total < need:
        for index in rng.permutation(len(segments)):
            seg = np.roll(segments[index], int(rng.integers(len(segments[index]))))
            parts.append(seg * 10 ** (rng.uniform(-6, 6) / 20))
            total += len(seg)
    return np.concatenate(parts)[:need].astype(np.float32)


def _place(stream: np.ndarray, sound: np.ndarray, at: int, snr_db: float) -> None:
    span = stream[at : at + len(sound)]
    scale = math.sqrt(_power(span) * 10 ** (snr_db / 10) / _power(sound))
    stream[at : at + len(sound)] += scale * sound[: len(span)]


def call_stream(
    call: np.ndarray, background: list[np.ndarray], rate: int, settings: StreamSettings
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    rng = np.random.default_rng(settings.seed)
    snrs = [snr for snr in settings.snrs_db for _ in range(settings.repeats)]
    stream = background_loop(background, settings.slot_s * len(snrs), rate, rng)
    spans = []
    for slot, snr in enumerate(snrs):
        start_s = slot * settings.slot_s + settings.slot_s / 2 + rng.uniform(-2, 2)
        at = round(start_s * rate)
        _place(stream, call, at, snr)
        spans.append((at / rate, (at + len(call)) / rate))
    return stream, spans


def negative_stream(
    background: list[np.ndarray], orca: list[np.ndarray], rate: int, settings: StreamSettings
) -> np.ndarray:
    rng = np.random.default_rng(settings.seed + 1)
    stream = background_loop(background, settings.background_hours * 3600, rate, rng)
    if orca:
        step = round(settings.orca_every_s * rate)
        for at in range(step // 2, len(stream) - 5 * rate, step):
            source = orca[int(rng.integers(len(orca)))]
            length = min(len(source), round(rng.uniform(1.0, 5.0) * rate))
            begin = int(rng.integers(len(source) - length + 1))
            _place(stream, source[begin : begin + length], at, rng.uniform(0, 20))
    return stream


def grid_windows(samples: int, window_samples: int, hop_samples: int) -> int:
    return max(0, (samples - window_samples) // hop_samples + 1)


def window_scores(
    classifier: Classifier,
    stream: np.ndarray,
    hop_s: float,
    batch: int = 32,
    only: Sequence[int] | None = None,
) -> np.ndarray:
    """The target label's score of every window starting at k·hop (the daemon's grid); with
    ``only``, of those grid indices alone (NaN elsewhere)."""
    length = classifier.window_samples
    hop = round(hop_s * classifier.sample_rate)
    count = grid_windows(len(stream), length, hop)
    indices = list(range(count)) if only is None else sorted(i for i in only if i < count)
    out = np.full(count, np.nan, dtype=np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(stream, dtype=np.float32))
    for first in range(0, len(indices), batch):
        part = indices[first : first + batch]
        waves = torch.stack([tensor[i * hop : i * hop + length] for i in part])
        out[part] = classifier.score(waves)[:, 0].numpy()
    return out


def cascade_selection(
    stream: np.ndarray,
    rate: int,
    window_s: float,
    hop_s: float,
    settings: DetectorSettings | None = None,
) -> Selection:
    """The daemon's cascade (stage 1 + window selection) over ``stream`` from ``EPOCH``."""
    cutter = WindowCutter(FEED, WindowSettings(window_s, hop_s), WindowRange(), 60.0, None)
    cascade = Cascade(cutter, settings or DetectorSettings(mode="cascade"))
    step = round(CHUNK_S * rate)
    selected = []
    for number, at in enumerate(range(0, len(stream), step)):
        ref = SegmentRef(FEED, f"stream/{number}", 0, number)
        start = EPOCH + timedelta(seconds=at / rate)
        chunk = AudioChunk(FEED, start, rate, stream[np.newaxis, at : at + step], ref)
        selected += cascade.cut(chunk)
    selected += cascade.flush()
    boxes, spans = {}, {}
    for item in selected:
        if item.score:
            index = round((item.window.start_utc - EPOCH).total_seconds() / hop_s)
            boxes[index] = item.boxes
        for box in item.boxes:
            spans[box.start_utc, box.end_utc] = None
    windows = grid_windows(len(stream), round(window_s * rate), round(hop_s * rate))
    return Selection(
        boxes=boxes,
        box_spans=[
            ((a - EPOCH).total_seconds(), (b - EPOCH).total_seconds()) for a, b in sorted(spans)
        ],
        windows=windows,
    )


def detections(
    scores: np.ndarray,
    hop_s: float,
    window_s: float,
    rules: Rules,
    rate: int = 16000,
    selection: Selection | None = None,
) -> list[tuple[float, float]]:
    """Spans (s) of the detections the monitor's event builder makes from these scores; with a
    cascade ``selection``, only its windows are scored (the others are passed unscored) and
    they carry their boxes, as in the daemon."""
    settings = EventSettings(
        thresholds={"humpback": rules.threshold},
        quiet_s=rules.quiet_s,
        min_positive_windows=rules.min_positive_windows,
    )
    models = PipelineModels(classifier=ModelIdentity("benchmark", "sha256:0"))
    builder = EventBuilder(settings, models, clock=lambda: EPOCH)
    samples = np.zeros(round(window_s * rate), dtype=np.float32)
    messages = []
    for index, score in enumerate(scores):
        start = EPOCH + timedelta(seconds=index * hop_s)
        window = Window(FEED, start, rate, samples, hop_s)
        if selection is None:
            messages += builder.observe(window, {"humpback": float(score)}, scored_utc=start)
        elif index in selection.boxes:
            boxes = selection.boxes[index]
            scores_now = {"humpback": float(score)}
            messages += builder.observe(window, scores_now, boxes=boxes, scored_utc=start)
        else:
            messages += builder.observe(window, None, scored_utc=start)
    messages += builder.flush()
    return [
        (
            (m.summary.start_utc - EPOCH).total_seconds(),
            (m.summary.end_utc - EPOCH).total_seconds(),
        )
        for m in messages
        if m.status == "closed"
    ]


def _overlapped(spans: list[tuple[float, float]], found: list[tuple[float, float]]) -> int:
    return sum(1 for a, b in spans if any(s < b and e > a for s, e in found))


def separation(
    fold: FoldScores, hop_s: float, window_s: float, mode: str = "every-window"
) -> dict[str, float]:
    """How far the model ranks the held-out calls above the background, whatever the event
    rules: each call's peak (its best scored window that holds the call's middle, not a sound
    beside it) against the background stream's scored windows; the share of calls above the
    background's maximum (found at 0 false detections), and the AUC of call peaks against
    background windows."""
    call_scores, background = fold.call_scores, fold.background_scores
    if mode == "cascade":
        chosen = [fold.selection("calls", mode), fold.selection("background", mode)]
        call_scores, background = (
            _only_selected(scores, selected)
            for scores, selected in zip((call_scores, background), chosen, strict=True)
        )
    background = background[np.isfinite(background)]
    peaks = []
    for start, end in fold.calls:
        middle = (start + end) / 2  # windows holding the call, not a sound beside it
        first = max(0, int(np.floor((middle - window_s) / hop_s)) + 1)
        last = min(len(call_scores) - 1, int(np.floor(middle / hop_s)))
        over = call_scores[first : last + 1]
        over = over[np.isfinite(over)]
        peaks.append(float(over.max()) if over.size else 0.0)
    if not peaks or background.size == 0:
        return {"calls_above_background": float("nan"), "auc": float("nan")}
    ranked = np.asarray(peaks)[:, None]
    auc = float(np.mean((ranked > background) + 0.5 * (ranked == background)))
    return {
        "call_peak_min": min(peaks),
        "call_peak_max": max(peaks),
        "background_max": float(background.max()),
        "calls_above_background": float(np.mean(ranked[:, 0] > background.max())),
        "auc": auc,
    }


def _mean_of_known(values: list[float]) -> float:
    known = [v for v in values if not np.isnan(v)]
    return float(np.mean(known)) if known else float("nan")


def _only_selected(scores: np.ndarray, selected: Selection | None) -> np.ndarray:
    out = np.full_like(scores, np.nan)
    if selected is not None:
        keep = [i for i in selected.boxes if i < len(scores)]
        out[keep] = scores[keep]
    return out


def fold_result(
    fold: FoldScores, rules: Rules, hop_s: float, window_s: float, mode: str = "every-window"
) -> dict[str, Any]:
    calls_in = fold.selection("calls", mode)
    background_in = fold.selection("background", mode)
    found_in = detections(fold.call_scores, hop_s, window_s, rules, selection=calls_in)
    found = _overlapped(fold.calls, found_in)
    false = len(detections(fold.background_scores, hop_s, window_s, rules, selection=background_in))
    row = {
        "call_type": fold.call_type,
        "calls": len(fold.calls),
        "found": found,
        "recall": found / len(fold.calls),
        "false_detections": false,
        "background_hours": fold.background_s / 3600,
        "false_per_hour": false / (fold.background_s / 3600),
    }
    if calls_in is not None and background_in is not None:
        row |= {
            "box_recall": _overlapped(fold.calls, calls_in.box_spans) / len(fold.calls),
            "background_scored_fraction": background_in.scored_fraction,
        }
    return row


def summarise(
    folds: list[FoldScores], rules: Rules, hop_s: float, window_s: float, mode: str = "every-window"
) -> dict:
    rows = [fold_result(f, rules, hop_s, window_s, mode) for f in folds]
    hours = sum(r["background_hours"] for r in rows)
    calls = sum(r["calls"] for r in rows)
    return {
        "mode": mode,
        "rules": asdict(rules),
        "per_type": rows,
        "types_detected": sum(r["recall"] >= DETECTED_RECALL for r in rows),
        "types": len(rows),
        "recall": sum(r["found"] for r in rows) / calls,
        "false_per_hour": sum(r["false_detections"] for r in rows) / hours,
        "background_hours": hours,
    }


def choose_rules(
    folds: list[FoldScores], hop_s: float, window_s: float, mode: str = "every-window"
) -> dict[str, Any]:
    """The event rules with the most held-out types detected (then the highest recall, then
    the fewest false detections) among those at ≤ MAX_FALSE_PER_HOUR over all folds; when
    none gets there, the ones with the fewest false detections. In ``cascade`` mode the
    minimum positive windows rule counts candidates (the daemon's ``min_positive_candidates``)."""
    best, best_key = None, None
    for values in itertools.product(*RULE_GRID.values()):
        rules = Rules(*values)
        result = summarise(folds, rules, hop_s, window_s, mode)
        within = result["false_per_hour"] <= MAX_FALSE_PER_HOUR
        key = (
            within,
            result["types_detected"] if within else 0,
            result["recall"] if within else -result["false_per_hour"],
            -result["false_per_hour"],
        )
        if best_key is None or key > best_key:
            best, best_key = result, key
    assert best is not None
    return with_separation(best, folds, hop_s, window_s, mode) | {
        "target_met": bool(best_key and best_key[0])
    }


def with_separation(
    result: dict[str, Any], folds: list[FoldScores], hop_s: float, window_s: float, mode: str
) -> dict[str, Any]:
    """``result`` with each fold's ``separation`` figures and their means (they do not depend
    on the event rules, so they are computed once, for the chosen rules' result)."""
    rows = [
        row | separation(fold, hop_s, window_s, mode)
        for row, fold in zip(result["per_type"], folds, strict=True)
    ]
    return result | {
        "per_type": rows,
        "auc": _mean_of_known([r["auc"] for r in rows]),
        "calls_above_background": _mean_of_known([r["calls_above_background"] for r in rows]),
    }


def score_fold(
    classifier: Classifier,
    clips: list[Clip],
    call_type: str,
    settings: StreamSettings,
    modes: Sequence[str] = ("every-window",),
) -> FoldScores:
    """One fold's streams scored in ``modes``: every window when ``every-window`` is among
    them, else only the windows the cascade picks."""
    unknown = set(modes) - set(MODES)
    if unknown or not modes:
        raise ValueError(f"detector benchmark modes: {sorted(unknown) or 'none'}; use {MODES}")
    rate, window_s = classifier.sample_rate, classifier.window_seconds
    call_clip = next(c for c in clips if c.binary == 1 and c.label == call_type)
    background, orca = held_out_audio(clips, rate)
    stream, spans = call_stream(load_mono(call_clip.path, rate), background, rate, settings)
    negatives = negative_stream(background, orca, rate, settings)
    selections: list[Selection | None] = [None, None]
    if "cascade" in modes:
        selections = [
            cascade_selection(audio, rate, window_s, settings.hop_s)
            for audio in (stream, negatives)
        ]
    every = "every-window" in modes

    def scored(audio: np.ndarray, chosen: Selection | None) -> np.ndarray:
        only = None if every or chosen is None else list(chosen.boxes)
        return window_scores(classifier, audio, settings.hop_s, only=only)

    call_scores = scored(stream, selections[0])
    background_scores = scored(negatives, selections[1])
    return FoldScores(
        call_type=call_type,
        call_scores=call_scores,
        calls=spans,
        background_scores=background_scores,
        background_s=len(negatives) / rate,
        call_selection=selections[0],
        background_selection=selections[1],
    )


def cross_validate(
    clips: list[Clip],
    train: Callable[[list[Clip], str], Path],
    settings: StreamSettings,
    *,
    types: Sequence[str] | None = None,
    modes: Sequence[str] = ("every-window",),
    log: Callable[..., None] = lambda *a, **k: None,
) -> tuple[list[FoldScores], float]:
    """Train one model per held-out call type (``train(clips, fold_name)`` → classifier
    folder; a rescore returns the trained one) and score its streams; returns the folds and
    the window length."""
    call_types = sorted({c.label for c in clips if c.binary == 1})
    window_s = 0.0
    folds = []
    for call_type in types or call_types:
        kept = [c for c in clips if c.label != call_type]
        folder = train(kept, call_type)
        classifier = load_classifier(folder, "cpu", target_labels=["humpback"])
        window_s = classifier.window_seconds
        folds.append(score_fold(classifier, clips, call_type, settings, modes))
        log("fold_scored", call_type=call_type, windows=len(folds[-1].background_scores))
    return folds, window_s


def fold_models(run: Path) -> Callable[[list[Clip], str], Path]:
    """The ``train`` of ``cross_validate`` for a finished run: each fold's trained classifier
    (``run``/folds/<type>/classifier/best), nothing retrained."""

    def trained(_kept: list[Clip], call_type: str) -> Path:
        folder = run / "folds" / call_type / "classifier" / "best"
        if not folder.is_dir():
            raise ValueError(f"{folder}: no trained fold model for {call_type}")
        return folder

    return trained


def compare_modes(
    folds: list[FoldScores], hop_s: float, window_s: float, modes: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Each mode's operating point, chosen over the folds, and its per-type figures; and its
    recall and false detections at every threshold of the grid (1 positive window or candidate,
    quiet 3 s), to compare the modes away from the operating point."""
    return {
        mode: choose_rules(folds, hop_s, window_s, mode)
        | {
            "max_false_per_hour": MAX_FALSE_PER_HOUR,
            "window_s": window_s,
            "hop_s": hop_s,
            "sweep": [
                {
                    key: result[key]
                    for key in ("rules", "recall", "types_detected", "false_per_hour")
                }
                for threshold in RULE_GRID["threshold"]
                for result in [summarise(folds, Rules(threshold, 1, 3.0), hop_s, window_s, mode)]
            ],
        }
        for mode in modes
    }
