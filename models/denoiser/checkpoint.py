"""ORCA-CLEAN checkpoint files: read both upstream formats, write the final one.

Final model (`ORCA-CLEAN.pk`): {"unetState": bare U-Net keys, "dataOpts": {...}}.
Epoch checkpoint (`denoiser_epoch_00042.checkpoint`): {"modelState": keys prefixed "unet.",
"trainState": {...}}; upstream stores no dataOpts there, so the caller's options (default:
upstream's) apply unless the file carries a "dataOpts" entry (ours do).
Everything is read with `torch.load(weights_only=True)`: tensors and plain containers only.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from models.denoiser.frontend import DenoiserOptions
from models.denoiser.model import Denoiser
from models.denoiser.streaming import StreamingSettings
from models.denoiser.unet import UNet
from models.fileio import atomic_path, sha256_file

FINAL_KEY = "unetState"
EPOCH_KEY = "modelState"
OPTIONS_KEY = "dataOpts"
EPOCH_PREFIX = "unet."
WIDTH_KEY = "inc.double_conv.0.weight"
_MAX_LISTED = 5


class CheckpointError(ValueError):
    """The file is not a usable ORCA-CLEAN checkpoint; the message says why."""


@dataclass(frozen=True)
class CheckpointContents:
    unet_state: dict[str, torch.Tensor]  # bare upstream keys
    options: DenoiserOptions
    base_width: int
    format: Literal["final", "epoch"]
    sha256: str


def checkpoint_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of the file's bytes: the model identity for provenance."""
    return sha256_file(Path(path))


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" (+{len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else "")


def _unpickler_reason(message: str) -> str:
    """The specific line of torch's long weights_only error message."""
    marker = "WeightsUnpickler error:"
    if marker in message:
        tail = message.split(marker, 1)[1].strip()
        return tail.splitlines()[0].strip() if tail else message.strip()[:200]
    return message.strip().splitlines()[0][:200] if message.strip() else "no detail"


def _kind(head: bytes) -> str:
    if head == b"RIFF":
        return "a WAV audio file"
    if head in (b"fLaC", b"OggS") or head[:3] == b"ID3":
        return "an audio file"
    if not head:
        return "an empty file"
    if all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head):
        return "a text file"
    return "neither a zip archive nor a pickle"


