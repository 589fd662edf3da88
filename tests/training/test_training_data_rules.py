"""Label clean-up, Raven parsing, recording splits and the clip-cutting rules."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from training.fetch_catalogue import ANNOTATION_DIR, AUDIO_DIR
from training.prepare import (
    PrepareSettings,
    centred_clip,
    find_recordings,
    noise_starts,
    window_clips,
)
from training.raven import Annotation, clean_label, read_selections, recording_of
from training.splits import split_recordings
from training.steprun import StepLog


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Asceding moan", "Ascending_moan"),
        ("Ascening  Moan", "Ascending_moan"),
        ("Gunt", "Grunt"),
        ("Chrip", "Chirp"),
        ("whup", "Whup"),
        ("Whuo", "Whup"),
        ("Descending moan", "Descending_moan"),
        ("  growl ", "Growl"),
        ("", ""),
    ],
)
def test_clean_label(raw: str, clean: str) -> None:
    assert clean_label(raw) == clean


def test_read_selections_keeps_one_row_per_selection(tmp_path: Path) -> None:
    table = tmp_path / "rec1.Table.1.selections.txt"
    table.write_text(
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)"
        "\tCall Type\n"
        "1\tWaveform 1\t1\t1.5\t2.5\t100\t900\tGunt\n"
        "1\tSpectrogram 1\t1\t1.5\t2.5\t100\t900\tGunt\n"
        "2\tSpectrogram 1\t1\t0.5\t0.9\t\t\tChrip\n"
    )
    annotations = read_selections(table)
    assert [(a.selection, a.begin_s, a.label, a.low_hz) for a in annotations] == [
        ("2", 0.5, "Chirp", None),
        ("1", 1.5, "Grunt", 100.0),
    ]
    assert recording_of(table) == "rec1"


def test_read_selections_refuses_tables_without_labels(tmp_path: Path) -> None:
    table = tmp_path / "x.Table.1.selections.txt"
    table.write_text("Selection\tBegin Time (s)\tEnd Time (s)\n1\t0\t1\n")
    with pytest.raises(ValueError, match="Call Type"):
        read_selections(table)


def test_read_selections_refuses_reversed_times(tmp_path: Path) -> None:
    table = tmp_path / "x.Table.1.selections.txt"
    table.write_text("Selection\tBegin Time (s)\tEnd Time (s)\tCall Type\n1\t3\t2\tMoan\n")
    with pytest.raises(ValueError, match=":2: selection 1"):
        read_selections(table)


def test_splits_are_by_recording_deterministic_and_never_empty() -> None:
    names = ["c", "a", "b"]
    first = split_recordings(names, (0.7, 0.15, 0.15), seed=7)
    assert first == split_recordings(list(reversed(names)), (0.7, 0.15, 0.15), seed=7)
    assert sorted(first.values()) == ["test", "train", "val"]
    many = split_recordings([f"r{i}" for i in range(20)], (0.7, 0.15, 0.15), seed=1)
    assert [list(many.values()).count(s) for s in ("train", "val", "test")] == [14, 3, 3]


def test_too_few_recordings_for_the_splits_is_an_error() -> None:
    with pytest.raises(ValueError, match="cannot fill 3 splits"):
        split_recordings(["a", "b"], (0.7, 0.15, 0.15), seed=1)
    assert sorted(split_recordings(["a", "b"], (0.5, 0.0, 0.5), seed=1).values()) == [
        "test",
        "train",
    ]


def ann(begin: float, end: float, label: str = "Moan") -> Annotation:
    return Annotation("1", begin, end, None, None, label, label)


def test_call_clip_is_centred_and_clamped() -> None:
    assert centred_clip(ann(10, 12), 5.0, 60.0) == (8.5, 13.5)
    assert centred_clip(ann(0.5, 1.0), 5.0, 60.0) == (0.0, 5.0)
    assert centred_clip(ann(58, 59.5), 5.0, 60.0) == (55.0, 60.0)


def test_noise_windows_keep_the_margin_and_do_not_overlap() -> None:
    settings = PrepareSettings(noise_margin_s=2.0, noise_grid_s=0.5)
    calls = (ann(10, 12), ann(30, 31))
    starts = noise_starts(calls, 60.0, 10, settings, seed=3)
    assert starts
    for start in starts:
        for call in calls:
            assert start + 5 <= call.begin_s - 2 or start >= call.end_s + 2
    assert all(b - a >= 5 for a, b in itertools.pairwise(starts))


def test_window_set_keeps_windows_with_10_to_80_percent_cover() -> None:
    settings = PrepareSettings(window_step_s=1.0)
    kept = window_clips((ann(10, 12),), {"Moan": "Moan"}, 30.0, settings)
    # a 2 s call covers the 5 s windows starting at 6…11 by 0.2…0.4 and those at 5 or 12 not at all
    starts = [start for start, _, _, _ in kept]
    assert starts == [6.0, 7.0, 8.0, 9.0, 10.0, 11.0]
    assert all(0.1 <= cover <= 0.8 and label == "Moan" for _, _, label, cover in kept)


TABLE = "Selection\tBegin Time (s)\tEnd Time (s)\tCall Type\n1\t1.0\t2.0\tWhup\n"


@pytest.mark.parametrize(
    ("table", "stem"),
    [
        ("OS_10_28_2021_1900_HB.Table.1.selections.txt", "OS_10_28_2021_1900_HB"),
        ("OS_10_03_2021_19_34_00_.Table.1.selections.txt", "OS_10_03_2021_19_34_00_"),
        ("site.2021-10-03.Table.2.selections.txt", "site.2021-10-03"),
        ("site.2021-10-03.selections.txt", "site.2021-10-03"),
        ("rec.table.1.Selections.TXT", "rec"),
    ],
)
def test_table_names_map_to_the_audio_stem(table: str, stem: str) -> None:
    assert recording_of(Path(table)) == stem


def _fetched(folder: Path, audio: list[str], tables: list[str]) -> Path:
    (folder / AUDIO_DIR).mkdir(parents=True)
    (folder / ANNOTATION_DIR).mkdir()
    for name in audio:
        (folder / AUDIO_DIR / name).write_bytes(b"")
    for name in tables:
        (folder / ANNOTATION_DIR / name).write_text(TABLE)
    return folder


def test_find_recordings_pairs_catalogue_names(tmp_path: Path) -> None:
    source = _fetched(
        tmp_path / "f",
        ["OS_10_03_2021_19_34_00_.flac", "OS_10_28_2021_1900_HB.flac", "unannotated.flac"],
        [
            "OS_10_03_2021_19_34_00_.Table.1.selections.txt",
            "OS_10_28_2021_1900_HB.Table.1.selections.txt",
        ],
    )
    log = StepLog(tmp_path / "prepare.log", "prepare")
    found = find_recordings(source, PrepareSettings(), log)
    assert [(r.name, r.audio.name) for r in found] == [
        ("OS_10_03_2021_19_34_00_", "OS_10_03_2021_19_34_00_.flac"),
        ("OS_10_28_2021_1900_HB", "OS_10_28_2021_1900_HB.flac"),
    ]
    assert "unannotated" in (tmp_path / "prepare.log").read_text()


def test_find_recordings_names_tables_without_audio(tmp_path: Path) -> None:
    source = _fetched(tmp_path / "f", ["OS_A.flac"], ["OS_B.Table.1.selections.txt"])
    log = StepLog(tmp_path / "prepare.log", "prepare")
    with pytest.raises(
        ValueError, match=r"OS_B\.Table\.1\.selections\.txt.*audio files: \['OS_A'\]"
    ):
        find_recordings(source, PrepareSettings(), log)
    skipping = PrepareSettings(unmatched_tables="skip")
    with pytest.raises(ValueError, match=r"no selection table in .* matches an audio file"):
        find_recordings(source, skipping, log)
    (source / ANNOTATION_DIR / "OS_A.Table.1.selections.txt").write_text(TABLE)
    assert [r.name for r in find_recordings(source, skipping, log)] == ["OS_A"]
    assert "OS_B.Table.1.selections.txt" in (tmp_path / "prepare.log").read_text()


def test_find_recordings_refuses_two_tables_for_one_recording(tmp_path: Path) -> None:
    source = _fetched(
        tmp_path / "f",
        ["OS_A.flac"],
        ["OS_A.Table.1.selections.txt", "OS_A.Table.2.selections.txt"],
    )
    log = StepLog(tmp_path / "prepare.log", "prepare")
    with pytest.raises(ValueError, match="two selection tables for recording OS_A"):
        find_recordings(source, PrepareSettings(), log)
