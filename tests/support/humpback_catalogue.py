"""A small stand-in for the Haro Humpback catalogue, built from real audio: real humpback calls
(tests/data/humpback-calls) mixed into real Orcasound noise (tests/data/orcasound-hls/normal),
at 44.1 kHz, with Raven selection tables that carry the catalogue's label typos."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.audio.audiofile import read_audio, write_audio
from training.audio import resample

RATE = 44100
RAVEN_HEADER = [
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Call Type",
]


@dataclass(frozen=True)
class Placed:
    call_file: str
    label: str  # as written in the table (typos included)
    at_s: float


# Three ~30 s recordings, three calls each; labels carry typos the cleaner must fix. Names follow
# the catalogue's: `OS_10_28_2021_1900_HB.flac` ↔ `OS_10_28_2021_1900_HB.Table.1.selections.txt`.
RECORDINGS: dict[str, tuple[tuple[str, ...], list[Placed]]] = {
    "OS_10_03_2021_19_34_00_": (
        ("live1184.ts", "live2289.ts", "live2649.ts"),
        [
            Placed("AscMoan.wav", "Asceding moan", 2.0),
            Placed("Chirp.wav", "Chrip", 14.0),
            Placed("Growl.wav", "Growl", 24.0),
        ],
    ),
    "OS_10_05_2021_11_20_00_": (
        ("live3504.ts", "live385.ts", "live6079.ts"),
        [
            Placed("moan.wav", "moan", 2.5),
            Placed("AscMoan.wav", "Ascening Moan", 13.5),
            Placed("Chirp.wav", "Chirp", 24.5),
        ],
    ),
    "OS_10_28_2021_1900_HB": (
        ("live839.ts", "live2008.ts", "live3368.ts"),
        [
            Placed("Growl.wav", "growl", 3.0),
            Placed("Chirp.wav", "Chrip", 15.0),
            Placed("AscMoan.wav", "Asceding  moan", 23.0),
        ],
    ),
}


def mono(path: Path) -> np.ndarray:
    samples, rate = read_audio(path)
    return resample(samples.mean(axis=0), rate, RATE)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def build_catalogue(data: Path, folder: Path) -> dict[str, list[tuple[float, float, str]]]:
    """Write ``folder/flac_files/*.flac`` and ``folder/Annotations/*.Table.1.selections.txt``;
    return each recording's (begin, end, table label) annotations."""
    audio_dir, table_dir = folder / "flac_files", folder / "Annotations"
    audio_dir.mkdir(parents=True, exist_ok=True)
    table_dir.mkdir(parents=True, exist_ok=True)
    truth: dict[str, list[tuple[float, float, str]]] = {}
    for name, (segments, calls) in RECORDINGS.items():
        noise = np.concatenate([mono(data / "orcasound-hls" / "normal" / s) for s in segments])
        noise = noise / max(rms(noise), 1e-6) * 0.02
        mix = noise.copy()
        rows = ["\t".join(RAVEN_HEADER)]
        truth[name] = []
        for number, placed in enumerate(calls, start=1):
            call = mono(data / "humpback-calls" / placed.call_file)
            call = call / max(rms(call), 1e-6) * 0.08
            first = round(placed.at_s * RATE)
            mix[first : first + len(call)] += call[: len(mix) - first]
            begin, end = placed.at_s, placed.at_s + len(call) / RATE
            truth[name].append((begin, end, placed.label))
            for view in ("Waveform 1", "Spectrogram 1"):  # Raven lists a selection per view
                rows.append(
                    "\t".join(
                        [
                            str(number),
                            view,
                            "1",
                            f"{begin:.4f}",
                            f"{end:.4f}",
                            "100.0",
                            "4000.0",
                            placed.label,
                        ]
                    )
                )
        write_audio(audio_dir / f"{name}.flac", np.clip(mix, -1, 1)[None, :], RATE)
        (table_dir / f"{name}.Table.1.selections.txt").write_text("\n".join(rows) + "\n")
    return truth


PREFIX = "humpbacks/Emily-Vierling-Orcasound-data/Em_HW_data/"


def catalogue_objects(folder: Path) -> dict[str, bytes]:
    """The catalogue's files as the bucket holds them: key under the real prefix → bytes."""
    return {
        PREFIX + path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


async def upload_objects(endpoint_url: str, bucket: str, objects: dict[str, bytes]) -> None:
    """Create ``bucket`` on the S3 emulator and put ``objects`` in it, public as the real one."""
    from aiobotocore.session import get_session

    session = get_session()
    async with session.create_client(
        "s3", region_name="us-west-2", endpoint_url=endpoint_url
    ) as s3:
        await s3.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
        )
        for key, data in objects.items():
            await s3.put_object(Bucket=bucket, Key=key, Body=data, ACL="public-read")


def upload_catalogue(endpoint_url: str, bucket: str, folder: Path) -> dict[str, bytes]:
    objects = catalogue_objects(folder)
    asyncio.run(upload_objects(endpoint_url, bucket, objects))
    return objects
