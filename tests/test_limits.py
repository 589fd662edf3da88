"""A setting's bounds are stated once (field metadata) and checked alike by the loader and by
the settings classes themselves."""

from __future__ import annotations

import pytest

from models.thresholds import bad_thresholds
from monitor.config.loader import ConfigError, load_config, parse_set
from monitor.inference.engine_settings import EngineSettings
from monitor.inference.stream_denoise import StreamDenoiseSettings
from monitor.ingest.s3 import S3Settings


def test_a_settings_class_built_in_code_refuses_what_the_loader_refuses() -> None:
    with pytest.raises(ValueError, match=r"^max_batch: expected ≥ 1, got 0$"):
        EngineSettings(max_batch=0)
    with pytest.raises(ValueError, match=r"^list_page_size: expected in 1..1000, got 5000$"):
        S3Settings(list_page_size=5000)
    with pytest.raises(ValueError, match=r"^snap_samples: expected ≥ 0, got -1$"):
        StreamDenoiseSettings(snap_samples=-1)


def test_nan_is_outside_every_bound() -> None:
    with pytest.raises(ConfigError, match=r"^engine\.bf16_tolerance: expected a number ≥ 0.0"):
        load_config(env={}, overrides=[parse_set("engine.bf16_tolerance=nan")])
    with pytest.raises(ValueError, match="backoff_base_s"):
        S3Settings(backoff_base_s=float("nan"))


def test_a_threshold_is_a_number_in_0_to_1() -> None:
    table = {"a": 0.0, "b": 1, "c": 1.5, "d": float("nan"), "e": True, "f": "0.5"}
    assert sorted(bad_thresholds(table)) == ["c", "d", "e", "f"]
    with pytest.raises(ConfigError, match=r'classifier\.thresholds\."Whale vocalization"'):
        load_config(
            env={}, overrides=[parse_set('classifier.thresholds={"Whale vocalization"=nan}')]
        )
