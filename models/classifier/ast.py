"""Load any `ASTForAudioClassification` checkpoint and score windows for a chosen set of labels."""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

from models.classifier.features import FeatureExtractor, FeatureParams
from models.device import autocast_at
from models.fileio import sha256_files
from models.thresholds import bad_thresholds

log = logging.getLogger(__name__)

Activation = Literal["sigmoid", "softmax"]

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
POSITION_KEY = "audio_spectrogram_transformer.embeddings.position_embeddings"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


class ClassifierLoadError(ValueError):
    """A checkpoint that cannot be used, with the reason in words."""


@dataclass(frozen=True)
class CheckpointIdentity:
    """What produced a score: the checkpoint's name and the sha256 of its weights files."""

    name: str
    sha256: str
    source: str


@dataclass
class Classifier:
    model: ASTForAudioClassification
    features: FeatureExtractor
    labels: tuple[str, ...]
    target_labels: tuple[str, ...]
    thresholds: dict[str, float]
    activation: Activation
    identity: CheckpointIdentity
    attn_implementation: str
    # "bf16" runs the transformer under bf16 autocast; the features always stay fp32.
    precision: Literal["fp32", "bf16"] = "fp32"
    _target_index: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        index = {label: i for i, label in enumerate(self.labels)}
        self._target_index = torch.tensor([index[label] for label in self.target_labels])

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def sample_rate(self) -> int:
        return self.features.params.sampling_rate

    @property
    def window_seconds(self) -> float:
        return self.features.params.window_seconds

    @property
    def window_samples(self) -> int:
        return self.features.params.window_samples

    def to(self, device: torch.device | str) -> Classifier:
        self.model.to(device)
        self.features.to(device)
        return self

    def autocast(self) -> AbstractContextManager[object]:
        return autocast_at(self.precision, self.device)

    def score(self, waveforms: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """(B, n) audio at `sample_rate` (default: the model's) → (B, n_targets) scores on CPU."""
        with torch.inference_mode():
            feats = self.features(waveforms.to(self.device), sample_rate)
            return self.score_features(feats)

    def score_features(self, features: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            with self.autocast():
                logits = self.model(input_values=features).logits
            logits = logits.float()
            index = self._target_index.to(logits.device)
            if self.activation == "softmax":
                scores = logits.softmax(dim=-1).index_select(1, index)
            else:
                scores = logits.index_select(1, index).sigmoid()
            return scores.cpu()


def load_classifier(
    source: str | Path,
    device: torch.device | str = "cpu",
    *,
    target_labels: Sequence[str] | None = None,
    thresholds: Mapping[str, float] | float = 0.5,
    activation: Activation | None = None,
) -> Classifier:
    """Load an AST audio-classification checkpoint from a local directory or a hub id.

    `target_labels` (default: all) must be names in the checkpoint's `id2label`; `thresholds`
    is one value for all targets or one per target. `activation` overrides the one read from
    the config's `problem_type`.
    """
    directory, name = _resolve(source)
    config = _load_config(directory)
    labels = _labels(config, directory)
    targets = _validate_targets(labels, target_labels)
    per_label = _validate_thresholds(targets, thresholds)
    chosen = activation or _activation_from_config(config, directory)
    if chosen not in ("sigmoid", "softmax"):
        raise ClassifierLoadError(f"activation must be 'sigmoid' or 'softmax', not {chosen!r}")
    params = _feature_params(directory, config)
    model, attn = _load_model(directory, config)
    model.eval().to(device)
    features = FeatureExtractor(params).to(device)
    return Classifier(
        model=model,
        features=features,
        labels=labels,
        target_labels=targets,
        thresholds=per_label,
        activation=chosen,
        identity=CheckpointIdentity(
            name=name, sha256=weights_sha256(directory), source=str(source)
        ),
        attn_implementation=attn,
    )


def _resolve(source: str | Path) -> tuple[Path, str]:
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ClassifierLoadError(f"classifier checkpoint {path} is a file, not a directory")
        return path.resolve(), path.resolve().name
    text = str(source)
    if isinstance(source, Path) or not _HUB_ID.match(text):
        raise ClassifierLoadError(f"classifier checkpoint directory {path} does not exist")
    from huggingface_hub import snapshot_download  # installed with transformers

    try:
        patterns = ["*.json", "model.safetensors*"]
        local = Path(snapshot_download(repo_id=text, allow_patterns=patterns))
        if not _weights_files(local, required=False):
            local = Path(
                snapshot_download(repo_id=text, allow_patterns=["*.json", "pytorch_model.bin*"])
            )
    except Exception as exc:
        raise ClassifierLoadError(
            f"{text!r} is not a local directory and could not be fetched from the Hugging Face "
            f"hub (offline mode is {'on' if _hub_offline() else 'off'}): {exc}"
        ) from exc
    return local, text


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")


def _load_config(directory: Path) -> ASTConfig:
    if not (directory / "config.json").is_file():
        raise ClassifierLoadError(f"{directory} has no config.json: not a transformers checkpoint")
    try:
        config = ASTConfig.from_pretrained(directory)
    except Exception as exc:
        raise ClassifierLoadError(f"cannot read {directory / 'config.json'}: {exc}") from exc
    if config.model_type != "audio-spectrogram-transformer":
        raise ClassifierLoadError(
            f"{directory} holds a {config.model_type!r} model, not an Audio Spectrogram Transformer"
        )
    return config


def _labels(config: ASTConfig, directory: Path) -> tuple[str, ...]:
    id2label = {int(k): str(v) for k, v in config.id2label.items()}
    if sorted(id2label) != list(range(config.num_labels)):
        raise ClassifierLoadError(
            f"{directory}: id2label does not cover 0..{config.num_labels - 1}"
        )
    labels = tuple(id2label[i] for i in range(config.num_labels))
    if len(set(labels)) != len(labels):
        raise ClassifierLoadError(f"{directory}: id2label has duplicate label names")
    return labels


def _validate_targets(labels: tuple[str, ...], wanted: Sequence[str] | None) -> tuple[str, ...]:
    if wanted is None:
        return labels
    if isinstance(wanted, str):
        raise ClassifierLoadError("target_labels must be a list of label names, not one string")
    targets = tuple(wanted)
    if not targets:
        raise ClassifierLoadError("target_labels is empty: name at least one label")
    if len(set(targets)) != len(targets):
        raise ClassifierLoadError(f"target_labels has duplicates: {list(targets)}")
    unknown = [t for t in targets if t not in labels]
    if unknown:
        hints = []
        lowered = {label.lower(): label for label in labels}
        for t in unknown:
            close = difflib.get_close_matches(t, labels, n=3, cutoff=0.5)
            if t.lower() in lowered and lowered[t.lower()] not in close:
                close.insert(0, lowered[t.lower()])
            hints.append(f"{t!r} (close: {', '.join(map(repr, close)) or 'none'})")
        raise ClassifierLoadError(
            f"unknown target labels for this checkpoint ({len(labels)} labels): " + "; ".join(hints)
        )
    return targets


def _validate_thresholds(
    targets: tuple[str, ...], thresholds: Mapping[str, float] | float
) -> dict[str, float]:
    if isinstance(thresholds, int | float):
        per_label = dict.fromkeys(targets, float(thresholds))
    else:
        extra = sorted(set(thresholds) - set(targets))
        if extra:
            raise ClassifierLoadError(f"thresholds given for labels that are not targets: {extra}")
        missing = [t for t in targets if t not in thresholds]
        if missing:
            raise ClassifierLoadError(f"no threshold for target labels: {missing}")
        per_label = {t: float(thresholds[t]) for t in targets}
    bad = bad_thresholds(per_label)
    if bad:
        raise ClassifierLoadError(f"thresholds must lie in [0, 1]: {bad}")
    return per_label


def _activation_from_config(config: ASTConfig, directory: Path) -> Activation:
    problem = config.problem_type
    if problem == "single_label_classification":
        return "softmax"
    if problem == "multi_label_classification":
        return "sigmoid"
    if problem == "regression":
        raise ClassifierLoadError(f"{directory} is a regression model, not a classifier")
    # No problem_type: the original AudioSet AST checkpoints, trained multi-label (BCE).
    return "sigmoid"


def _feature_params(directory: Path, config: ASTConfig) -> FeatureParams:
    if not (directory / "preprocessor_config.json").is_file():
        raise ClassifierLoadError(
            f"{directory} has no preprocessor_config.json (the ASTFeatureExtractor settings); "
            "save the feature extractor with the model"
        )
    try:
        extractor = ASTFeatureExtractor.from_pretrained(directory)
    except Exception as exc:
        raise ClassifierLoadError(
            f"cannot read {directory / 'preprocessor_config.json'}: {exc}"
        ) from exc
    params = FeatureParams.from_extractor(extractor)
    if params.num_mel_bins != config.num_mel_bins or params.max_length != config.max_length:
        raise ClassifierLoadError(
            f"{directory}: feature extractor makes {params.max_length}×{params.num_mel_bins} "
            f"features but the model expects {config.max_length}×{config.num_mel_bins}"
        )
    return params


def _load_model(directory: Path, config: ASTConfig) -> tuple[ASTForAudioClassification, str]:
    _weights_files(directory)
    last_error: Exception | None = None
    for attn in ("sdpa", "eager"):
        try:
            model, info = ASTForAudioClassification.from_pretrained(
                directory, attn_implementation=attn, output_loading_info=True
            )
        except (ValueError, ImportError) as exc:
            if attn == "sdpa" and "sdpa" in str(exc).lower():
                log.info("sdpa attention unavailable (%s); using eager attention", exc)
                last_error = exc
                continue
            raise _load_error(directory, config, exc) from exc
        except Exception as exc:
            raise _load_error(directory, config, exc) from exc
        # from_pretrained only warns about missing weights and initialises them at random.
        missing = list(info.get("missing_keys", []))
        mismatched = list(info.get("mismatched_keys", []))
        if missing or mismatched:
            shapes = _shape_mismatches(directory, config)
            raise ClassifierLoadError(
                f"{directory}: weights do not match the config "
                f"(missing {missing[:5]}, mismatched {mismatched[:5]})"
                + (f": {shapes}" if shapes else "")
            )
        return model, attn
    raise ClassifierLoadError(f"cannot load weights from {directory}: {last_error}")


def _load_error(directory: Path, config: ASTConfig, exc: Exception) -> ClassifierLoadError:
    shapes = _shape_mismatches(directory, config)
    if shapes:
        return ClassifierLoadError(f"{directory}: weights do not match config.json: {shapes}")
    if "mismatched_sizes" in str(exc):
        return ClassifierLoadError(
            f"cannot load weights from {directory}: stored tensors have other shapes than "
            "config.json describes (was the config edited after saving?); transformers' load "
            "report above names them"
        )
    return ClassifierLoadError(f"cannot load weights from {directory}: {exc}")


def _saved_shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    """Tensor shapes stored in the weights files, read without loading the tensors."""
    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        if path.suffix == ".safetensors":
            from safetensors import safe_open  # installed with transformers

            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                    shapes[key] = tuple(handle.get_slice(key).get_shape())
        else:
            state = torch.load(path, map_location="meta", weights_only=True, mmap=True)
            shapes.update({k: tuple(v.shape) for k, v in state.items()})
    return shapes


def _shape_mismatches(directory: Path, config: ASTConfig) -> str:
    """Which stored tensors have another shape than config.json implies, in words ('' when
    none can be named). A changed max_length without resized position embeddings is the usual
    cause, so that case says so."""
    try:
        saved = _saved_shapes(_weights_files(directory))
        with torch.device("meta"):
            expected = ASTForAudioClassification(config).state_dict()
    except Exception:  # the caller reports the original error instead
        log.debug("cannot compare stored shapes with the config", exc_info=True)
        return ""
    wrong = {
        key: (saved[key], tuple(tensor.shape))
        for key, tensor in expected.items()
        if key in saved and saved[key] != tuple(tensor.shape)
    }
    if not wrong:
        return ""
    text = "; ".join(
        f"{k} is {s} in the weights, {e} for the config" for k, (s, e) in wrong.items()
    )
    if POSITION_KEY in wrong:
        text += ". " + _position_hint(config, wrong[POSITION_KEY][0])
    return text


def _position_hint(config: ASTConfig, stored: tuple[int, ...]) -> str:
    frequency = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    time = (config.max_length - config.patch_size) // config.time_stride + 1
    patches = stored[1] - 2 if len(stored) == 3 else -1  # CLS and distillation tokens first
    if patches <= 0 or patches % frequency:
        return "The position embeddings do not fit the config's patch grid."
    stored_time = patches // frequency
    # Every max_length from `shortest` up to the next stride gives this many time patches.
    shortest = (stored_time - 1) * config.time_stride + config.patch_size
    longest = shortest + config.time_stride - 1
    made_for = f"{shortest}" if longest == shortest else f"{shortest}–{longest}"
    return (
        f"The position embeddings hold a {frequency}×{stored_time} patch grid (max_length "
        f"{made_for} frames) but config.json's max_length {config.max_length} needs "
        f"{frequency}×{time}: a different input length needs the embeddings resized along "
        "time (cropped or interpolated, as the classifier training does) and saved with the "
        "model, not only max_length edited"
    )


def _weights_files(directory: Path, *, required: bool = True) -> list[Path]:
    """The weights files transformers loads, in its order of preference (safetensors first)."""
    for single, index in (
        ("model.safetensors", "model.safetensors.index.json"),
        ("pytorch_model.bin", "pytorch_model.bin.index.json"),
    ):
        if (directory / single).is_file():
            return [directory / single]
        if (directory / index).is_file():
            try:
                shards = json.loads((directory / index).read_text())["weight_map"].values()
            except (OSError, ValueError, KeyError, AttributeError) as exc:
                raise ClassifierLoadError(f"cannot read {directory / index}: {exc}") from exc
            return [directory / name for name in sorted(set(shards))]
    if required:
        raise ClassifierLoadError(
            f"{directory} has no weights file ({', '.join(WEIGHT_FILES)} or a sharded index)"
        )
    return []


def weights_sha256(directory: Path) -> str:
    """sha256 over the checkpoint's weights files (the ones transformers loads), in order."""
    try:
        return sha256_files(_weights_files(directory))
    except OSError as exc:
        raise ClassifierLoadError(f"cannot read weights file: {exc}") from exc
