"""The MQTT, webhook and notification sections: loaded from TOML and the environment, checked
with the setting named, shown masked, and wired into outputs and spool locks."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config.loader import ConfigError, load_config, masked
from monitor.publish.cooldown import CooldownOutput
from monitor.publish.mqtt import MqttOutput
from monitor.publish.webhook import WebhookOutput
from monitor.runtime import wiring

TOML = """
[outputs]
mqtt = true
webhooks = true
notify = true
websocket = false
files = false

[index]
path = "{tmp}/index.sqlite3"

[mqtt]
host = "broker.example"
username = "hydromon"
password = "hunter2"
spool_path = "{tmp}/mqtt.sqlite3"

[mqtt.retry]
initial_s = 0.5

[webhooks]
spool_dir = "{tmp}/hooks"

[[webhooks.targets]]
url = "https://user:pw@orcasite.example/api/detections"
name = "orcasite"
secret = "s3cret"
labels = ["humpback"]
min_score = 0.8
headers = {{ Authorization = "Bearer abc" }}

[[webhooks.targets]]
url = "http://127.0.0.1:9000/hook"
statuses = ["opened", "closed"]

[notify]
urls = ["ntfys://ntfy.sh/secret-topic"]
link_base_url = "https://hydromon.example.org"

[notify.quiet_hours]
start = "22:00"
end = "07:00"
timezone = "America/Los_Angeles"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hydromon.toml"
    path.write_text(text.format(tmp=tmp_path))
    return path


def test_the_sections_load_and_wire_into_outputs_and_spools(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, TOML), env={"HYDROMON_MQTT__PORT": "8883"})
    assert config.mqtt.port == 8883 and config.mqtt.retry.initial_s == 0.5
    first, second = config.webhooks.targets
    assert first.labels == ("humpback",) and first.headers == {"Authorization": "Bearer abc"}
    assert second.statuses == ("opened", "closed") and second.secret is None
    assert config.notify.quiet_hours.timezone == "America/Los_Angeles"
    outputs = wiring.make_outputs(config)
    assert [o.name for o in outputs] == [
        "mqtt",
        "webhook-orcasite",
        "webhook-1",
        "notify",
        "index",
    ]
    assert isinstance(outputs[0], MqttOutput) and isinstance(outputs[1], WebhookOutput)
    assert isinstance(outputs[3], CooldownOutput)
    assert wiring.spool_paths(config) == [
        tmp_path / "mqtt.sqlite3",
        tmp_path / "hooks" / "orcasite.sqlite3",
        tmp_path / "hooks" / "1.sqlite3",
    ]


def test_secrets_are_masked_when_shown(tmp_path: Path) -> None:
    shown = masked(load_config(write(tmp_path, TOML), env={}))
    assert shown.mqtt.password == "***"
    assert shown.notify.urls == ("ntfys://***",)
    target = shown.webhooks.targets[0]
    assert target.secret == "***" and target.headers == {"Authorization": "***"}
    assert target.url == "https://user:***@orcasite.example/api/detections"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('timezone = "America/Los_Angeles"', "notify.quiet_hours.timezone: "),
        ('start = "22:00"', 'notify.quiet_hours.start: expected "HH:MM"'),
        ('url = "http://127.0.0.1:9000/hook"', "webhooks.targets[1].url: expected an http"),
        ('name = "orcasite"', "webhooks.targets[0].name: letters"),
        ('host = "broker.example"', "mqtt.detection_topic"),
    ],
)
def test_bad_values_name_the_setting(tmp_path: Path, change: str, message: str) -> None:
    bad = {
        'timezone = "America/Los_Angeles"': 'timezone = "Atlantis/Capital"',
        'start = "22:00"': 'start = "10pm"',
        'url = "http://127.0.0.1:9000/hook"': 'url = "hook"',
        'name = "orcasite"': 'name = "orca site"',
        'host = "broker.example"': 'host = "broker.example"\ndetection_topic = "x/{{node}}"',
    }[change]
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, TOML.replace(change, bad)), env={})
    assert message in str(caught.value)
