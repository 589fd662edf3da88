"""Read one step's section of the training TOML into that step's frozen settings dataclass."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def read_config(path: Path | None) -> dict[str, Any]:
    """The whole TOML file as a dict; no file means every step runs on its defaults."""
    if path is None:
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as error:
        raise ValueError(f"config file {path} does not exist") from error
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"config file {path} is not valid TOML: {error}") from error


def settings_from(cls: type[T], values: dict[str, Any], *, section: str) -> T:
    """Build ``cls`` from ``values``; unknown keys and wrong types are errors that name the key."""
    fields = {field.name: field for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(
            f"[{section}] has unknown setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(fields))}"
        )
    defaults = cls()  # every settings class has defaults for all fields
    converted: dict[str, Any] = {}
    for name, value in values.items():
        converted[name] = _coerce(getattr(defaults, name), value, f"[{section}] {name}")
    return dataclasses.replace(defaults, **converted)  # type: ignore[type-var]


def load_settings(
    cls: type[T], config: dict[str, Any], section: str, overrides: dict[str, Any] | None = None
) -> T:
    table = config.get(section, {})
    if not isinstance(table, dict):
        raise ValueError(f"[{section}] must be a table, not {table!r}")
    values = dict(table)
    values.update({key: value for key, value in (overrides or {}).items() if value is not None})
    return settings_from(cls, values, section=section)


def _coerce(default: Any, value: Any, where: str) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, not {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, not {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where} must be a number, not {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string, not {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where} must be a list, not {value!r}")
        return tuple(value)
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be a table, not {value!r}")
        return dict(value)
    return value


def as_dict(settings: object) -> dict[str, Any]:
    return dataclasses.asdict(settings)  # type: ignore[arg-type]
