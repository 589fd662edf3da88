"""The ORCA-CLEAN U-Net: size, upstream state-dict layout, shapes."""

from __future__ import annotations

import pytest
import torch

from models.denoiser.unet import UNet


def upstream_keys() -> list[str]:
    """The upstream state-dict layout, written out from the architecture description."""

    def double_conv(prefix: str) -> list[str]:
        keys = []
        for conv, norm in ((0, 1), (3, 4)):
            keys += [f"{prefix}.double_conv.{conv}.weight", f"{prefix}.double_conv.{conv}.bias"]
            keys += [
                f"{prefix}.double_conv.{norm}.{name}"
                for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
            ]
        return keys

    keys = double_conv("inc")
    for i in range(1, 5):
        keys += double_conv(f"down{i}.maxpool_conv.1")
    for i in range(1, 5):
        keys += [f"up{i}.up.weight", f"up{i}.up.bias", *double_conv(f"up{i}.conv")]
    return [*keys, "outc.conv.weight", "outc.conv.bias"]


def test_full_size_has_upstream_parameter_count() -> None:
    with torch.device("meta"):
        unet = UNet(64)
    assert sum(p.numel() for p in unet.parameters()) == 31_042_369


def test_state_dict_keys_are_upstreams() -> None:
    assert list(UNet(4).state_dict()) == upstream_keys()


def test_full_size_shapes_follow_the_channel_plan() -> None:
    with torch.device("meta"):
        state = UNet(64).state_dict()
    assert state["inc.double_conv.0.weight"].shape == (64, 1, 3, 3)
    assert state["down4.maxpool_conv.1.double_conv.0.weight"].shape == (1024, 512, 3, 3)
    assert state["up1.up.weight"].shape == (1024, 512, 2, 2)  # ConvTranspose: (in, out, k, k)
    assert state["up1.conv.double_conv.0.weight"].shape == (512, 1024, 3, 3)
    assert state["up4.conv.double_conv.3.weight"].shape == (64, 64, 3, 3)
    assert state["outc.conv.weight"].shape == (1, 64, 1, 1)


def test_odd_sizes_come_back_the_same_size_in_unit_range() -> None:
    torch.manual_seed(0)
    unet = UNet(4).eval()
    x = torch.rand(2, 1, 37, 45)
    with torch.no_grad():
        y = unet(x)
    assert y.shape == x.shape
    assert float(y.min()) > 0 and float(y.max()) < 1


def test_batch_items_are_independent_in_eval_mode() -> None:
    torch.manual_seed(1)
    unet = UNet(4).eval()
    x = torch.rand(3, 1, 32, 48, dtype=torch.float64)
    unet = unet.double()
    with torch.no_grad():
        both = unet(x)
        for i in range(3):
            torch.testing.assert_close(both[i : i + 1], unet(x[i : i + 1]))


@pytest.mark.parametrize("shape", [(1, 32, 32), (1, 2, 32, 32), (1, 1, 15, 64), (1, 1, 64, 8)])
def test_bad_input_shapes_are_rejected(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"expected \(B, 1, time, freq\)|at least 16"):
        UNet(4)(torch.rand(*shape))


@pytest.mark.parametrize("width", [0, 3, 2.0, True])
def test_bad_widths_are_rejected(width: object) -> None:
    with pytest.raises(ValueError, match="base_width"):
        UNet(width)  # type: ignore[arg-type]
