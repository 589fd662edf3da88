"""Validate messages against the JSON Schemas shipped in ``monitor/schemas``."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_FILES = {"detection": "detection.schema.json", "feed_status": "feed_status.schema.json"}


@cache
def validator(kind: str) -> Draft202012Validator:
    if kind not in SCHEMA_FILES:
        raise ValueError(f"no schema for message kind {kind!r}: known {sorted(SCHEMA_FILES)}")
    text = resources.files("monitor").joinpath("schemas", SCHEMA_FILES[kind]).read_text()
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(message: dict[str, Any]) -> list[str]:
    """Every way ``message`` breaks its schema (empty when valid)."""
    kind = message.get("kind")
    if not isinstance(kind, str):
        return ["message has no string 'kind'"]
    if kind not in SCHEMA_FILES:
        return [f"unknown message kind {kind!r}"]
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator(kind).iter_errors(message)
    ]


def validate_message(message: dict[str, Any]) -> None:
    errors = schema_errors(message)
    if errors:
        raise ValueError("message does not match its schema: " + "; ".join(errors))
