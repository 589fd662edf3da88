"""Models benchmark: the seed's window-by-window pipeline against the batched engine.

Full-size models with random weights (AST-base from `ASTConfig()` defaults, 1024 frames; the
ORCA-CLEAN U-Net at base width 64) on real Orcasound audio from tests/data, 48 kHz windows of
the classifier's length (10.24 s) cut every second from the decoded segments.

  baseline: transformers `pipeline("audio-classification")` called window by window (it
            resamples 48 kHz → 16 kHz itself); with the denoiser, each window is resampled to
            44.1 kHz and denoised alone in non-overlapping 1.28 s chunks (as the seed did).
  engine:   `InferenceEngine`, all windows submitted at once, batched; fp32, then the
            precision policy's choice (bf16 autocast where it agrees with fp32 and is
            faster), for the classifier alone and for denoiser + classifier; the largest
            score difference of the chosen precision against the fp32 engine on the same
            real audio is printed for both.
  stream:   the engine as the daemon uses it with a denoiser: the stream the windows cover is
            denoised once (`StreamDenoiser`, fed 10 s segments, through `engine.denoise`), then
            the same windows are cut from it and scored with `denoise=False`.

Prints audio-seconds per wall-second (× real time), engine/baseline ratios and the largest
score differences. Needs only torch, torchaudio, transformers, numpy and PyAV (for decoding
the test segments). `--tiny` runs tiny models for a quick smoke test.

    nice python bench/models.py --windows 4
    python bench/models.py --device cuda --windows 64 --max-batch 32   # on a GPU
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
import torchaudio
from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification, pipeline

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.classifier.ast import Classifier, load_classifier  # noqa: E402
from models.denoiser.model import Denoiser, build_denoiser  # noqa: E402
from models.denoiser.streaming import StreamingSettings  # noqa: E402
from models.device import available_cores, configure_threads, select_device  # noqa: E402
from monitor.audio.chunks import AudioChunk  # noqa: E402
from monitor.inference.engine import EngineSettings, InferenceEngine  # noqa: E402
from monitor.inference.stream_denoise import StreamDenoiser  # noqa: E402
from monitor.ingest.slots import SegmentRef  # noqa: E402
from monitor.timebase import after_samples, parse_utc  # noqa: E402

STREAM_RATE = 48000
SEGMENTS = ROOT / "tests" / "data" / "orcasound-hls" / "normal"
N_LABELS = 16


@dataclass
class Run:
    name: str
    audio_seconds: float
    wall_seconds: float
    scores: np.ndarray  # (windows, labels)
    note: str = ""

    @property
    def speed(self) -> float:
        return self.audio_seconds / self.wall_seconds


def decode_segments(directory: Path) -> np.ndarray:
    """All real segments, decoded to mono 48 kHz float32 and concatenated."""
    parts = []
    for path in sorted(directory.glob("*.ts")):
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="fltp", layout="mono", rate=STREAM_RATE)
            for frame in container.decode(stream):
                parts.extend(out.to_ndarray()[0] for out in resampler.resample(frame))
            parts.extend(out.to_ndarray()[0] for out in resampler.resample(None))
    return np.concatenate(parts).astype(np.float32)


def cut_windows(audio: np.ndarray, count: int, length: int) -> list[np.ndarray]:
    """`count` windows of `length` samples, one every second (wrapping round if needed)."""
    starts = range(0, audio.shape[0] - length, STREAM_RATE)
    if not starts:
        raise SystemExit(f"need more than {length / STREAM_RATE:.2f} s of audio")
    return [
        audio[s : s + length].copy() for _, s in zip(range(count), _cycle(starts), strict=False)
    ]


def _cycle(values: range):
    while True:
        yield from values


def save_random_ast(directory: Path, tiny: bool) -> None:
    labels = {i: f"class_{i:02d}" for i in range(N_LABELS)}
    sizes = {}
    if tiny:
        sizes = dict(
            patch_size=2,
            max_length=100,
            num_mel_bins=16,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            frequency_stride=2,
            time_stride=2,
        )
    config = ASTConfig(
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
        problem_type="multi_label_classification",
        **sizes,
    )
    torch.manual_seed(0)
    ASTForAudioClassification(config).eval().save_pretrained(directory)
    ASTFeatureExtractor(
        num_mel_bins=config.num_mel_bins, max_length=config.max_length
    ).save_pretrained(directory)


def run_baseline(
    name: str,
    ast_dir: Path,
    windows: list[np.ndarray],
    device: torch.device,
    labels: tuple[str, ...],
    denoiser: Denoiser | None,
) -> Run:
    classify = pipeline(
        "audio-classification",
        model=str(ast_dir),
        feature_extractor=str(ast_dir),
        device=device,
    )

    print(f"  {name}: attention {classify.model.config._attn_implementation}")

    def one(window: np.ndarray) -> np.ndarray:
        item = {"raw": window, "sampling_rate": STREAM_RATE}
        if denoiser is not None:
            x = torch.from_numpy(window)[None].to(device)
            x = torchaudio.functional.resample(x, STREAM_RATE, denoiser.sample_rate)
            clean = denoiser.denoise(x)[0].float().cpu().numpy()
            item = {"raw": clean, "sampling_rate": denoiser.sample_rate}
        out = classify(item, top_k=None)
        by_label = {row["label"]: row["score"] for row in out}
        return np.array([by_label[label] for label in labels])

    one(windows[0])  # warm-up, untimed
    started = time.perf_counter()
    scores = np.stack([one(w) for w in windows])
    wall = time.perf_counter() - started
    return Run(name, len(windows) * len(windows[0]) / STREAM_RATE, wall, scores)


def run_engine(
    name: str,
    clf: Classifier,
    denoiser: Denoiser | None,
    windows: list[np.ndarray],
    settings: EngineSettings,
) -> Run:
    async def go() -> Run:
        engine = InferenceEngine(clf, denoiser, settings)
        engine.start()
        probe_started = time.perf_counter()
        choice = await engine.wait_ready()
        probe = time.perf_counter() - probe_started
        await engine.score(windows[0], STREAM_RATE)  # warm-up, untimed
        started = time.perf_counter()
        results = await asyncio.gather(*(engine.score(w, STREAM_RATE) for w in windows))
        wall = time.perf_counter() - started
        await engine.stop()
        stats = engine.stats()
        sizes = dict(sorted(stats.batch_sizes.items()))
        note = f"classifier {choice.precision} ({choice.reason})"
        if engine.denoiser_precision is not None:
            d = engine.denoiser_precision
            note += f", denoiser {d.precision} ({d.reason})"
        note += f"; set-up {probe:.1f} s; batch sizes {sizes}"
        scores = np.array([[r[label] for label in clf.target_labels] for r in results])
        return Run(name, len(windows) * len(windows[0]) / STREAM_RATE, wall, scores, note)

    return asyncio.run(go())


def run_stream_engine(
    name: str,
    clf: Classifier,
    denoiser: Denoiser,
    audio: np.ndarray,
    count: int,
    length: int,
    settings: EngineSettings,
) -> Run:
    """Denoise the audio `count` windows (one a second) cover once, then score the windows."""
    covered = audio[: (count - 1) * STREAM_RATE + length]
    if covered.shape[0] < (count - 1) * STREAM_RATE + length:
        raise SystemExit(f"stream run: not enough audio for {count} windows")
    start = parse_utc("2024-06-07T12:00:00Z")
    segment = 10 * STREAM_RATE
    chunks = [
        AudioChunk(
            "bench",
            after_samples(start, at, STREAM_RATE),
            STREAM_RATE,
            covered[None, at : at + segment],
            SegmentRef("bench", f"live{at // segment}.ts", 0, at // segment),
        )
        for at in range(0, covered.shape[0], segment)
    ]

    async def go() -> Run:
        engine = InferenceEngine(clf, denoiser, settings)
        engine.start()
        probe_started = time.perf_counter()
        choice = await engine.wait_ready()
        probe = time.perf_counter() - probe_started
        await engine.score(covered[:length], STREAM_RATE, denoise=False)  # warm-up, untimed
        await engine.denoise(covered[:segment], STREAM_RATE)
        geometry = engine.denoise_geometry
        assert geometry is not None
        started = time.perf_counter()
        stream = StreamDenoiser(engine.denoise, *geometry)
        parts = []
        for chunk in chunks:
            parts += await stream.feed(chunk)
        parts += await stream.flush()
        clean = np.concatenate([part.samples[0] for part in parts])
        denoised = time.perf_counter() - started
        windows = [clean[i * STREAM_RATE : i * STREAM_RATE + length] for i in range(count)]
        results = await asyncio.gather(
            *(engine.score(w, STREAM_RATE, denoise=False) for w in windows)
        )
        wall = time.perf_counter() - started
        await engine.stop()
        d = engine.denoiser_precision
        note = (
            f"classifier {choice.precision}, denoiser {d.precision if d else '?'}; "
            f"{covered.shape[0] / STREAM_RATE:.2f} s stream denoised in {denoised:.2f} s; "
            f"set-up {probe:.1f} s"
        )
        scores = np.array([[r[label] for label in clf.target_labels] for r in results])
        return Run(name, count * length / STREAM_RATE, wall, scores, note)

    return asyncio.run(go())


def describe_machine(device: torch.device) -> str:
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return (
        f"{where}; {available_cores()} cores available, torch {torch.__version__} "
        f"({torch.get_num_threads()} intra-op threads), python {platform.python_version()}"
    )


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def report(runs: list[Run], baseline: Run, engines: list[Run], out: Callable[[str], None]) -> None:
    for run in runs:
        out(
            f"  {run.name:<34} {run.speed:7.2f}× real time  ({run.wall_seconds:7.2f} s)  {run.note}"
        )
    for run in engines:
        diff = float(np.abs(run.scores - baseline.scores).max())
        out(
            f"  {run.name} / {baseline.name}: {run.speed / baseline.speed:5.2f}×, "
            f"max |score diff| {diff:.2e}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=0, help="windows per run (0: 4 CPU, 64 GPU)")
    parser.add_argument("--tiny", action="store_true", help="tiny models: a quick smoke run")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--max-batch", type=int, default=0, help="engine batch (0: 4 CPU, 32 GPU)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--denoiser-width", type=int, default=64)
    parser.add_argument(
        "--denoiser-chunks",
        type=int,
        default=0,
        help="U-Net chunks per network call (max_batch_chunks; 0: 16 CPU, 128 GPU)",
    )
    parser.add_argument("--no-denoiser", action="store_true", help="classifier runs only")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    device = select_device(args.device)
    gpu = device.type == "cuda"
    count = args.windows or (64 if gpu else 4)
    max_batch = args.max_batch or (32 if gpu else 4)
    configure_threads(args.threads)
    width = 4 if args.tiny else args.denoiser_width
    print(f"machine: {describe_machine(device)}")

    with tempfile.TemporaryDirectory() as tmp:
        ast_dir = Path(tmp) / "ast"
        save_random_ast(ast_dir, args.tiny)
        clf = load_classifier(ast_dir, device)
        length = round(clf.window_seconds * STREAM_RATE)
        audio = decode_segments(SEGMENTS)
        windows = cut_windows(audio, count, length)
        params = sum(p.numel() for p in clf.model.parameters()) / 1e6
        print(
            f"AST {params:.1f} M parameters, {clf.window_seconds:.2f} s windows, "
            f"{clf.attn_implementation} attention; {count} windows of real audio; "
            f"engine max_batch {max_batch}"
        )

        def settings(precision: str) -> EngineSettings:
            return EngineSettings(
                device=str(device),
                precision=precision,  # type: ignore[arg-type]
                max_batch=max_batch,
                max_wait_ms=5,
                queue_size=max(64, count),
                num_threads=args.threads,
            )

        print("classifier only:")
        base = run_baseline("baseline (pipeline)", ast_dir, windows, device, clf.labels, None)
        fp32 = run_engine("engine fp32", clf, None, windows, settings("fp32"))
        runs, engines = [base, fp32], [fp32]
        if args.precision != "fp32":
            chosen = run_engine(
                f"engine {args.precision}", clf, None, windows, settings(args.precision)
            )
            runs.append(chosen)
            engines.append(chosen)
            bf_diff = float(np.abs(chosen.scores - fp32.scores).max())
            print(f"  max |score diff| {args.precision} vs fp32 engine: {bf_diff:.2e}")
        report(runs, base, engines, print)

        if not args.no_denoiser:
            torch.manual_seed(1)
            chunks = args.denoiser_chunks or (128 if gpu else 16)
            streaming = StreamingSettings(max_batch_chunks=chunks)
            denoiser = build_denoiser(base_width=width, streaming=streaming).to(device)
            seed_style = Denoiser(
                denoiser.unet,
                denoiser.options,
                StreamingSettings(overlap_frames=0, max_batch_chunks=chunks),
            ).eval()
            macs = sum(p.numel() for p in denoiser.parameters()) / 1e6
            print(
                f"denoiser ({macs:.1f} M parameters, base width {width}, {chunks} chunks per "
                "network call) + classifier:"
            )
            clf.precision = "fp32"
            dbase = run_baseline(
                "baseline (denoise + pipeline)", ast_dir, windows, device, clf.labels, seed_style
            )
            d_runs = [dbase]
            if args.precision != "fp32":
                d_fp32 = run_engine("engine fp32", clf, denoiser, windows, settings("fp32"))
                d_runs.append(d_fp32)
            d_engine = run_engine(
                f"engine {args.precision}", clf, denoiser, windows, settings(args.precision)
            )
            d_runs.append(d_engine)
            d_stream = run_stream_engine(
                f"engine {args.precision}, stream denoise + classifier",
                clf,
                denoiser,
                audio,
                count,
                length,
                settings(args.precision),
            )
            d_runs.append(d_stream)
            if args.precision != "fp32":
                d_diff = float(np.abs(d_engine.scores - d_fp32.scores).max())
                print(f"  max |score diff| {args.precision} vs fp32 engine: {d_diff:.2e}")
            report(d_runs, dbase, d_runs[1:], print)
            print(
                "  (score differences here include the denoiser's overlapped chunking vs the "
                "baseline's hard chunk edges)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
