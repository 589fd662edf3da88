"""hydromon's configuration: a TOML file, then environment variables, then a model bundle, then
command-line flags.

Each component owns a frozen settings dataclass with defaults; ``Config``'s sections are those
classes themselves (nested ones are TOML sub-tables), plus ``monitor/config/sections.py`` for
what no component owns. The loader is generic: it walks the dataclass annotations, so every key
and type is checked, unknown keys are refused, and an error names the setting and the problem, e.g.
``engine.max_batch: expected an integer ≥ 1, got "x" (from HYDROMON_ENGINE__MAX_BATCH)``.

Overrides address a setting by its dotted path (``follower.timing.precedence``); a feed's
settings by its node name (``feeds.rpi_bush_point.enabled``):

- environment: ``HYDROMON_FOLLOWER__TIMING__PRECEDENCE=number`` (``__`` between levels, any case);
- command line: ``--set engine.max_batch=16`` (repeatable) and a few named flags.

Override values are text read as the setting's type: strings as they are, other types as TOML
values (``16``, ``true``, ``["a", "b"]``, ``{ a = 0.5 }``); a list of strings may also be written
``a,b``. For a setting that may be unset (``websocket.token``), the empty string unsets it.
Precedence: file < environment < model bundle (``classifier.bundle``, ``--model-bundle``: the
settings ``models.bundle.config_values`` names) < command line (named flags, then ``--set``).
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.bundle import BundleError, config_values, load_bundle
from monitor.api.routes import ApiSettings
from monitor.audio.decode import ChannelPolicy, DecoderSettings
from monitor.audio.windows import WindowSettings
from monitor.config.sections import (
    NODE_NAME,
    AccessSettings,
    ClassifierSettings,
    DenoiserSettings,
    FeedSettings,
    LoggingSettings,
    OutputSwitches,
    is_loopback,
)
from monitor.detect.builder import EventSettings
from monitor.health.feed_state import HealthSettings
from monitor.health.http import HttpSettings
from monitor.index.store import IndexSettings
from monitor.inference.engine_settings import EngineSettings
from monitor.ingest.live import FollowerSettings
from monitor.ingest.s3 import S3Settings
from monitor.limits import describe_limits, within_limits
from monitor.media.writer import MediaSettings
from monitor.publish.fanout import FanoutSettings
from monitor.publish.files import FileSettings
from monitor.publish.redis import RedisSettings
from monitor.publish.websocket import WebsocketSettings
from monitor.runtime.daemon_settings import DaemonSettings
from monitor.runtime.resume import StateSettings
from monitor.runtime.supervisor import SupervisorSettings

ENV_PREFIX = "HYDROMON_"
ENV_CONFIG_FILE = "HYDROMON_CONFIG"  # a config file path when --config is not given


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the setting."""


# The Orcasound live nodes (locations as Orcasound publishes them).
DEFAULT_FEEDS: tuple[FeedSettings, ...] = (
    FeedSettings("rpi_andrews_bay", "Andrews Bay", 48.5500299, -123.1666492),
    FeedSettings("rpi_bush_point", "Bush Point", 48.0336664, -122.6040035),
    FeedSettings("rpi_mast_center", "Mast Center", 47.34922, -122.32512),
    FeedSettings("rpi_north_sjc", "North San Juan Channel", 48.591294, -123.058779),
    FeedSettings("rpi_orcasound_lab", "Orcasound Lab", 48.5583362, -123.1735774),
    FeedSettings("rpi_point_robinson", "Point Robinson", 47.388383, -122.37267),
    FeedSettings("rpi_port_townsend", "Port Townsend", 48.135743, -122.760614),
    FeedSettings("rpi_sunset_bay", "Sunset Bay", 47.86497296593844, -122.33393605795372),
)


# Settings that follow another one: the loader refuses them, ``Config`` fills them in, and
# ``config show`` prints them as comments. Path → where the value comes from.
DERIVED: dict[str, str] = {
    "events.thresholds": "classifier.target_labels, default_threshold and thresholds",
    "events.feed_thresholds": "the thresholds of the [[feeds]]",
    "follower.archive.timing": "follower.timing (one clock for live and archive)",
    "fanout.close_timeout_s": "daemon.output_close_timeout_s",
    "http.token": "websocket.token (one bearer token for every server)",
}

