"""``--model-bundle DIR``: a real exported bundle decides the model settings of ``run`` and
``replay`` (over the file and environment, under ``--set``); a tampered bundle is refused."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from monitor.cli.main import build_parser, main
from monitor.config.loader import Config, config_from_args
from monitor.runtime import wiring
from tests.support.tiny_ast import save_tiny_ast
from training.export import ExportSettings, run_export


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle exported by the training pipeline's own export step from a tiny AST."""
    root = tmp_path_factory.mktemp("bundle")
    classifier = save_tiny_ast(root / "classifier", ["noise", "humpback"], 512, multi_label=True)
    evaluation = root / "evaluate"
    evaluation.mkdir()
    # What the evaluate step writes about the model export ships (the part export reads).
    metrics = {
        "models": {
            "finetuned_raw": {
                "audio": "raw",
                "thresholds": {"humpback": {"threshold": 0.7, "precision": 0.9, "recall": 0.8}},
            }
        }
    }
    (evaluation / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return run_export(ExportSettings(hop_s=2.0), root / "export", classifier, evaluation)


def effective(argv: list[str], env: dict[str, str] | None = None) -> Config:
    """The configuration ``hydromon <argv>`` runs with (its own parser, its own loader)."""
    return config_from_args(build_parser().parse_args(argv), env=env or {})


def test_run_uses_the_bundle_over_file_and_env_under_set(bundle_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "hydromon.toml"
    path.write_text(
        '[classifier]\ntarget_labels = ["Speech"]\nthresholds = { Speech = 0.2 }\n'
        "[windows]\nhop_s = 5.0\n",
        encoding="utf-8",
    )
    env = {"HYDROMON_WINDOWS__LENGTH_S": "9.0"}
    config = effective(["run", "--config", str(path), "--model-bundle", str(bundle_dir)], env)
    assert config.classifier.bundle == bundle_dir
    assert config.classifier.source == str(bundle_dir / "classifier")
    assert config.classifier.target_labels == ("humpback",)
    assert config.classifier.thresholds == {"humpback": 0.7}
    assert config.events.thresholds == {"humpback": 0.7}
    assert config.windows.length_s == pytest.approx(5.12)  # over the environment
    assert config.windows.hop_s == 2.0  # over the file
    assert config.denoiser.checkpoint is None  # the bundle has none: none runs

    wins = effective(
        ["replay", "--feed", "rpi_bush_point", "--start", "2024-01-01T00:00:00Z",
         "--end", "2024-01-01T00:01:00Z", "--model-bundle", str(bundle_dir),
         "--set", "windows.hop_s=4", "--set", "classifier.thresholds={ humpback = 0.9 }"],
    )  # fmt: skip
    assert wins.windows.hop_s == 4.0 and wins.classifier.thresholds == {"humpback": 0.9}
    assert wins.classifier.target_labels == ("humpback",)

    same = effective(["run"], {"HYDROMON_CLASSIFIER__BUNDLE": str(bundle_dir)})
    assert same.classifier.source == config.classifier.source


async def test_the_daemon_loads_the_bundles_model(bundle_dir: Path) -> None:
    config = effective(["run", "--model-bundle", str(bundle_dir)])
    models = await wiring.load_models(config)
    assert models.classifier.target_labels == ("humpback",)
    window = config.windows.resolved(models.classifier.window_seconds)
    assert window.length_s == pytest.approx(5.12) and window.hop_s == 2.0


def tampered(bundle_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    weights = copy / "classifier" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    return copy


@pytest.mark.parametrize("command", ["run", "replay"])
def test_a_tampered_bundle_is_refused_with_exit_2(
    bundle_dir: Path,
    tmp_path: Path,
    command: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in os.environ if n.startswith("HYDROMON_")]:
        monkeypatch.delenv(name)
    bad = tampered(bundle_dir, tmp_path)
    argv = [command, "--model-bundle", str(bad)]
    if command == "replay":
        argv += ["--feed", "rpi_bush_point", "--start", "2024-01-01T00:00:00Z"]
        argv += ["--end", "2024-01-01T00:01:00Z"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "classifier.bundle:" in error
    assert "checksum mismatch ['classifier/model.safetensors']" in error
