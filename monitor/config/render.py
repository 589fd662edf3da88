"""Settings dataclasses → plain data (for JSON) or TOML text (``hydromon config show``)."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def to_plain(value: Any) -> Any:
    """Dataclasses → dicts, tuples → lists, paths → strings, enums → values; None stays."""
    if _is_section(value):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def to_json(config: Any) -> str:
    return json.dumps(to_plain(config), indent=2, ensure_ascii=False)


def to_toml(config: Any, derived: Mapping[str, str] | None = None) -> str:
    """TOML for a dataclass tree: sections as tables, tuples of dataclasses as arrays of tables,
    dicts as inline tables. Unset (None) settings are written as comments, and so are the
    ``derived`` ones (dotted path → where the value comes from)."""
    lines: list[str] = []
    _table(lines, [], config, array=False, derived=derived or {})
    return "\n".join(lines).strip() + "\n"


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name, ensure_ascii=False)


def toml_value(value: Any) -> str:
    """One value as TOML text."""
    value = to_plain(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def _is_section(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _is_section_list(value: Any) -> bool:
    return isinstance(value, tuple | list) and bool(value) and all(map(_is_section, value))


def _table(
    lines: list[str], prefix: list[str], obj: Any, *, array: bool, derived: Mapping[str, str]
) -> None:
    fields = [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    plain = [(k, v) for k, v in fields if not _is_section(v) and not _is_section_list(v)]
    if prefix:
        header = ".".join(_key(p) for p in prefix)
        lines.append("")
        lines.append(f"[[{header}]]" if array else f"[{header}]")
    # Array items (feeds) are addressed by node, never derived.
    where = "" if array else ".".join(prefix)
    for name, value in plain:
        origin = derived.get(f"{where}.{name}" if where else name)
        if origin is not None:
            shown = "is not set" if value is None else f"= {toml_value(value)}"
            lines.append(f"# {_key(name)} {shown}  (follows {origin})")
        elif value is None:
            lines.append(f"# {_key(name)} is not set")
        else:
            lines.append(f"{_key(name)} = {toml_value(value)}")
    for name, value in fields:
        if _is_section(value):
            origin = derived.get(f"{where}.{name}" if where else name)
            if origin is not None:
                lines.append(f"# [{'.'.join([*prefix, name])}] follows {origin}")
                continue
            _table(lines, [*prefix, name], value, array=False, derived=derived)
        elif _is_section_list(value):
            for item in value:
                _table(lines, [*prefix, name], item, array=True, derived=derived)