# Settings ``config show`` never prints in full: path → how to mask the value.
SECRETS: dict[str, str] = {
    "websocket.token": "all",
    "http.token": "all",
    "redis.url": "password",
    "s3.endpoint_url": "password",
}


@dataclass(frozen=True, slots=True)
class Config:
    s3: S3Settings = field(default_factory=S3Settings)
    follower: FollowerSettings = field(default_factory=FollowerSettings)
    decoder: DecoderSettings = field(default_factory=DecoderSettings)
    windows: WindowSettings = field(default_factory=WindowSettings)
    classifier: ClassifierSettings = field(default_factory=ClassifierSettings)
    denoiser: DenoiserSettings = field(default_factory=DenoiserSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    events: EventSettings = field(default_factory=EventSettings)
    outputs: OutputSwitches = field(default_factory=OutputSwitches)
    redis: RedisSettings = field(default_factory=RedisSettings)
    websocket: WebsocketSettings = field(default_factory=WebsocketSettings)
    files: FileSettings = field(default_factory=FileSettings)
    fanout: FanoutSettings = field(default_factory=FanoutSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    state: StateSettings = field(default_factory=StateSettings)
    supervisor: SupervisorSettings = field(default_factory=SupervisorSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    feeds: tuple[FeedSettings, ...] = DEFAULT_FEEDS

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for feed in self.feeds:
            if feed.node in seen:
                raise ValueError(f'feeds: node "{feed.node}" is listed twice')
            seen.add(feed.node)
        classifier = self.classifier
        # The DERIVED settings (frozen: set once, here).
        thresholds = dict.fromkeys(classifier.target_labels, classifier.default_threshold)
        thresholds.update(classifier.thresholds)
        feed_thresholds = {f.node: dict(f.thresholds) for f in self.feeds if f.thresholds}
        derived = {
            "events": dataclasses.replace(
                self.events, thresholds=thresholds, feed_thresholds=feed_thresholds
            ),
            "follower": dataclasses.replace(
                self.follower,
                archive=dataclasses.replace(self.follower.archive, timing=self.follower.timing),
            ),
            "fanout": dataclasses.replace(
                self.fanout, close_timeout_s=self.daemon.output_close_timeout_s
            ),
            "http": dataclasses.replace(self.http, token=self.websocket.token),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @property
    def enabled_feeds(self) -> tuple[FeedSettings, ...]:
        return tuple(feed for feed in self.feeds if feed.enabled)

    def feed(self, node: str) -> FeedSettings:
        for feed in self.feeds:
            if feed.node == node:
                return feed
        raise KeyError(f"no feed {node!r} in the configuration")

    def check_threshold_labels(self) -> None:
        """A threshold for a label the classifier does not score would silently do nothing.
        (Checked once the model bundle, which may change the labels, has been applied.)"""
        classifier = self.classifier
        labels = set(classifier.target_labels)
        tables = [("classifier.thresholds", classifier.thresholds)]
        tables += [(f"feeds.{f.node}.thresholds", f.thresholds) for f in self.feeds]
        for where, table in tables:
            for label in table:
                if label not in labels:
                    raise ConfigError(
                        f'{where}: "{label}" is not one of classifier.target_labels '
                        f"({', '.join(json.dumps(t) for t in classifier.target_labels)})"
                    )

    def check_exposure(self) -> None:
        """A server reachable from other machines needs the token (or an explicit
        ``access.allow_anonymous = true``): detections and feed status are not for anyone."""
        if self.websocket.token or self.access.allow_anonymous:
            return
        servers = [("websocket.host", self.websocket.host, self.outputs.websocket)]
        servers.append(("http.host", self.http.host, self.http.enabled))
        for where, host, serving in servers:
            if serving and not is_loopback(host):
                raise ConfigError(
                    f"{where}: {json.dumps(host)} is not a loopback address and no token is set; "
                    "set websocket.token (clients send Authorization: Bearer <token>) or "
                    "access.allow_anonymous = true"
                )

    def channel_for(self, node: str) -> ChannelPolicy:
        channel = self.feed(node).channel
        return self.decoder.channel_policy if channel is None else channel

    def decoder_for(self, node: str) -> DecoderSettings:
        """The decoder settings with the feed's own channel choice (a feed not listed here:
        the decoder's)."""
        try:
            channel = self.channel_for(node)
        except KeyError:
            return self.decoder
        return dataclasses.replace(self.decoder, channel_policy=channel)


def masked(config: Config) -> Config:
    """``config`` with the ``SECRETS`` masked, for showing (``***``)."""
    changes: dict[str, dict[str, Any]] = {}
    for path, how in SECRETS.items():
        section, name = path.split(".")
        value = getattr(getattr(config, section), name)
        if value:
            changes.setdefault(section, {})[name] = _mask(value, how)
    shown = dataclasses.replace(config)  # a copy; frozen, so its sections are swapped in
    for section, values in changes.items():
        object.__setattr__(shown, section, dataclasses.replace(getattr(shown, section), **values))
    return shown


def _mask(value: str, how: str) -> str:
    if how == "all":
        return "***"
    # scheme://user:password@host… → scheme://user:***@host…
    return re.sub(r"^([A-Za-z][\w+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", value)


def config_toml(config: Config) -> str:
    """``config`` as TOML that loads back to it (derived settings as comments)."""
    from monitor.config.render import to_toml

    return to_toml(config, derived=DERIVED)


# ----------------------------------------------------------------------------- overrides


@dataclass(frozen=True, slots=True)
class Override:
    path: tuple[str, ...]
    text: str
    source: str  # shown in errors: the env var or the flag


@dataclass(frozen=True, slots=True)
class _Text:
    """An override's raw text, read as the target setting's type when the tree is built."""

    text: str
    source: str


def parse_set(assignment: str, source: str | None = None) -> Override:
    """``engine.max_batch=16`` → Override."""
    key, sep, value = assignment.partition("=")
    path = tuple(part.strip() for part in key.strip().split("."))
    if not sep or not all(path):
        raise ConfigError(f"--set {assignment!r}: expected SECTION.KEY=VALUE")
    return Override(path, value, source or f"--set {assignment}")


def env_overrides(env: Mapping[str, str]) -> list[Override]:
    """``HYDROMON_SECTION__KEY=value`` variables (those with ``__``), sorted by name."""
    found = []
    for name in sorted(env):
        if not name.upper().startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        if not all(path):
            raise ConfigError(f"{name}: expected {ENV_PREFIX}SECTION__KEY")
        found.append(Override(path, env[name], name))
    return found


def _apply(raw: dict[str, Any], override: Override) -> None:
    path, node, rest = override.path, raw, override.path
    if path[0] == "feeds":
        if len(path) < 3:
            raise ConfigError(
                f"{'.'.join(path)}: set a feed's keys one by one, e.g. feeds.NODE.enabled=false"
                f" (from {override.source})"
            )
        node, rest = _feed_entry(raw.get("feeds"), path[1], override), path[2:]
    for depth, part in enumerate(rest[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(path[: len(path) - len(rest) + depth + 1])
            raise ConfigError(f"{where}: not a section (from {override.source})")
        node = child
    node[rest[-1]] = _Text(override.text, override.source)


def _feed_entry(feeds: Any, node: str, override: Override) -> dict[str, Any]:
    if isinstance(feeds, list):
        for entry in feeds:
            if isinstance(entry, dict) and str(entry.get("node", "")).lower() == node.lower():
                return entry
    raise ConfigError(f'feeds.{node}: no feed with node "{node}" (from {override.source})')


def only_feeds(raw: dict[str, Any], nodes: Sequence[str], source: str) -> None:
    """Enable exactly the feeds ``nodes`` (the ``--feeds`` flag)."""
    wanted = {node.strip() for node in nodes if node.strip()}
    known = {str(entry.get("node")) for entry in raw["feeds"] if isinstance(entry, dict)}
    unknown = sorted(wanted - known)
    if unknown:
        raise ConfigError(f"{source}: unknown feed(s) {', '.join(unknown)}")
    for entry in raw["feeds"]:
        entry["enabled"] = entry.get("node") in wanted


# ----------------------------------------------------------------------------- building


def _plain_text(value: Any) -> Any:
    if isinstance(value, _Text):
        return value.text
    if isinstance(value, dict):
        return {k: _plain_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_text(v) for v in value]
    return value


def _show(value: Any) -> str:
    try:
        return json.dumps(_plain_text(value), ensure_ascii=False, default=str)
    except ValueError:
        return repr(value)


def _describe(kind: Any) -> str:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is bool:
        return "true or false"
    if kind is int:
        return "an integer"
    if kind is float:
        return "a number"
    if kind is str:
        return "a string"
    if kind is Path:
        return "a path"
    if origin is typing.Literal:
        return "one of " + ", ".join(_show(a) for a in args)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return "one of " + ", ".join(_show(m.value) for m in kind)
    if origin in (tuple, list):
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin in (dict, Mapping):
        return "a table"
    if _is_union(kind):
        named = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(named) + (" (or empty to unset)" if type(None) in args else "")
    if dataclasses.is_dataclass(kind):
        return "a table"
    return getattr(kind, "__name__", str(kind))


def _is_union(kind: Any) -> bool:
    return typing.get_origin(kind) in (typing.Union, types.UnionType)


class _Mismatch(Exception):
    """A value is not of the expected type (turned into a ConfigError with the path)."""


def _from_text(value: _Text, kind: Any) -> Any:
    """Read an override's text as a TOML-like value of ``kind``."""
    text = value.text
    if kind in (str, Path):
        return text
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Literal and text in args:
        return text
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return text
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if origin in (tuple, list) and args and args[0] is str:
            return [item.strip() for item in text.split(",") if item.strip()]
        if kind is bool and text.strip().lower() in ("yes", "no", "on", "off"):
            return text.strip().lower() in ("yes", "on")
        raise _Mismatch from None


def _convert(value: Any, kind: Any, path: str, sources: dict[str, str]) -> Any:
    """Check ``value`` (from TOML or an override) against ``kind``; the typed value."""
    if _is_union(kind):
        args = typing.get_args(kind)
        if isinstance(value, _Text) and value.text == "" and type(None) in args:
            return None
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, path, sources)
            except _Mismatch:
                continue
        raise _Mismatch
    if isinstance(value, _Text):
        if dataclasses.is_dataclass(kind):
            raise ConfigError(f"{path}: a section; set its keys one by one (from {value.source})")
        value = _from_text(value, kind)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if kind is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if kind is Path:
        if isinstance(value, str) and value:
            return Path(value)
        raise _Mismatch
    if origin is typing.Literal:
        if value in args:
            return value
        raise _Mismatch
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except ValueError:
            raise _Mismatch from None
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise _Mismatch
        item_kind = args[0]
        items = [
            _checked(v, item_kind, _item_path(path, v, i), sources) for i, v in enumerate(value)
        ]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, dict):
            raise _Mismatch
        key_kind, item_kind = args
        if key_kind is not str:
            raise TypeError(f"{path}: only string-keyed tables are supported")
        return {k: _checked(v, item_kind, f'{path}."{k}"', sources) for k, v in value.items()}
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise _Mismatch
        return build(kind, value, path, sources)
    raise TypeError(f"{path}: the config loader does not know the type {kind!r}")


def _item_path(path: str, value: Any, index: int) -> str:
    node = value.get("node") if isinstance(value, dict) else None
    if isinstance(node, str) and NODE_NAME.fullmatch(node) and node not in (".", ".."):
        return f"{path}.{node}"
    return f"{path}[{index}]"


def _source_note(path: str, sources: dict[str, str], value: Any = None) -> str:
    if isinstance(value, _Text):
        return f" (from {value.source})"
    return f" (from {sources[path]})" if path in sources else ""


def _checked(
    value: Any,
    kind: Any,
    path: str,
    sources: dict[str, str],
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """``_convert`` plus the field's metadata constraints, with the error message."""
    metadata = metadata or {}
    described = _describe(kind) if "choices" not in metadata else ""
    wanted = " ".join(filter(None, [described, describe_limits(metadata)]))
    try:
        converted = _convert(value, kind, path, sources)
    except _Mismatch:
        shown = _show(value)
        raise ConfigError(
            f"{path}: expected {wanted}, got {shown}{_source_note(path, sources, value)}"
        ) from None
    if not within_limits(converted, metadata):
        raise ConfigError(
            f"{path}: expected {wanted}, got {_show(value)}{_source_note(path, sources, value)}"
        )
    return converted


def build(
    cls: type, raw: Mapping[str, Any], path: str = "", sources: dict[str, str] | None = None
) -> Any:
    """Build the dataclass ``cls`` from a TOML-like mapping, checking every key and value."""
    sources = sources if sources is not None else {}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{path}." if path else ""
    unknown = [key for key in raw if key not in fields]
    if unknown:
        key = unknown[0]
        known = ", ".join(sorted(fields))
        raise ConfigError(
            f"{prefix}{key}: unknown setting{_source_note(prefix + key, sources, raw[key])}"
            f" (known here: {known})"
        )
    for key in raw:
        if prefix + key in DERIVED:
            given = [src for where, src in sources.items() if where.startswith(prefix + key)]
            note = f" (from {given[0]})" if given else ""
            raise ConfigError(
                f"{prefix}{key}: not set here, it follows {DERIVED[prefix + key]}{note}"
            )
    kwargs = {}
    for name, f in fields.items():
        if name in raw:
            kwargs[name] = _checked(raw[name], hints[name], prefix + name, sources, f.metadata)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{prefix}{name}: missing (required)")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        first = re.split(r"[.:\[ ]", message, maxsplit=1)[0]
        # A message that names exactly one setting of this section is about that setting.
        named = [n for n in fields if re.search(rf"(?<!\w){re.escape(n)}\b", message)]
        if first in fields:
            where = f"{prefix}{message}"
        elif len(named) == 1:
            where = f"{prefix}{named[0]}: {message}"
        else:
            where = f"{path or 'config'}: {message}"
        overridden = sorted({src for key, src in sources.items() if key.startswith(prefix)})
        note = f" (overrides here: {', '.join(overridden)})" if overridden else ""
        raise ConfigError(where + note) from None


# ----------------------------------------------------------------------------- loading


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a configuration file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def _default_feed_entries() -> list[dict[str, Any]]:
    from monitor.config.render import to_plain

    return [{k: v for k, v in to_plain(feed).items() if v is not None} for feed in DEFAULT_FEEDS]


def load_config(
    path: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Sequence[Override] = (),
    feeds_only: Sequence[str] | None = None,
) -> Config:
    """The effective configuration: ``path`` (or built-in defaults), then ``env``, then the
    model bundle named by ``classifier.bundle`` (if any), then ``overrides`` (command line),
    then ``feeds_only`` (enable just these nodes)."""
    env_list = env_overrides(os.environ if env is None else env)
    config = _load(path, [*env_list, *overrides], feeds_only)
    if config.classifier.bundle is not None:
        config = _load(
            path, [*env_list, *bundle_overrides(config.classifier.bundle), *overrides], feeds_only
        )
    config.check_threshold_labels()
    config.check_exposure()
    return config


def bundle_overrides(folder: Path) -> list[Override]:
    """The settings a model bundle decides (``models.bundle.config_values``), as overrides."""
    try:
        bundle = load_bundle(folder)
    except BundleError as error:
        raise ConfigError(f"classifier.bundle: {error}") from None
    source = f"model bundle {folder}"
    return [
        Override(tuple(key.split(".")), _as_text(value), source)
        for key, value in config_values(bundle).items()
    ]


def _as_text(value: Any) -> str:
    """A value as override text (TOML, or the empty string for "unset")."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    from monitor.config.render import toml_value

    return toml_value(value)


def _load(
    path: Path | str | None, overrides: Sequence[Override], feeds_only: Sequence[str] | None
) -> Config:
    raw: dict[str, Any] = read_toml(Path(path)) if path is not None else {}
    if not isinstance(raw.get("feeds", []), list):
        raise ConfigError("feeds: expected a list of [[feeds]] tables")
    if "feeds" not in raw and (
        feeds_only is not None or any(o.path[0] == "feeds" for o in overrides)
    ):
        raw["feeds"] = _default_feed_entries()
    sources: dict[str, str] = {}
    for override in overrides:
        _apply(raw, override)
        sources[".".join(override.path)] = override.source
    if feeds_only is not None:
        only_feeds(raw, feeds_only, "--feeds")
    return build(Config, raw, "", sources)


# ----------------------------------------------------------------------------- command line

# Named flags the daemon commands share: flag → setting path.
NAMED_FLAGS: dict[str, tuple[str, str]] = {
    "--redis-url": (
        "redis.url",
        "Redis URL: turns the Redis output on (empty: off)",
    ),
    "--http-port": ("http.port", "port of the health/metrics server (0: any free port)"),
    "--ws-port": ("websocket.port", "port of the websocket server"),
    "--device": ("engine.device", "inference device: auto, cpu, cuda or cuda:N"),
    "--state-dir": ("state.dir", "directory for resume points (empty: none)"),
    "--classifier": ("classifier.source", "classifier: hub id or local model directory"),
    "--model-bundle": (
        "classifier.bundle",
        "an exported model bundle: its classifier, labels, thresholds, denoiser and window "
        "override the file and environment (--set still wins)",
    ),
}
# Settings a named flag also sets: flag → (path, value).
IMPLIED_BY_FLAG: dict[str, tuple[str, str]] = {"--redis-url": ("outputs.redis", "true")}


def add_config_arguments(parser: argparse.ArgumentParser, *, named: bool = False) -> None:
    """``--config`` and ``--set`` (and, for the daemon commands, the named flags)."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"TOML configuration file (default: ${ENV_CONFIG_FILE}, else built-in defaults)",
    )
    parser.add_argument(
        "--set",
        dest="config_set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set engine.max_batch=16 (repeatable)",
    )
    if not named:
        return
    for flag, (_setting, text) in NAMED_FLAGS.items():
        parser.add_argument(flag, dest=_dest(flag), default=None, metavar="VALUE", help=text)
    parser.add_argument(
        "--feeds", default=None, metavar="NODE,...", help="monitor only these feeds"
    )


def _dest(flag: str) -> str:
    return "config_" + re.sub(r"\W", "_", flag.lstrip("-"))


def config_from_args(
    args: argparse.Namespace,
    env: Mapping[str, str] | None = None,
    *,
    shorthands: Sequence[Override] = (),
) -> Config:
    """The effective configuration for parsed arguments (raises ConfigError): the file, the
    environment, the bundle, then the named flags and a command's own ``shorthands``, then
    ``--set``. Every command reads its configuration here."""
    env = os.environ if env is None else env
    path = args.config or (Path(env[ENV_CONFIG_FILE]) if env.get(ENV_CONFIG_FILE) else None)
    overrides = []
    for flag, (setting, _text) in NAMED_FLAGS.items():
        value = getattr(args, _dest(flag), None)
        if value is None:
            continue
        if flag in IMPLIED_BY_FLAG:  # e.g. --redis-url URL: the output on; empty: off
            implied, text = IMPLIED_BY_FLAG[flag]
            text = text if value else "false"
            overrides.append(Override(tuple(implied.split(".")), text, f"{flag} {value!r}"))
            if not value:
                continue
        overrides.append(Override(tuple(setting.split(".")), value, f"{flag} {value}"))
    overrides.extend(shorthands)
    overrides.extend(parse_set(item) for item in getattr(args, "config_set", []))
    feeds = getattr(args, "feeds", None)
    feeds_only = feeds.split(",") if feeds is not None else None
    return load_config(path, env=env, overrides=overrides, feeds_only=feeds_only)
