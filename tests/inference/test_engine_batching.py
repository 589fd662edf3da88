"""The inference engine: many concurrent callers, batching, back-pressure, stop, errors."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
import torch

from models.classifier.ast import Classifier, load_classifier
from monitor.inference.engine import EngineSettings, EngineStoppedError, InferenceEngine
from tests.support.classifier import LABELS, real_windows, save_tiny_ast

RATE = 48000
WINDOW = 3 * 3840  # the tiny model's 0.24 s window at the stream's 48 kHz


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    directory = save_tiny_ast(tmp_path_factory.mktemp("ast") / "tiny")
    return load_classifier(directory, "cpu", target_labels=list(LABELS[1:4]), thresholds=0.5)


@pytest.fixture(scope="module")
def windows() -> list[np.ndarray]:
    return real_windows(50, WINDOW)[0]


def unbatched(classifier: Classifier, samples: np.ndarray, rate: int) -> dict[str, float]:
    scores = classifier.score(torch.from_numpy(samples)[None], rate)[0]
    return dict(zip(classifier.target_labels, scores.tolist(), strict=True))


def settings(**overrides) -> EngineSettings:
    base = dict(device="cpu", precision="fp32", max_batch=8, max_wait_ms=20, num_threads=1)
    base.update(overrides)
    return EngineSettings(**base)


def assert_scores_close(got: dict[str, float], want: dict[str, float]) -> None:
    assert got.keys() == want.keys()
    for label in want:
        assert got[label] == pytest.approx(want[label], abs=1e-5), label


async def test_fifty_concurrent_callers_get_their_own_scores(
    classifier: Classifier, windows: list[np.ndarray]
) -> None:
    engine = InferenceEngine(classifier, None, settings())
    engine.start()
    try:
        results = await asyncio.gather(*(engine.score(w, RATE) for w in windows))
    finally:
        await engine.stop()
    expected = [unbatched(classifier, w, RATE) for w in windows]
    for got, want in zip(results, expected, strict=True):
        assert_scores_close(got, want)
    # Different inputs give different scores, so a mix-up between callers would show.
    assert len({round(r["Music"], 6) for r in results}) > 40
    stats = engine.stats()
    assert stats.requests == 50
    assert stats.batches < 50
    assert max(stats.batch_sizes) > 1
    assert max(stats.batch_sizes) <= 8
    assert sum(size * n for size, n in stats.batch_sizes.items()) == 50
    assert stats.inference_seconds > 0
    assert stats.audio_seconds == pytest.approx(50 * WINDOW / RATE)


async def test_mixed_lengths_and_rates_in_one_batch(
    classifier: Classifier, windows: list[np.ndarray]
) -> None:
    inputs = [
        (windows[0], RATE),
        (windows[1][: WINDOW // 2].copy(), RATE),  # shorter: padded frames
        (windows[2][::3].copy(), 16000),  # already at the model's rate
        (windows[3], RATE),
        (windows[4][: 44100 // 4].copy(), 44100),
    ]
    engine = InferenceEngine(classifier, None, settings(max_wait_ms=200))
    engine.start()
    try:
        results = await asyncio.gather(*(engine.score(s, r) for s, r in inputs))
    finally:
        await engine.stop()
    for (samples, rate), got in zip(inputs, results, strict=True):
        assert_scores_close(got, unbatched(classifier, samples, rate))


async def test_back_pressure_with_a_tiny_queue(
    classifier: Classifier, windows: list[np.ndarray]
) -> None:
    engine = InferenceEngine(classifier, None, settings(queue_size=2, max_batch=1, max_wait_ms=0))
    engine.start()
    tasks = [asyncio.create_task(engine.score(w, RATE)) for w in windows[:20]]
    depths, waiting = [], []
    while not all(t.done() for t in tasks):
        stats = engine.stats()
        depths.append(stats.queue_depth)
        waiting.append(stats.waiting_for_space)
        await asyncio.sleep(0)
    results = [t.result() for t in tasks]
    await engine.stop()
    assert max(depths) <= 2
    assert max(waiting) > 0  # callers really waited for space
    assert engine.stats().requests == 20
    for w, got in zip(windows[:20], results, strict=True):
        assert_scores_close(got, unbatched(classifier, w, RATE))


async def test_stop_finishes_accepted_work_then_refuses(
    classifier: Classifier, windows: list[np.ndarray]
) -> None:
    engine = InferenceEngine(classifier, None, settings(max_batch=4))
    engine.start()
    tasks = [asyncio.create_task(engine.score(w, RATE)) for w in windows[:30]]
    await asyncio.sleep(0)  # every task has queued its request
    await engine.stop()
    assert all(t.done() for t in tasks)
    for w, task in zip(windows[:30], tasks, strict=True):
        assert_scores_close(task.result(), unbatched(classifier, w, RATE))
    assert engine.stats().requests == 30
    with pytest.raises(EngineStoppedError, match="stopped"):
        await engine.score(windows[0], RATE)


async def test_callers_waiting_for_space_at_stop_get_a_clear_error(
    classifier: Classifier, windows: list[np.ndarray]
) -> None:
    engine = InferenceEngine(classifier, None, settings(queue_size=1, max_batch=1, max_wait_ms=0))
    engine.start()
    tasks = [asyncio.create_task(engine.score(w, RATE)) for w in windows[:10]]
    await asyncio.sleep(0)
    await engine.stop()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    served = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, EngineStoppedError)]
    assert len(served) + len(refused) == 10
    assert served and refused
    assert engine.stats().requests == len(served)


async def test_a_caller_cancelled_while_waiting_for_space_leaves_no_trace(
    classifier: Classifier, windows: list[np.ndarray]
) -> None:
    # The worker holds the one queued request for up to 1 s hoping for a second: the queue
    # (size 1) stays full meanwhile, so the next caller must wait for space.
    engine = InferenceEngine(
        classifier, None, settings(queue_size=1, max_batch=2, max_wait_ms=1000)
    )
    engine.start()
    await engine.wait_ready()
    first = asyncio.create_task(engine.score(windows[0], RATE))
    await asyncio.sleep(0.05)
    waiting = asyncio.create_task(engine.score(windows[1], RATE))
    await asyncio.sleep(0.05)
    assert engine.stats().waiting_for_space == 1
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert engine.stats().waiting_for_space == 0
    assert not first.done()  # still inside the worker's wait: the check above was meaningful
    assert_scores_close(await first, unbatched(classifier, windows[0], RATE))
    await engine.stop()
    assert engine.stats().requests == 1


async def test_score_before_start_is_refused(classifier: Classifier) -> None:
    engine = InferenceEngine(classifier, None, settings())
    with pytest.raises(EngineStoppedError, match="new"):
        await engine.score(np.zeros(WINDOW, np.float32), RATE)


async def test_a_failing_batch_fails_only_its_callers(
    classifier: Classifier, windows: list[np.ndarray]
) -> None:
    engine = InferenceEngine(classifier, None, settings(max_wait_ms=100))
    engine.start()
    too_short = windows[0][:300].copy()  # under one 25 ms frame after resampling
    good, bad = await asyncio.gather(
        engine.score(windows[1], RATE), engine.score(too_short, RATE), return_exceptions=True
    )
    assert isinstance(bad, ValueError)
    assert "at least 400 samples" in str(bad)
    assert_scores_close(good, unbatched(classifier, windows[1], RATE))
    # The engine survives and keeps serving.
    after = await engine.score(windows[2], RATE)
    assert_scores_close(after, unbatched(classifier, windows[2], RATE))
    await engine.stop()
    stats = engine.stats()
    assert stats.failed_batches == 1
    assert stats.failed_requests == 1


@pytest.mark.parametrize(
    ("samples", "rate", "error"),
    [
        (np.zeros((2, WINDOW), np.float32), RATE, ValueError),
        (np.zeros(0, np.float32), RATE, ValueError),
        (np.full(WINDOW, np.nan, np.float32), RATE, ValueError),
        (np.zeros(WINDOW, np.float32), 0, ValueError),
        ([0.0] * WINDOW, RATE, TypeError),
    ],
)
async def test_bad_input_is_refused_before_queueing(
    classifier: Classifier, samples, rate: int, error: type[Exception]
) -> None:
    engine = InferenceEngine(classifier, None, settings())
    engine.start()
    try:
        with pytest.raises(error):
            await engine.score(samples, rate)
    finally:
        await engine.stop()
    assert engine.stats().requests == 0


async def test_cancelled_caller_does_not_disturb_others(
    classifier: Classifier, windows: list[np.ndarray]
) -> None:
    engine = InferenceEngine(classifier, None, settings(max_wait_ms=50))
    engine.start()
    doomed = asyncio.create_task(engine.score(windows[0], RATE))
    kept = asyncio.create_task(engine.score(windows[1], RATE))
    await asyncio.sleep(0)
    doomed.cancel()
    assert_scores_close(await kept, unbatched(classifier, windows[1], RATE))
    assert doomed.cancelled()
    await engine.stop()


async def test_callers_on_another_event_loop_are_answered_on_it(
    classifier: Classifier, windows: list[np.ndarray]
) -> None:
    engine = InferenceEngine(classifier, None, settings(max_wait_ms=30))
    engine.start()
    other: dict[str, object] = {}

    def other_loop() -> None:
        async def main() -> None:
            other["loop"] = asyncio.get_running_loop()
            other["scores"] = await asyncio.gather(*(engine.score(w, RATE) for w in windows[:5]))

        asyncio.run(main())

    thread = threading.Thread(target=other_loop)
    thread.start()
    here = await asyncio.gather(*(engine.score(w, RATE) for w in windows[5:10]))
    await asyncio.get_running_loop().run_in_executor(None, thread.join)
    await engine.stop()
    assert other["loop"] is not asyncio.get_running_loop()
    for w, got in zip(windows[:10], [*other["scores"], *here], strict=True):
        assert_scores_close(got, unbatched(classifier, w, RATE))


async def test_start_twice_is_an_error(classifier: Classifier) -> None:
    engine = InferenceEngine(classifier, None, settings())
    engine.start()
    with pytest.raises(RuntimeError, match="already running"):
        engine.start()
    await engine.stop()
    await engine.stop()  # stopping again is harmless


@pytest.mark.parametrize(
    "bad",
    [
        {"max_batch": 0},
        {"queue_size": 0},
        {"max_wait_ms": -1},
        {"precision": "fp16"},
        {"num_threads": -2},
    ],
)
def test_bad_settings(bad: dict) -> None:
    with pytest.raises(ValueError):
        EngineSettings(**bad)


def test_settings_are_frozen_with_defaults() -> None:
    s = EngineSettings()
    assert (s.max_batch, s.queue_size, s.device, s.precision) == (8, 64, "auto", "auto")
    with pytest.raises(AttributeError):
        s.max_batch = 2  # type: ignore[misc]
