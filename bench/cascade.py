"""Cascade benchmark: stage 1 (candidate boxes) and the two-stage daemon against every-window
scoring, side by side in one run, on real audio (the tests' Orcasound background and catalogue
humpback calls). CPU figures are process CPU time (all threads), not wall time: the machine is
shared.

  stage1     × real time per core over the background; recall of placed calls as boxes and
             their start/end error; share of windows sent to the classifier on the plain
             background (full-size, embedded and tiny window geometry) and on the hum segments
  recall     the end-to-end scenario replayed in both modes with the tests' tiny AST: calls found,
             detection start/end error, windows scored
  cost       CPU seconds per audio second of one feed through the daemon (replay of --minutes),
             both modes, with the embedded default classifier (models/default) and a full-size
             AST built from ASTConfig defaults (random weights) → feeds per 2-core CPU
  live       `hydromon run` (the real daemon, a subprocess) following eight feeds of a local
             mirror written at real pace (a segment per feed every 10 s, demo_node's publisher),
             cascade, full-size AST and embedded default: the daemon's CPU time (/proc) over the
             played stream as a share of 2 cores, and its lag (end of the audio published so
             far − the feed's processed_until in /status, sampled each second)
  int8       torch.ao dynamic int8 quantisation of the classifiers: speed and the largest score
             difference against fp32 on real windows
  onnx       the same for ONNX Runtime on CPU (torch.onnx export of the transformer, one thread;
             needs the onnx and onnxruntime packages)

    nice python bench/cascade.py                   # everything (~15 min on 2 shared cores)
    nice python bench/cascade.py --only stage1 --only recall
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.e2e import full_size_checkpoint, placed_calls  # noqa: E402
from monitor.audio.windows import WindowSettings  # noqa: E402
from monitor.candidates.settings import DetectorSettings  # noqa: E402
from monitor.config.loader import load_config  # noqa: E402
from monitor.health.logs import configure_logging  # noqa: E402
from monitor.ingest.demo_node import RATE, SEGMENT_S, publish_segment  # noqa: E402
from monitor.runtime.cutter import WindowCutter, WindowRange  # noqa: E402
from monitor.runtime.selection import Cascade  # noqa: E402
from monitor.timebase import parse_utc, utc_now  # noqa: E402
from tests.support.candidates import (  # noqa: E402
    HUM,
    bed,
    call_extent,
    detect,
    hum_segment,
    mixed,
    seconds,
    segment_chunks,
)
from tests.support.cascade import (  # noqa: E402
    NODE,
    closed_detections,
    mirror,
    replay,
    replay_config,
    replay_daemon,
)
from tests.support.e2e import build_stream, config_toml, train_classifier  # noqa: E402

CALL_NAMES = ["AscMoan", "Buzz", "Chirp", "Creak", "DescMoan", "Growl", "moan"]
EMBEDDED = ROOT / "models" / "default" / "classifier"
SECTIONS = ["stage1", "recall", "cost", "live", "int8", "onnx"]
GEOMETRIES = {"full-size AST": (10.24, 1.0), "embedded default": (5.12, 1.0), "tiny": (1.0, 0.5)}


def section(title: str) -> None:
    print(f"\n### {title}\n", flush=True)


def stage1_speed(minutes: float) -> float:
    """× real time per core: audio seconds per CPU second of stage 1 over looped background."""
    signal = np.resize(bed(), round(minutes * 60 * RATE))
    began = time.process_time()
    detect(signal)
    return signal.shape[0] / RATE / (time.process_time() - began)


def stage1_recall(seed: int = 0) -> dict[str, object]:
    """Every call type placed at random offsets inside background segments (9 rotations of the
    bed): recall as boxes, start and end error of the overlapping boxes."""
    rng = np.random.default_rng(seed)
    found, total, starts, ends, extent_starts, extent_ends = 0, 0, [], [], [], []
    per_type: dict[str, list[int]] = {name: [0, 0] for name in CALL_NAMES}
    segments = round(bed().shape[0] / RATE / SEGMENT_S)
    for rotation in range(segments):
        placed = []
        for i, name in enumerate(np.roll(CALL_NAMES, rotation)):
            offset = (i + 1) * SEGMENT_S + float(rng.uniform(0.5, 5.0))
            placed.append((str(name), offset))
        signal, truth = mixed(placed)
        boxes = detect(signal)
        for name, start, end in truth:
            total += 1
            per_type[name][1] += 1
            hits = [b for b in boxes if seconds(b.start_utc) < end and seconds(b.end_utc) > start]
            if hits:
                found += 1
                per_type[name][0] += 1
                box_start = min(seconds(b.start_utc) for b in hits)
                box_end = max(seconds(b.end_utc) for b in hits)
                starts.append(box_start - start)
                ends.append(box_end - end)
                call_start, call_end = call_extent(name)
                extent_starts.append(box_start - (start + call_start))
                extent_ends.append(box_end - (start + call_end))
    return {
        "found": found,
        "total": total,
        "starts": starts,
        "ends": ends,
        "extent_starts": extent_starts,
        "extent_ends": extent_ends,
        "per_type": per_type,
    }


def sent_share(signal: np.ndarray, length_s: float, hop_s: float) -> tuple[int, int]:
    """(windows scored, windows cut) by the cascade over ``signal``."""
    cutter = WindowCutter("bench", WindowSettings(length_s, hop_s), WindowRange(), 120.0, None)
    cascade = Cascade(cutter, DetectorSettings())
    picked = []
    for chunk in segment_chunks(signal):
        picked += cascade.cut(chunk)
    picked += cascade.flush()
    return sum(1 for s in picked if s.score), len(picked)


def describe(errors: list[float]) -> str:
    if not errors:
        return "n/a"
    absolute = np.abs(errors)
    return (
        f"median {np.median(errors):+.2f} s; size: median {np.median(absolute):.2f} s, "
        f"p90 {np.quantile(absolute, 0.9):.2f} s, max {absolute.max():.2f} s"
    )


def run_stage1(minutes: float) -> None:
    section("Stage 1")
    speed = stage1_speed(minutes)
    print(f"- stage 1 alone: **{speed:.0f}× real time per core** ({minutes:g} min of audio)")
    result = stage1_recall()
    found, total = result["found"], result["total"]
    print(f"- recall of placed calls as boxes: **{found}/{total}** ({found / total:.0%})")
    per_type = ", ".join(f"{n} {a}/{b}" for n, (a, b) in result["per_type"].items())
    print(f"  - per call type: {per_type}")
    print(f"- box start − clip start: {describe(result['starts'])}")
    print(f"- box end − clip end: {describe(result['ends'])}")
    print(f"- box start − call extent start: {describe(result['extent_starts'])}")
    print(f"- box end − call extent end: {describe(result['extent_ends'])}")
    background = np.resize(bed(), round(9 * 90 * RATE))  # the bed, looped 9 times
    for name, (length_s, hop_s) in GEOMETRIES.items():
        scored, cut = sent_share(background, length_s, hop_s)
        print(
            f"- windows sent to the classifier on plain background, {name} "
            f"({length_s:g} s / {hop_s:g} s hop): **{scored}/{cut} = {scored / cut:.1%}**"
        )
    boxes = 0
    for path in HUM:
        samples, rate = hum_segment(path)
        boxes += len(detect(samples, rate))
    print(f"- boxes on the {len(HUM)} real hum segments (unintelligible/): **{boxes}**")


async def run_recall(work: Path) -> None:
    section("Recall: cascade vs every-window (end-to-end scenario, tiny AST)")
    classifier = train_classifier(work / "tiny")
    placed = [(CALL_NAMES[i % 7], 40.0 * i + 13.3) for i in range(7)]
    stream = build_stream(1_717_761_600, 7 * 40.0, placed)
    root = mirror(work / "mirror", stream)
    print(
        "| mode | calls found | start − clip start | end − clip end | start − call extent start "
        "| end − call extent end | windows scored | CPU s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for mode in ("every-window", "cascade"):
        config = replay_config(work / mode, root, classifier, mode)
        began = time.process_time()
        daemon = await replay(config, stream, work / mode / "out")
        cpu = time.process_time() - began
        closed = closed_detections(work / mode / "out")
        starts, ends, extent_starts, extent_ends, found = [], [], [], [], 0
        for call in stream.calls:
            hits = [
                m
                for m in closed
                if parse_utc(m["start_utc"]) <= call.end_utc
                and parse_utc(m["end_utc"]) >= call.start_utc
            ]
            if hits:
                found += 1
                start = (parse_utc(hits[0]["start_utc"]) - call.start_utc).total_seconds()
                end = (parse_utc(hits[-1]["end_utc"]) - call.start_utc).total_seconds()
                extent = call_extent(call.name)
                starts.append(start)
                ends.append(end - (call.end_utc - call.start_utc).total_seconds())
                extent_starts.append(start - extent[0])
                extent_ends.append(end - extent[1])
        progress = daemon.pipelines[NODE].progress
        handled = progress.windows_scored + progress.windows_unscored
        extra = len(closed) - found
        print(
            f"| {mode} | {found}/{len(stream.calls)} (+{extra} other) | "
            f"{describe(starts)} | {describe(ends)} | "
            f"{describe(extent_starts)} | {describe(extent_ends)} | "
            f"{progress.windows_scored}/{handled} | {cpu:.1f} |"
        )


async def feed_cost(work: Path, classifier: Path, mode: str, hop_s: float, minutes: float):
    """CPU seconds per audio second of one feed (daemon replay; model loading excluded), and
    the windows scored of those cut."""
    length = round(minutes * 60 / 40) * 40.0
    stream = build_stream(1_717_761_600, length, placed_calls(length))
    root = work / "mirror"
    if not root.exists():
        mirror(root, stream)
    replay_config(work / mode, root, classifier, mode)
    path = work / mode / "hydromon.toml"
    path.write_text(path.read_text().replace("hop_s = 0.5", f"hop_s = {hop_s}"))
    daemon = replay_daemon(load_config(path, env={}), stream, work / mode / "out")
    run = asyncio.create_task(daemon.run(asyncio.Event()))
    await daemon.started.wait()
    began = time.process_time()
    assert await run == 0
    cpu = time.process_time() - began
    progress = daemon.pipelines[NODE].progress
    handled = progress.windows_scored + progress.windows_unscored
    return cpu / stream.audio_s, progress.windows_scored, handled


async def run_cost(work: Path, minutes: float) -> None:
    section(
        f"CPU per feed through the daemon ({minutes:g} min replay of one feed, engine 1 thread)"
    )
    full = full_size_checkpoint(work / "ast-base")
    columns = ["classifier", "mode", "windows scored", "CPU s per audio s", "8 feeds on 2 cores"]
    print("| " + " | ".join([*columns, "feeds at 70 %"]) + " |")
    print("|---|---|---|---|---|---|")
    for name, checkpoint in (("embedded default", EMBEDDED), ("full-size AST", full)):
        costs = {}
        for mode in ("every-window", "cascade"):
            share, scored, handled = await feed_cost(
                work / name.replace(" ", "-"), checkpoint, mode, 1.0, minutes
            )
            costs[mode] = share
            print(
                f"| {name} | {mode} | {scored}/{handled} | {share:.4f} | "
                f"{8 * share / 2:.0%} | {1.4 / share:.0f} |"
            )
        print(f"| {name} | ratio every-window / cascade | | "
              f"{costs['every-window'] / costs['cascade']:.1f}× | | |")  # fmt: skip


LIVE_FEEDS = 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as reply:
            return json.load(reply)
    except OSError:
        return None


def _lags(body: dict, available: datetime) -> list[float]:
    """Per feed: how far its processing is behind the audio published so far."""
    return [
        (available - parse_utc(feed["processed_until"])).total_seconds()
        for feed in body["feeds"].values()
        if feed.get("processed_until")
    ]


def live_run(work: Path, classifier: Path, minutes: float) -> dict[str, object]:
    """Eight feeds played at real pace into a mirror, followed by ``hydromon run``."""
    feeds = [f"rpi_live_{i}" for i in range(LIVE_FEEDS)]
    seconds = round(minutes * 60 / 40) * 40.0
    streams = [build_stream(0, seconds, placed_calls(seconds), rotate=i) for i in range(LIVE_FEEDS)]
    root = work / "mirror"
    root.mkdir(parents=True)
    port = _free_port()
    text = config_toml(
        endpoint=f"file://{root}", bucket="mirror", node=feeds[0], classifier=classifier,
        workdir=work, http_port=port, extra_nodes=tuple(feeds[1:]),
    )  # fmt: skip
    config = work / "hydromon.toml"
    config.write_text(text.replace("hop_s = 0.5", "hop_s = 1.0"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "monitor.cli.main", "--log-level", "warning", "run",
               "--config", str(config), "--backfill", "5m"]  # fmt: skip
    log = (work / "daemon.log").open("w")
    daemon = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while not ((body := _status(port)) and body["ready"]):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not get ready: see {work / 'daemon.log'}")
            time.sleep(0.5)
        # Audio times like a live node: a segment appears when its audio has just ended.
        epoch = int(utc_now().timestamp() - SEGMENT_S)
        streams = [dataclasses.replace(s, folder_epoch=epoch) for s in streams]
        cpu0, wall0 = _cpu_s(daemon.pid), time.monotonic()
        # (wall s since the first segment, the worst feed's lag behind the published audio)
        lags: list[tuple[float, float]] = []
        for number in range(len(streams[0].segments)):
            due = wall0 + number * SEGMENT_S
            for feed, stream in zip(feeds, streams, strict=True):
                publish_segment(root, feed, stream, number)
            available = streams[0].start_utc + timedelta(seconds=(number + 1) * SEGMENT_S)
            while time.monotonic() < due + SEGMENT_S:
                if body := _status(port):
                    feed_lags = _lags(body, available)
                    if len(feed_lags) == LIVE_FEEDS:
                        lags.append((time.monotonic() - wall0, max(feed_lags)))
                time.sleep(1.0)
        cpu, wall = _cpu_s(daemon.pid) - cpu0, time.monotonic() - wall0
        last = _status(port) or {"feeds": {}}
        restarts = sum(feed.get("restarts", 0) for feed in last["feeds"].values())
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon exited {daemon.returncode}: see {work / 'daemon.log'}")
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=120)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
    half = [lag for at, lag in lags if at >= wall / 2]
    return {
        "wall": wall,
        "cpu": cpu,
        "audio": seconds * LIVE_FEEDS,
        "restarts": restarts,
        "lag_first": max((lag for at, lag in lags if at < wall / 2), default=float("nan")),
        "lag_second": max(half, default=float("nan")),
        "lag_median": float(np.median([lag for _, lag in lags])) if lags else float("nan"),
        "lag_per_segment": [
            max((lag for at, lag in lags if n * SEGMENT_S <= at < (n + 1) * SEGMENT_S), default=0)
            for n in range(round(wall / SEGMENT_S))
        ],
    }


def run_live(work: Path, minutes: float) -> None:
    section(f"Live: `hydromon run`, {LIVE_FEEDS} feeds at real pace from a local mirror (cascade)")
    full = full_size_checkpoint(work / "ast-base")
    print("| classifier | played | daemon CPU s | share of 2 cores | lag median | "
          "worst lag, 1st half | worst lag, 2nd half | feed restarts |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    traces = []
    for name, checkpoint in (("full-size AST", full), ("embedded default", EMBEDDED)):
        result = live_run(work / name.replace(" ", "-"), checkpoint, minutes)
        share = result["cpu"] / result["wall"] / 2
        print(
            f"| {name} | {result['wall']:.0f} s × {LIVE_FEEDS} feeds | {result['cpu']:.1f} | "
            f"**{share:.0%}** | {result['lag_median']:.1f} s | {result['lag_first']:.1f} s | "
            f"{result['lag_second']:.1f} s | {result['restarts']} |",
            flush=True,
        )
        trace = " ".join(f"{lag:.0f}" for lag in result["lag_per_segment"])
        traces.append(f"- {name}: worst lag (s) in each 10 s of the run: {trace}")
    print("\n" + "\n".join(traces))


def run_int8(work: Path) -> None:
    section("Int8 dynamic quantisation (torch.ao.quantization.quantize_dynamic, Linear layers)")
    from models.classifier.ast import load_classifier

    signal, _truth = mixed([(name, 10.0 * (i + 1) + 2.0) for i, name in enumerate(CALL_NAMES)])
    full = full_size_checkpoint(work / "ast-base-int8")
    print("| classifier | fp32 s/window | int8 s/window | speed-up | max score difference |")
    print("|---|---|---|---|---|")
    for name, checkpoint in (("embedded default", EMBEDDED), ("full-size AST", full)):
        classifier = load_classifier(checkpoint, "cpu", target_labels=["humpback"], thresholds=0.5)
        length = round(classifier.window_seconds * RATE)
        starts = np.linspace(0, signal.shape[0] - length, 8).astype(int)
        windows = np.stack([signal[s : s + length] for s in starts])
        batch = torch.from_numpy(windows)
        fp32 = _timed_scores(classifier, batch)
        quantised = torch.ao.quantization.quantize_dynamic(
            classifier.model, {torch.nn.Linear}, dtype=torch.qint8
        )
        original, classifier.model = classifier.model, quantised
        int8 = _timed_scores(classifier, batch)
        classifier.model = original
        difference = float(np.max(np.abs(fp32[0] - int8[0])))
        print(
            f"| {name} | {fp32[1]:.3f} | {int8[1]:.3f} | {fp32[1] / int8[1]:.2f}× | "
            f"{difference:.4f} |"
        )


class _OnnxModel:
    """An ONNX Runtime session where the classifier calls its transformer."""

    def __init__(self, path: Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(path), options, ["CPUExecutionProvider"])

    def parameters(self):
        return iter([torch.zeros(1)])  # the classifier's device: CPU

    def __call__(self, input_values: torch.Tensor):
        (logits,) = self.session.run(["logits"], {"input_values": input_values.numpy()})
        return argparse.Namespace(logits=torch.from_numpy(logits))


def run_onnx(work: Path) -> None:
    section("ONNX Runtime on CPU (torch.onnx export of the transformer, one thread)")
    import onnxruntime

    from models.classifier.ast import load_classifier

    print(f"onnxruntime {onnxruntime.__version__}")
    signal, _truth = mixed([(name, 10.0 * (i + 1) + 2.0) for i, name in enumerate(CALL_NAMES)])
    full = full_size_checkpoint(work / "ast-base-onnx")
    print(
        "| classifier | torch fp32 s/window | ONNX Runtime s/window | speed-up | max score diff |"
    )
    print("|---|---|---|---|---|")
    for name, checkpoint in (("embedded default", EMBEDDED), ("full-size AST", full)):
        classifier = load_classifier(checkpoint, "cpu", target_labels=["humpback"], thresholds=0.5)
        length = round(classifier.window_seconds * RATE)
        starts = np.linspace(0, signal.shape[0] - length, 8).astype(int)
        batch = torch.from_numpy(np.stack([signal[s : s + length] for s in starts]))
        fp32 = _timed_scores(classifier, batch)
        with torch.no_grad():  # export traces: no inference-mode tensors
            features = classifier.features(batch[:2].clone(), RATE)
        path = work / f"{name.replace(' ', '-')}.onnx"
        exported = _LogitsOnly(classifier.model).eval()
        with torch.no_grad():
            torch.onnx.export(
            exported, (features,), str(path), input_names=["input_values"],
            output_names=["logits"], dynamic_axes={"input_values": {0: "batch"}},
            dynamo=False,
        )  # fmt: skip
        original, classifier.model = classifier.model, _OnnxModel(path)
        onnx = _timed_scores(classifier, batch)
        classifier.model = original
        difference = float(np.max(np.abs(fp32[0] - onnx[0])))
        print(
            f"| {name} | {fp32[1]:.3f} | {onnx[1]:.3f} | {fp32[1] / onnx[1]:.2f}× | "
            f"{difference:.2e} |",
            flush=True,
        )


class _LogitsOnly(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        return self.model(input_values=input_values).logits


def _timed_scores(classifier, batch: torch.Tensor) -> tuple[np.ndarray, float]:
    with torch.inference_mode():
        classifier.score(batch[:1], RATE)  # warm-up
        began = time.process_time()
        scores = classifier.score(batch, RATE)
        cpu = time.process_time() - began
    return scores.numpy().astype(np.float64), cpu / batch.shape[0]


async def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    configure_logging(level="warning", json_lines=False)
    only = set(args.only or SECTIONS)
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores "
          f"(shared: other jobs were running), Python {platform.python_version()}, "
          f"torch {torch.__version__}; CPU figures are process CPU time.")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-cascade-") as tmp:
        work = Path(tmp)
        if "stage1" in only:
            run_stage1(args.minutes)
        if "recall" in only:
            await run_recall(work / "recall")
        if "cost" in only:
            await run_cost(work / "cost", args.minutes)
        if "live" in only:
            run_live(work / "live", args.minutes)
        if "int8" in only:
            run_int8(work / "int8")
        if "onnx" in only:
            run_onnx(work / "onnx")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="audio per cost run")
    parser.add_argument("--only", action="append", choices=SECTIONS)
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
