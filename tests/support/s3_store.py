"""S3 store settings for tests: the emulator's endpoint and short backoffs."""

from __future__ import annotations

from monitor.ingest.s3 import S3Settings


def store_settings(endpoint_url: str, bucket: str, **overrides: object) -> S3Settings:
    base: dict[str, object] = {
        "bucket": bucket,
        "endpoint_url": endpoint_url,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "connect_timeout_s": 2.0,
        "read_timeout_s": 5.0,
    }
    base.update(overrides)
    return S3Settings(**base)  # type: ignore[arg-type]
