"""The repository's own open audio as a clip manifest: the seven catalogue humpback calls, the
real Orcasound background segments, the 60 Hz-hum segments and the killer-whale calls (hard
negatives). Rows point at the files in ``tests/data`` (no copies). A fixed set of background,
hum and orca files is the ``test`` split: the detector benchmark measures false detections on
audio no model was trained on; ``all_train`` puts every file in ``train`` (the shipped model)."""

from __future__ import annotations

from pathlib import Path

from training.manifest import NOISE, Clip, write_manifest

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
CALL_DIR = DATA / "humpback-calls"
BACKGROUND_DIR = DATA / "orcasound-hls" / "normal"
HUM_DIR = DATA / "orcasound-hls" / "unintelligible"
ORCA_DIR = DATA / "orca-calls"
HUM = "hum"
ORCA = "orca_call"
# Never trained on in the benchmark: three ordinary segments, one hum segment, one orca file.
HELD_OUT = frozenset(
    {"live2289.ts", "live6079.ts", "live839.ts", "live4869.ts", "orca-call-examples.wav"}
)
SAMPLE_RATE = 16000  # the classifier's input rate: clips are resampled to it when read


def call_type(path: Path) -> str:
    return path.stem.lower()


def open_audio_clips(*, all_train: bool = False, data: Path = DATA) -> list[Clip]:
    groups = [
        (sorted((data / "humpback-calls").glob("*.wav")), "call", 1, call_type),
        (sorted((data / "orcasound-hls" / "normal").glob("*.ts")), "noise", 0, lambda _: NOISE),
        (
            sorted((data / "orcasound-hls" / "unintelligible").glob("*.ts")),
            "noise",
            0,
            lambda _: HUM,
        ),
        (sorted((data / "orca-calls").glob("*.wav")), "noise", 0, lambda _: ORCA),
    ]
    clips = []
    for paths, kind, binary, label in groups:
        if not paths:
            raise ValueError(f"{data}: no {kind} files of the open audio set")
        for path in paths:
            split = "test" if path.name in HELD_OUT and not all_train else "train"
            clips.append(
                Clip(
                    clip_id=f"{path.parent.name}/{path.name}",
                    path=path.resolve(),
                    recording=path.stem,
                    source_file=path.name,
                    start_s=0.0,
                    end_s=0.0,  # whole file
                    label=label(path),
                    binary=binary,
                    kind=kind,
                    split=split,
                    sample_rate=SAMPLE_RATE,
                )
            )
    return clips


def write_open_audio_manifest(path: Path, clips: list[Clip]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(path, clips)
    return path
