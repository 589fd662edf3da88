"""Settings from TOML, the --set overrides, params.json, and refusing to resume a different run."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.cli.train import register
from training.cli_support import EXIT_INTERRUPTED, parse_overrides, step_command
from training.prepare import PrepareSettings
from training.step_settings import load_settings, read_config
from training.steprun import Progress, StepInterrupted, StepRun


@dataclass(frozen=True)
class Toy:
    count: int = 3
    rate: float = 1.0
    name: str = "x"
    pair: tuple[float, ...] = (1.0, 2.0)


def test_settings_from_toml_with_overrides(tmp_path: Path) -> None:
    config = tmp_path / "t.toml"
    config.write_text("[toy]\ncount = 5\npair = [3, 4]\n")
    settings = load_settings(
        Toy, read_config(config), "toy", parse_overrides(["name=abc", "rate=2"])
    )
    assert settings == Toy(count=5, rate=2.0, name="abc", pair=(3, 4))


def test_unknown_and_mistyped_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\[toy\] has unknown setting\(s\) colour"):
        load_settings(Toy, {"toy": {"colour": 1}}, "toy")
    with pytest.raises(ValueError, match=r"\[toy\] count must be an integer"):
        load_settings(Toy, {"toy": {"count": "3"}}, "toy")
    with pytest.raises(ValueError, match=r"\[toy\] must be a table, not 3"):
        load_settings(Toy, {"toy": 3}, "toy")
    bad = tmp_path / "bad.toml"
    bad.write_text("[toy\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        read_config(bad)
    with pytest.raises(ValueError, match="does not exist"):
        read_config(tmp_path / "missing.toml")


def test_default_training_config_is_valid() -> None:
    from training.default_model import DefaultModelSettings
    from training.evaluate import EvaluateSettings
    from training.export import ExportSettings
    from training.fetch_catalogue import FetchSettings
    from training.noise_refine import NoiseRefineSettings
    from training.train_classifier import TrainClassifierSettings
    from training.train_denoiser import TrainDenoiserSettings

    config = read_config(Path(__file__).parents[2] / "config" / "training.toml")
    sections = {
        "fetch": FetchSettings,
        "prepare": PrepareSettings,
        "noise_refine": NoiseRefineSettings,
        "train_denoiser": TrainDenoiserSettings,
        "train_classifier": TrainClassifierSettings,
        "default_model": DefaultModelSettings,
        "evaluate": EvaluateSettings,
        "export": ExportSettings,
    }
    for section, cls in sections.items():
        load_settings(cls, config, section)
    assert set(config) - {"denoise"} == set(sections)


def test_params_file_and_resume_guard(tmp_path: Path) -> None:
    source = tmp_path / "input.txt"
    source.write_text("data")
    run = StepRun("toy", tmp_path / "out", Toy(), inputs={"source": source}, max_units=2)
    params = json.loads((tmp_path / "out" / "params.json").read_text())
    assert params["settings"]["count"] == 3
    assert params["inputs"]["source"]["sha256"] == (
        "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7"
    )
    assert set(params["code_version"]) == {"hydromon", "git_commit", "sources_sha256"}
    run.unit_done("a")
    with pytest.raises(StepInterrupted):
        run.unit_done("b")
    again = StepRun("toy", tmp_path / "out", Toy(), inputs={"source": source})
    assert again.progress.done("a") and again.progress.done("b")
    with pytest.raises(ValueError, match="other settings or inputs"):
        StepRun("toy", tmp_path / "out", Toy(count=4), inputs={"source": source})
    source.write_text("changed")
    with pytest.raises(ValueError, match="other settings or inputs"):
        StepRun("toy", tmp_path / "out", Toy(), inputs={"source": source})


def test_a_torn_progress_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    path.write_text('{"unit": "a"}\n{"unit": "b", "ti')
    progress = Progress(path)
    assert progress.done("a") and not progress.done("b")


def test_hydromon_train_parses_every_step(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "train",
            "evaluate",
            "--out",
            str(tmp_path),
            "--input",
            "m.csv",
            "--classifier",
            "c",
            "--set",
            "split=val",
            "--max-units",
            "2",
        ]
    )
    assert args.step_module == "training.evaluate" and args.denoised is None
    assert args.set == ["split=val"] and args.max_units == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "denoise", "--out", str(tmp_path), "--input", "m.csv"])


def test_hydromon_train_reports_bad_input_with_an_exit_code(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["train", "prepare", "--out", str(tmp_path / "o"), "--input", str(tmp_path / "none")]
    )
    assert args.func(args) == 2
    assert "does not exist" in capsys.readouterr().err
    args = parser.parse_args(
        [
            "train",
            "prepare",
            "--out",
            str(tmp_path / "o"),
            "--input",
            str(tmp_path),
            "--set",
            "clip_format=mp3",
        ]
    )
    assert args.func(args) == 2
    assert "clip_format must be flac or wav" in capsys.readouterr().err


def test_step_command_passes_required_inputs_in_order_and_optional_ones_by_name(
    tmp_path: Path,
) -> None:
    calls: list[tuple[object, ...]] = []

    def evaluate(settings, out, manifest, classifier, *, denoised, denoised_classifier, max_units):  # type: ignore[no-untyped-def]
        calls.append(
            (settings, out, manifest, classifier, denoised, denoised_classifier, max_units)
        )
        return out

    command = step_command("evaluate", Toy, evaluate)
    assert command.spec.name == "evaluate" and command.settings is Toy
    command.run(
        Toy(), tmp_path, {"classifier": Path("c"), "input": Path("m"), "denoised": Path("d")}, 2
    )
    assert calls == [(Toy(), tmp_path, Path("m"), Path("c"), Path("d"), None, 2)]


def test_python_m_step_main_runs_interrupts_and_resumes(tmp_path: Path) -> None:
    # No capsys here: main() configures logging onto sys.stderr, which must outlive this test.
    from training import fetch_catalogue as fetch

    source = tmp_path / "mine"
    source.mkdir()
    (source / "a.flac").write_bytes(b"a" * 10)
    (source / "b.flac").write_bytes(b"b" * 20)
    (source / "a.Table.1.selections.txt").write_text("Selection\n")
    argv = ["--out", str(tmp_path / "out"), "--set", f"local_dir='{source}'"]
    assert fetch.main([*argv, "--max-units", "1"]) == EXIT_INTERRUPTED
    assert '"reason": "max_units"' in (tmp_path / "out" / "fetch.log").read_text()
    assert fetch.main(argv) == 0
    inventory = json.loads((tmp_path / "out" / "inventory.json").read_text())
    assert sorted(item["path"] for item in inventory) == [
        "annotations/a.Table.1.selections.txt", "audio/a.flac", "audio/b.flac",
    ]  # fmt: skip
    units = [json.loads(line)["unit"] for line in (tmp_path / "out" / "progress.jsonl").open()]
    assert len(units) == len(set(units)) == 3  # the first file was not copied twice
    assert fetch.main(["--out", str(tmp_path / "out2"), "--set", "local_dir='/nowhere'"]) == 2
