"""ORCA-CLEAN checkpoint formats: upstream-shaped files written by hand, ours, and bad files."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from models.denoiser import (
    CheckpointError,
    DenoiserOptions,
    build_denoiser,
    load_denoiser,
    read_checkpoint,
    save_denoiser,
    save_epoch_checkpoint,
)
from models.denoiser.unet import UNet

DATA = Path(__file__).parents[1] / "data"

HUMPBACK_OPTS = {
    "sr": 44100,
    "preemphases": 0.98,
    "n_fft": 4096,
    "hop_length": 441,
    "n_freq_bins": 256,
    "fmin": 0,
    "fmax": 10000,
    "freq_compression": "linear",
    "min_level_db": -100,
    "ref_level_db": 20,
}


@dataclass
class NotATensor:
    value: int


def trained_unet(width: int = 4) -> UNet:
    """A U-Net whose BatchNorm statistics and weights moved off their initial values."""
    torch.manual_seed(width)
    unet = UNet(width)
    optimiser = torch.optim.Adam(unet.parameters(), lr=1e-2)
    x = torch.rand(2, 1, 32, 32)
    loss = unet(x).pow(2).sum()
    loss.backward()
    optimiser.step()
    return unet.eval()


def same_outputs(a: nn.Module, b: nn.Module, dtype: torch.dtype = torch.float32) -> None:
    x = torch.rand(2, 1, 48, 256, generator=torch.Generator().manual_seed(3), dtype=dtype)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


def test_upstream_final_pk_loads_as_it_is(tmp_path: Path) -> None:
    unet = trained_unet()
    path = tmp_path / "ORCA-CLEAN.pk"
    torch.save({"unetState": unet.state_dict(), "dataOpts": dict(HUMPBACK_OPTS)}, path)
    denoiser = load_denoiser(path)
    assert denoiser.options == DenoiserOptions(fmin=0, fmax=10000)
    assert denoiser.base_width == 4 and not denoiser.training
    assert denoiser.checkpoint_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    same_outputs(denoiser, unet)


def test_upstream_epoch_checkpoint_with_train_state_loads(tmp_path: Path) -> None:
    unet = trained_unet(6)
    model = nn.Sequential(OrderedDict([("unet", unet)]))  # upstream's wrapper: "unet." keys
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-5, betas=(0.5, 0.999))
    model(torch.rand(1, 1, 32, 32)).sum().backward()
    optimiser.step()
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, patience=5)
    scheduler.step(1.0)
    path = tmp_path / "denoiser_epoch_00042.checkpoint"
    torch.save(
        {
            "modelState": model.state_dict(),
            "trainState": {
                "epoch": 42,
                "best_metric": torch.tensor(0.25),
                "best_model": model.state_dict(),
                "optState": optimiser.state_dict(),
                "earlyStopping": {"mode": "min", "patience": 10, "best": 0.25},
                "scheduler": scheduler.state_dict(),
            },
        },
        path,
    )
    contents = read_checkpoint(path)
    assert contents.format == "epoch" and contents.base_width == 6
    assert contents.options == DenoiserOptions()  # upstream's defaults: no dataOpts stored
    same_outputs(load_denoiser(path), unet.eval())
    given = DenoiserOptions(fmin=0)
    assert load_denoiser(path, options=given).options == given


def test_our_final_and_epoch_files_round_trip(tmp_path: Path) -> None:
    denoiser = build_denoiser(DenoiserOptions(fmin=0), base_width=4)
    denoiser.unet.load_state_dict(trained_unet().state_dict())
    save_denoiser(denoiser, tmp_path / "model.pk")
    raw = torch.load(tmp_path / "model.pk", weights_only=True)
    assert set(raw) == {"unetState", "dataOpts"}
    assert list(raw["unetState"]) == list(UNet(4).state_dict())
    loaded = load_denoiser(tmp_path / "model.pk")
    assert loaded.options == denoiser.options
    same_outputs(loaded, denoiser)

    save_epoch_checkpoint(denoiser, tmp_path / "e.checkpoint", {"epoch": 3})
    raw = torch.load(tmp_path / "e.checkpoint", weights_only=True)
    assert all(k.startswith("unet.") for k in raw["modelState"])
    again = load_denoiser(tmp_path / "e.checkpoint")
    assert again.options == denoiser.options  # ours carry dataOpts
    same_outputs(again, denoiser)
    assert not list(tmp_path.glob("*.tmp"))


def test_float64_model_saves_and_loads(tmp_path: Path) -> None:
    denoiser = build_denoiser(base_width=4).double()
    save_denoiser(denoiser, tmp_path / "m.pk")
    raw = torch.load(tmp_path / "m.pk", weights_only=True)
    assert raw["unetState"]["outc.conv.weight"].dtype == torch.float64
    loaded = load_denoiser(tmp_path / "m.pk")
    assert loaded.unet.outc.conv.weight.dtype == torch.float32  # loads as float32 by default
    same_outputs(loaded.double(), denoiser, torch.float64)


def bad_file(tmp_path: Path, obj: object) -> Path:
    path = tmp_path / "bad.pk"
    torch.save(obj, path)
    return path


def good_state() -> dict[str, torch.Tensor]:
    return UNet(4).state_dict()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ["a", "list"], "holds a list, not a dict"),
        (
            lambda: {"weights": good_state()},
            r"expected a dict with 'unetState'.*found keys weights",
        ),
        (lambda: {"unetState": good_state()}, "final checkpoint has no 'dataOpts'"),
        (
            lambda: {"unetState": good_state(), "dataOpts": {**HUMPBACK_OPTS, "mel": 1}},
            r"bad dataOpts: .*unknown keys \['mel'\]",
        ),
        (
            lambda: {"unetState": good_state(), "dataOpts": {**HUMPBACK_OPTS, "fmax": 1e5}},
            "bad dataOpts: .*fmax <= sr/2",
        ),
        (
            lambda: {
                "unetState": {**good_state(), "up2.up.weight": torch.zeros(3, 3, 2, 2)},
                "dataOpts": HUMPBACK_OPTS,
            },
            r"shape mismatch .*up2\.up\.weight \(3, 3, 2, 2\) != \(32, 16, 2, 2\)",
        ),
        (
            lambda: {
                "unetState": {k: v for k, v in good_state().items() if not k.startswith("outc")},
                "dataOpts": HUMPBACK_OPTS,
            },
            r"missing outc\.conv\.bias, outc\.conv\.weight",
        ),
        (
            lambda: {"unetState": {**good_state(), "extra.weight": torch.zeros(1)}, "dataOpts": {}},
            "bad dataOpts",
        ),
        (
            lambda: {
                "unetState": {**good_state(), "extra.weight": torch.zeros(1)},
                "dataOpts": HUMPBACK_OPTS,
            },
            r"unexpected extra\.weight",
        ),
        (
            lambda: {
                "unetState": {**good_state(), "inc.double_conv.0.weight": torch.zeros(4, 2, 3, 3)},
                "dataOpts": HUMPBACK_OPTS,
            },
            "cannot infer the U-Net width",
        ),
        (
            lambda: {
                "unetState": {**good_state(), "outc.conv.bias": torch.tensor([float("nan")])},
                "dataOpts": HUMPBACK_OPTS,
            },
            r"non-finite values in outc\.conv\.bias",
        ),
        (
            lambda: {
                "modelState": {
                    "unet.inc.double_conv.0.weight": torch.zeros(4, 1, 3, 3),
                    "outc.conv.bias": torch.zeros(1),
                }
            },
            "mixes 'unet.'-prefixed and bare keys",
        ),
        (lambda: {"unetState": {"a": 1}, "dataOpts": HUMPBACK_OPTS}, "not tensors: a"),
    ],
)
def test_bad_checkpoints_are_rejected_with_the_reason(
    tmp_path: Path, make: object, message: str
) -> None:
    path = bad_file(tmp_path, make())  # type: ignore[operator]
    with pytest.raises(CheckpointError, match=message):
        load_denoiser(path)


def test_pickled_objects_are_refused_by_weights_only(tmp_path: Path) -> None:
    path = bad_file(tmp_path, {"unetState": good_state(), "dataOpts": NotATensor(1)})
    with pytest.raises(CheckpointError, match=r"refused: .*weights_only=True.*NotATensor"):
        load_denoiser(path)


def test_audio_and_text_given_as_a_checkpoint_are_named_without_torch_internals(
    tmp_path: Path,
) -> None:
    wav = tmp_path / "call.wav"
    wav.write_bytes((DATA / "humpback-calls" / "Creak.wav").read_bytes())
    notes = tmp_path / "notes.pk"
    notes.write_text("this is the model, honest\n")
    for path, kind in ((wav, "a WAV audio file"), (notes, "a text file")):
        with pytest.raises(CheckpointError) as refused:
            load_denoiser(path)
        message = str(refused.value)
        assert message == f"{path}: not a torch checkpoint (it starts like {kind})"


def test_random_bytes_empty_and_missing_files_are_rejected(tmp_path: Path) -> None:
    noise = tmp_path / "noise.pk"
    random = torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes()
    noise.write_bytes(b"\x80\x02" + random)  # starts like a pickle, then garbage
    with pytest.raises(CheckpointError, match=r"noise\.pk: not a torch checkpoint \(corrupt"):
        load_denoiser(noise)
    empty = tmp_path / "empty.pk"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a torch checkpoint"):
        load_denoiser(empty)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_denoiser(tmp_path / "absent.pk")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_denoiser(tmp_path)
