"""Model bundles: an exported classifier (HF folder) + optional denoiser (.pk) + ``bundle.json``
(format version, labels, thresholds, window/hop, sample rates, metrics, provenance, and the
sha256 of every file). ``load_bundle`` checks all of it — and that the classifier folder has the
labels, input rate and window the manifest states — and refuses a bundle that does not match.

Imports only the standard library (the daemon loads this with only torch-side dependencies)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.fileio import sha256_file
from models.thresholds import bad_thresholds

BUNDLE_FORMAT = 1
MANIFEST = "bundle.json"
CLASSIFIER_DIR = "classifier"
DENOISER_FILE = "denoiser.pk"


class BundleError(ValueError):
    """A bundle that cannot be used; the message says why."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    format_version: int
    labels: tuple[str, ...]  # every label of the classifier, in output order
    target_labels: tuple[str, ...]  # the labels the monitor reports
    thresholds: dict[str, float]  # per target label
    window_s: float
    hop_s: float
    classifier_dir: Path
    classifier_sample_rate: int
    denoiser_path: Path | None
    denoiser_sample_rate: int | None
    metrics: dict[str, Any] = field(default_factory=dict)
    # The event rules the evaluation chose (events.min_positive_windows, events.quiet_s); empty
    # for bundles that leave them to the config.
    events: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # relative path → sha256


def config_values(bundle: Bundle) -> dict[str, Any]:
    """The monitor's settings a bundle decides, by dotted config path: what
    ``hydromon run --model-bundle DIR`` applies (under any explicit ``--set``)."""
    events = {f"events.{key}": value for key, value in bundle.events.items()}
    return events | {
        "classifier.source": str(bundle.classifier_dir),
        "classifier.target_labels": list(bundle.target_labels),
        "classifier.thresholds": dict(bundle.thresholds),
        "denoiser.checkpoint": str(bundle.denoiser_path) if bundle.denoiser_path else None,
        "windows.length_s": bundle.window_s,
        "windows.hop_s": bundle.hop_s,
    }