def _load_file(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with path.open("rb") as handle:
        head = handle.read(4)
    # torch.save writes a zip archive (torch ≥ 1.6) or a pickle stream (older, as upstream's
    # checkpoints); anything else would only surface as an internal error of the unpickler.
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise CheckpointError(f"{path}: not a torch checkpoint (it starts like {_kind(head)})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _unpickler_reason(str(e))
        if reason.startswith("Unsupported global"):
            raise CheckpointError(
                f"{path}: refused: the file holds pickled objects other than tensors and plain "
                f"containers (torch.load weights_only=True): {reason}"
            ) from e
        raise CheckpointError(f"{path}: not a torch checkpoint (corrupt pickle: {reason})") from e
    except Exception as e:
        raise CheckpointError(
            f"{path}: not a torch checkpoint ({type(e).__name__}: {str(e).strip()[:200]})"
        ) from e


def _bare_state(path: Path, raw: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if FINAL_KEY in raw:
        state, form = raw[FINAL_KEY], "final"
    elif EPOCH_KEY in raw:
        state, form = raw[EPOCH_KEY], "epoch"
    else:
        raise CheckpointError(
            f"{path}: not an ORCA-CLEAN checkpoint: expected a dict with {FINAL_KEY!r} (final "
            f".pk) or {EPOCH_KEY!r} (epoch .checkpoint); "
            f"found keys {_listed(sorted(map(str, raw)))}"
        )
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"{path}: {form} checkpoint's state is not a non-empty dict")
    if form == "epoch":
        prefixed = [k for k in state if str(k).startswith(EPOCH_PREFIX)]
        if len(prefixed) == len(state):
            state = {k[len(EPOCH_PREFIX) :]: v for k, v in state.items()}
        elif prefixed:
            raise CheckpointError(f"{path}: modelState mixes 'unet.'-prefixed and bare keys")
    return dict(state), form


def _options(path: Path, raw: Mapping[str, Any], form: str, fallback: DenoiserOptions | None):
    if OPTIONS_KEY not in raw:
        if form == "final":
            raise CheckpointError(f"{path}: final checkpoint has no {OPTIONS_KEY!r}")
        return fallback or DenoiserOptions()
    try:
        return DenoiserOptions.from_data_opts(raw[OPTIONS_KEY])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: bad {OPTIONS_KEY}: {e}") from e


def _check_state(path: Path, state: dict[str, Any]) -> int:
    """Validate against the U-Net layout; returns the base width."""
    not_tensors = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{path}: state entries that are not tensors: {_listed(not_tensors)}")
    first = state.get(WIDTH_KEY)
    if first is None or first.dim() != 4 or tuple(first.shape[1:]) != (1, 3, 3):
        shape = None if first is None else tuple(first.shape)
        raise CheckpointError(
            f"{path}: cannot infer the U-Net width: {WIDTH_KEY} is {shape}, expected (w, 1, 3, 3)"
        )
    width = int(first.shape[0])
    if width < 2 or width % 2:
        raise CheckpointError(f"{path}: base width {width} (from {WIDTH_KEY}) is not even")
    with torch.device("meta"):
        expected = UNet(width).state_dict()
    # Counters only; pre-0.4.1 PyTorch did not store them.
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(k for k in expected if k not in state and k not in optional)
    unexpected = sorted(str(k) for k in state if k not in expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: state does not match the ORCA-CLEAN U-Net (width {width}): "
            f"missing {_listed(missing) or 'none'}; unexpected {_listed(unexpected) or 'none'}"
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if wrong:
        raise CheckpointError(f"{path}: shape mismatch for width {width}: {_listed(wrong)}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: non-finite values in {_listed(bad)}")
    return width


def read_checkpoint(
    path: str | os.PathLike[str], options: DenoiserOptions | None = None
) -> CheckpointContents:
    """Read and validate either upstream format. `options` apply to epoch checkpoints without
    dataOpts (default: upstream's)."""
    path = Path(path)
    raw = _load_file(path)
    if not isinstance(raw, Mapping):
        raise CheckpointError(
            f"{path}: not an ORCA-CLEAN checkpoint: holds a {type(raw).__name__}, not a dict"
        )
    state, form = _bare_state(path, raw)
    data_options = _options(path, raw, form, options)
    width = _check_state(path, state)
    return CheckpointContents(state, data_options, width, form, checkpoint_sha256(path))  # type: ignore[arg-type]


def load_denoiser(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    *,
    options: DenoiserOptions | None = None,
    streaming: StreamingSettings | None = None,
) -> Denoiser:
    """A Denoiser from an upstream/our .pk or .checkpoint file, in eval mode on `device`."""
    contents = read_checkpoint(path, options)
    unet = UNet(contents.base_width)
    unet.load_state_dict(contents.unet_state, strict=False)  # strictness checked above
    denoiser = Denoiser(unet, contents.options, streaming).to(device).eval()
    denoiser.checkpoint_sha256 = contents.sha256
    return denoiser


def _atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    with atomic_path(Path(path)) as temporary:
        torch.save(obj, temporary)


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def save_denoiser(denoiser: Denoiser, path: str | os.PathLike[str]) -> None:
    """Write the final upstream format: {"unetState", "dataOpts"} (atomic replace)."""
    _atomic_save(
        {FINAL_KEY: _cpu_state(denoiser.unet), OPTIONS_KEY: denoiser.options.to_data_opts()}, path
    )


def save_epoch_checkpoint(
    denoiser: Denoiser, path: str | os.PathLike[str], train_state: Mapping[str, Any]
) -> None:
    """Write upstream's epoch format ("unet."-prefixed modelState, trainState) plus dataOpts.

    train_state must hold only tensors and plain containers (it is read back weights_only).
    """
    _atomic_save(
        {
            EPOCH_KEY: _cpu_state(denoiser),
            "trainState": dict(train_state),
            OPTIONS_KEY: denoiser.options.to_data_opts(),
        },
        path,
    )
