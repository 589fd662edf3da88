"""Raven selection tables: parsing and the call-type clean-up the Haro Humpback catalogue needs."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

# Typos seen in the catalogue's tables, fixed word by word (lower-case keys).
TYPO_FIXES = {
    "asceding": "ascending",
    "ascening": "ascending",
    "gunt": "grunt",
    "chrip": "chirp",
    "whuo": "whup",
}
# ``<audio stem>[.Table.<n>].selections.txt``: Raven's own naming, and the catalogue's
# (``OS_10_28_2021_1900_HB.Table.1.selections.txt`` annotates ``OS_10_28_2021_1900_HB.flac``).
TABLE_NAME = re.compile(r"^(?P<stem>.+?)(?:\.Table\.\d+)?\.selections\.txt$", re.IGNORECASE)


@dataclass(frozen=True)
class Annotation:
    selection: str
    begin_s: float
    end_s: float
    low_hz: float | None
    high_hz: float | None
    raw_label: str
    label: str


def clean_label(text: str) -> str:
    """``"Asceding  moan"`` → ``"Ascending_moan"``; ``"whup"`` → ``"Whup"``; empty → ``""``."""
    words = [
        TYPO_FIXES.get(word, word) for word in re.split(r"[\s_]+", text.strip().lower()) if word
    ]
    if not words:
        return ""
    joined = "_".join(words)
    return joined[0].upper() + joined[1:]


def is_table(path: Path) -> bool:
    return TABLE_NAME.match(path.name) is not None


def recording_of(table: Path) -> str:
    """``X.Table.1.selections.txt`` (or ``X.selections.txt``) → ``X``, the stem of the audio file
    it annotates; dots inside ``X`` are kept."""
    match = TABLE_NAME.match(table.name)
    if match is None:
        raise ValueError(f"{table.name} is not named like a Raven table (X.Table.1.selections.txt)")
    return match["stem"]


def _number(row: dict[str, str], column: str) -> float | None:
    value = (row.get(column) or "").strip()
    return float(value) if value else None


def read_selections(path: Path, label_column: str = "Call Type") -> list[Annotation]:
    """One annotation per selection (Raven repeats a selection once per view)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        columns = [name.strip() for name in reader.fieldnames or []]
        needed = {"Selection", "Begin Time (s)", "End Time (s)", label_column}
        missing = needed - set(columns)
        if missing:
            raise ValueError(
                f"{path}: not a Raven selection table with labels; missing {sorted(missing)}"
            )
        reader.fieldnames = columns
        seen: dict[str, Annotation] = {}
        for number, row in enumerate(reader, start=2):
            key = (row.get("Selection") or "").strip()
            if not key or key in seen:
                continue
            try:
                begin, end = float(row["Begin Time (s)"]), float(row["End Time (s)"])
                low, high = _number(row, "Low Freq (Hz)"), _number(row, "High Freq (Hz)")
            except (TypeError, ValueError) as error:
                raise ValueError(f"{path}:{number}: bad time or frequency: {error}") from error
            if end <= begin or begin < 0:
                raise ValueError(f"{path}:{number}: selection {key} has begin {begin} ≥ end {end}")
            raw = (row.get(label_column) or "").strip()
            seen[key] = Annotation(key, begin, end, low, high, raw, clean_label(raw))
    return sorted(seen.values(), key=lambda item: item.begin_s)