def bundle_files(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` except the manifest and hidden files."""
    return {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST and not path.name.startswith(".")
    }


_REQUIRED = object()


def _need(
    manifest: dict[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    where: Path,
    default: Any = _REQUIRED,
) -> Any:
    """``manifest[key]`` if it is a ``kind``; ``default`` when absent and one is given."""
    if key not in manifest and default is not _REQUIRED:
        return default
    if key not in manifest:
        raise BundleError(f"{where}: {MANIFEST} lacks {key!r}")
    value = manifest[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BundleError(
            f"{where}: {MANIFEST} {key!r} has the wrong type ({type(value).__name__})"
        )
    return value


def _read_json(path: Path, folder: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise BundleError(f"{folder}: no {path.relative_to(folder).as_posix()}") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(f"{path}: cannot read it ({error})") from error
    if not isinstance(value, dict):
        raise BundleError(f"{path}: not a JSON object")
    return value


def _check_rates(rates: dict[str, Any], has_denoiser: bool, folder: Path) -> None:
    needed = ["classifier", *(["denoiser"] if has_denoiser else [])]
    for name in needed:
        rate = rates.get(name)
        if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
            raise BundleError(
                f"{folder}: {MANIFEST} sample_rates.{name} must be a positive integer (Hz), "
                f"not {rate!r}"
            )


def _check_classifier(
    classifier_dir: Path, labels: tuple[str, ...], rate: int, window_s: float, folder: Path
) -> None:
    """The classifier folder must be the model bundle.json describes: the same labels in the
    same output order, the same input rate, and ``max_length`` 10 ms frames = ``window_s``."""
    config = _read_json(classifier_dir / "config.json", folder)
    id2label = config.get("id2label")
    if not isinstance(id2label, dict):
        raise BundleError(f"{folder}: {CLASSIFIER_DIR}/config.json has no id2label")
    try:
        ordered = tuple(str(id2label[key]) for key in sorted(id2label, key=int))
    except ValueError as error:
        raise BundleError(
            f"{folder}: {CLASSIFIER_DIR}/config.json id2label keys: {error}"
        ) from error
    if ordered != labels:
        raise BundleError(
            f"{folder}: the classifier's labels {list(ordered)} are not {MANIFEST}'s "
            f"{list(labels)}; re-export the bundle"
        )
    features = _read_json(classifier_dir / "preprocessor_config.json", folder)
    if features.get("sampling_rate") != rate:
        raise BundleError(
            f"{folder}: the classifier reads {features.get('sampling_rate')} Hz, {MANIFEST} says "
            f"{rate} Hz"
        )
    frames = features.get("max_length")
    if not isinstance(frames, int) or abs(frames * 0.01 - window_s) > 1e-6:
        raise BundleError(
            f"{folder}: the classifier takes {frames} frames of 10 ms, {MANIFEST} says a "
            f"{window_s} s window"
        )


EVENT_KEYS = {"min_positive_windows": int, "quiet_s": float}


def _check_events(events: dict[str, Any], folder: Path) -> None:
    for key, value in events.items():
        kind = EVENT_KEYS.get(key)
        if kind is None:
            raise BundleError(
                f"{folder}: {MANIFEST} events.{key} is not an event rule a bundle sets "
                f"(known: {', '.join(sorted(EVENT_KEYS))})"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise BundleError(f"{folder}: {MANIFEST} events.{key} must be > 0, not {value!r}")
        if kind is int and not isinstance(value, int):
            raise BundleError(f"{folder}: {MANIFEST} events.{key} must be an integer")


def load_bundle(path: str | Path) -> Bundle:
    """Read and verify a bundle: format version, required fields, labels vs thresholds, and the
    checksum of every file (missing, changed or unlisted files are refused)."""
    folder = Path(path)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{folder} is not a model bundle: no {MANIFEST}")
    manifest = _read_json(manifest_path, folder)
    version = _need(manifest, "format_version", int, folder)
    if version != BUNDLE_FORMAT:
        raise BundleError(
            f"{folder}: bundle format {version}, this hydromon reads format {BUNDLE_FORMAT}; "
            "re-export the bundle with this version"
        )
    listed = _need(manifest, "files", dict, folder)
    actual = bundle_files(folder)
    missing = sorted(set(listed) - set(actual))
    extra = sorted(set(actual) - set(listed))
    changed = sorted(name for name in set(listed) & set(actual) if listed[name] != actual[name])
    if missing or extra or changed:
        raise BundleError(
            f"{folder}: files do not match {MANIFEST}: missing {missing}, unlisted {extra}, "
            f"checksum mismatch {changed}"
        )
    labels = tuple(_need(manifest, "labels", list, folder))
    targets = tuple(_need(manifest, "target_labels", list, folder))
    thresholds = _need(manifest, "thresholds", dict, folder)
    unknown = [label for label in targets if label not in labels]
    if unknown or set(thresholds) != set(targets):
        raise BundleError(
            f"{folder}: target labels {list(targets)} must be classifier labels and each needs one "
            f"threshold (unknown {unknown}, thresholds for {sorted(thresholds)})"
        )
    if bad_thresholds(thresholds):
        raise BundleError(f"{folder}: thresholds must be numbers in [0, 1]: {thresholds}")
    rates = _need(manifest, "sample_rates", dict, folder)
    classifier_dir = folder / CLASSIFIER_DIR
    has_denoiser = DENOISER_FILE in listed
    window_s = float(_need(manifest, "window_s", int | float, folder))
    hop_s = float(_need(manifest, "hop_s", int | float, folder))
    if window_s <= 0 or hop_s <= 0:
        raise BundleError(f"{folder}: window_s and hop_s must be positive")
    _check_rates(rates, has_denoiser, folder)
    events = dict(_need(manifest, "events", dict, folder, {}))
    _check_events(events, folder)
    _check_classifier(classifier_dir, labels, rates["classifier"], window_s, folder)
    return Bundle(
        path=folder,
        format_version=version,
        labels=labels,
        target_labels=targets,
        thresholds={k: float(v) for k, v in thresholds.items()},
        window_s=window_s,
        hop_s=hop_s,
        classifier_dir=classifier_dir,
        classifier_sample_rate=int(rates["classifier"]),
        denoiser_path=folder / DENOISER_FILE if has_denoiser else None,
        denoiser_sample_rate=int(rates["denoiser"]) if has_denoiser else None,
        metrics=dict(_need(manifest, "metrics", dict, folder, {})),
        events=events,
        provenance=dict(_need(manifest, "provenance", dict, folder, {})),
        files=dict(listed),
    )
