"""Configuration: defaults load, TOML and GOTCHA_* overrides apply, mistakes name key and value."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_defaults_are_the_embedded_setup() -> None:
    config = load_config(environ={})
    assert config.upload.backend == "local"
    assert config.store.path.suffix == ".db"
    assert config.mqtt.enabled is False


def test_example_config_is_valid() -> None:
    config = load_config(REPO / "gotcha.example.toml", environ={})
    assert config.device.id


def test_example_config_shows_the_shipped_evidence_rule() -> None:
    """The example's [plates] are the defaults the calibration chose, not stale numbers."""
    example = tomllib.loads((REPO / "gotcha.example.toml").read_text(encoding="utf-8"))
    shipped = load_config(environ={}).plates
    assert {"evidence_floor", "min_plate_px", "check_views", "max_dissent"} <= set(
        example["plates"])
    for key, value in example["plates"].items():
        assert getattr(shipped, key) == value, key


def test_toml_and_environment_override(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text('[device]\nid = "kerb-7"\nlat = 37.5\nlon = 127.0\n', encoding="utf-8")
    config = load_config(path, environ={"GOTCHA_VISION__VEHICLE_SCORE": "0.4",
                                        "GOTCHA_MODEL_DIR": "/opt/models",
                                        "GOTCHA_DEVICE__ID": "123"})
    assert config.device.id == "123"  # an id that looks like a number stays a string
    assert config.device.lat == 37.5
    assert config.vision.vehicle_score == 0.4
    assert config.models.dir == Path("/opt/models")


@pytest.mark.parametrize(
    ("toml", "environ", "expected"),
    [
        ('[device]\nidd = "x"\n', {}, "unknown key 'device.idd'"),
        ("[device]\nlat = 200\nlon = 1\n", {}, "'device.lat': 200"),
        ("[device]\nlat = 37.0\n", {}, "device.lat and device.lon must be set together"),
        ("", {"GOTCHA_VISION__VEHICLE_SCORE": "7"}, "'vision.vehicle_score': 7"),
        ("", {"GOTCHA_MQTT__PORT": "http"}, "'mqtt.port': 'http'"),
        ('[mqtt]\nusername = "u"\n', {}, "GOTCHA_MQTT__PASSWORD"),
        ("[device\n", {}, "is not valid TOML"),
        ("[plates]\nevidence_floor = 1.5\n", {}, "'plates.evidence_floor': 1.5"),
        ("", {"GOTCHA_PLATES__SURE_READ": "-0.1"}, "'plates.sure_read': -0.1"),
        ("[plates]\none_char_unsure = 0.8\none_char_sure = 0.8\n", {},
         "plates.one_char_unsure (0.8) must be below plates.one_char_sure (0.8)"),
    ],
)
def test_mistakes_name_the_key_and_value(
    tmp_path: Path, toml: str, environ: dict[str, str], expected: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_config_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})


def test_plate_thresholds_are_one_section(tmp_path: Path) -> None:
    """The reader's second look, the evidence floor and the one-character-off rule."""
    defaults = load_config(environ={}).plates
    assert (defaults.sure_read, defaults.evidence_floor, defaults.min_plate_px) == (0.9, 0.6, 32)
    assert (defaults.one_char_unsure, defaults.one_char_sure) == (0.6, 0.8)
    path = tmp_path / "g.toml"
    path.write_text("[plates]\nevidence_floor = 0.7\none_char_sure = 0.85\n", encoding="utf-8")
    config = load_config(path, environ={"GOTCHA_PLATES__SURE_READ": "0.95"})
    assert (config.plates.evidence_floor, config.plates.one_char_sure) == (0.7, 0.85)
    assert config.plates.sure_read == 0.95


@pytest.mark.parametrize(("toml", "environ"), [
    ("[vision]\nmin_plate_confidence = 0.5\n", {}),
    ("", {"GOTCHA_VISION__MIN_PLATE_CONFIDENCE": "0.5"}),
])
def test_the_old_evidence_floor_key_names_the_new_one(tmp_path: Path, toml: str,
                                                       environ: dict[str, str]) -> None:
    path = tmp_path / "old.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ)
    message = str(info.value)
    assert "'vision.min_plate_confidence' is now 'plates.evidence_floor'" in message
    assert "GOTCHA_PLATES__EVIDENCE_FLOOR" in message


@pytest.mark.parametrize("secret", ['"abc"', "true", '["x"]', "123", "null", '{"a": 1}'])
def test_environment_secrets_are_taken_as_written(secret: str) -> None:
    config = load_config(environ={"GOTCHA_MQTT__USERNAME": "dev-7",
                                  "GOTCHA_MQTT__PASSWORD": secret,
                                  "GOTCHA_MQTT__PORT": "8883"})
    assert config.mqtt.password == secret  # never parsed as JSON, never unquoted
    assert config.mqtt.username == "dev-7"
    assert config.mqtt.port == 8883  # numbers are still numbers
    assert secret not in repr(config)  # nor shown when the config is printed


def test_text_fields_are_taken_as_written() -> None:
    config = load_config(environ={"GOTCHA_UPLOAD__BUCKET": '"quoted"',
                                  "GOTCHA_MODELS__SCENE_EMBEDDER": "",
                                  "GOTCHA_MQTT__EVENT_PLATES": "clear",
                                  "GOTCHA_MQTT__COMMANDS_TRUSTED_BY_ACL": "true"})
    assert config.upload.bucket == '"quoted"'
    assert config.models.scene_embedder == ""
    assert config.mqtt.event_plates == "clear"
    assert config.mqtt.commands_trusted_by_acl is True


def test_a_bad_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={"GOTCHA_MQTT__COMMAND_KEY": "hunter2"})
    assert "hunter2" not in str(info.value)
    assert "'mqtt.command_key': (secret, not shown)" in str(info.value)


def test_mqtt_tls_files_need_tls_and_come_in_pairs(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text('[mqtt]\ncert_file = "c.pem"\nkey_file = "k.pem"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"set mqtt\.tls = true"):
        load_config(path, environ={})
    path.write_text('[mqtt]\ntls = true\ncert_file = "c.pem"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="must be set together"):
        load_config(path, environ={})


@pytest.mark.parametrize("value", ["sup3r-secret-key", '"sup3r-secret-key"'])
def test_a_malformed_api_key_list_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={"GOTCHA_SERVICE__API_KEYS": value})
    assert "sup3r" not in str(info.value) and "service.api_keys" in str(info.value)
