"""All configuration in one place: a TOML file plus GOTCHA_* environment overrides.

Why one validated model: a field technician edits a TOML file on a device in the field; a typo
must fail at start with the key and the bad value named, not hours later in a worker thread.
Environment overrides use ``GOTCHA_<SECTION>__<KEY>`` (e.g. ``GOTCHA_STORE__PATH=/data/g.db``);
``GOTCHA_MODEL_DIR`` is a short alias for ``GOTCHA_MODELS__DIR``.
"""

from __future__ import annotations

import json
import os
import tomllib
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Field, ValidationError, model_validator

from edge_agent.config_base import Section
from edge_agent.config_network import MqttConfig, ServiceConfig
from edge_agent.errors import ConfigError
from gotcha_contracts.plate_identity import HIGH_CHAR_CONFIDENCE, LOW_CHAR_CONFIDENCE

ENV_PREFIX = "GOTCHA_"
DEFAULT_CONFIG_PATH = Path("gotcha.toml")
REPO_ROOT = Path(__file__).resolve().parent.parent
#: keys that were renamed: a config still using the old name is told the new one
MOVED_KEYS = {"vision.min_plate_confidence": "plates.evidence_floor"}


class DeviceConfig(Section):
    id: str = Field("gotcha-dev-01", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                    description="Device id; used in S3 keys and MQTT topics.")
    lat: float | None = Field(None, ge=-90, le=90,
                              description="Fixed latitude used for photos without GPS EXIF.")
    lon: float | None = Field(None, ge=-180, le=180,
                              description="Fixed longitude used for photos without GPS EXIF.")
    location_accuracy_m: float = Field(30.0, gt=0,
                                       description="Accuracy assumed for the fixed location.")
    timezone: str = Field("Asia/Seoul",
                          description="Zone of EXIF times that carry no OffsetTime.")
    zone: str = Field("sidewalk", description="Enforcement zone this device watches by default "
                      "(a key of gotcha_contracts.rules.ZONE_RULES).")

    @model_validator(mode="after")
    def _lat_lon_together(self) -> DeviceConfig:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("device.lat and device.lon must be set together")
        return self


class ModelsConfig(Section):
    """Which models run: every default is Apache-2.0 and comes with scripts/setup.sh (README,
    "Models"); the AGPL-3.0 detectors are options. Absent optional files: inference/optional."""

    dir: Path = Field(REPO_ROOT / "models",
                      description="Folder holding model files named in models.toml.")
    catalog: Path = Field(REPO_ROOT / "models" / "models.toml",
                          description="The models.toml describing every model.")
    vehicle_detector: str | None = Field("yolox-nano", description="models.toml id of the "
                                         "vehicle detector; empty to search plates in the whole "
                                         "frame.")
    plate_detector: str | None = Field(None, description="models.toml id of a plate detector "
                                       "(plate-yolov8n); empty: vision.text_detector finds them.")
    plate_reader: str = Field("gotcha-kr-plate-crnn", description="models.toml id of the plate "
                              "recogniser (CTC).")
    scene_embedder: str | None = Field("mobilenetv2-zoo-int8", description="models.toml id of "
                                       "the scene embedding model; empty for geometry only.")
    providers: list[Literal["tensorrt", "cuda", "cpu"]] = Field(
        ["tensorrt", "cuda", "cpu"], min_length=1,
        description="Execution providers in order of preference; missing ones are skipped.")
    intra_op_threads: int = Field(0, ge=0, le=64,
                                  description="onnxruntime intra-op threads (0 = all cores).")
    verify_sha256: bool = Field(True, description="Check each model's sha256 when it is loaded.")
    trt_cache_dir: Path | None = Field(None, description="Folder for TensorRT engine caches "
                                       "(engines are built once per device, not at each start); "
                                       "empty = no cache.")


class VisionConfig(Section):
    vehicle_score: float = Field(0.30, gt=0, lt=1, description="Minimum vehicle score.")
    vehicle_nms_iou: float = Field(0.50, gt=0, lt=1, description="NMS IoU for vehicles.")
    plate_score: float = Field(0.25, gt=0, lt=1, description="Minimum plate-detector score.")
    min_vehicle_px: int = Field(32, ge=1, description="Ignore vehicles smaller than this "
                                "(shorter side, pixels).")
    max_image_pixels: int = Field(100_000_000, ge=1_000_000,
                                  description="Refuse images larger than this (decompression "
                                  "bombs).")
    max_file_bytes: int = Field(60_000_000, ge=100_000, description="Refuse files larger than "
                                "this.")
    max_decoded_bytes: int = Field(256 * 1024 * 1024, ge=1_000_000, description="Refuse "
                                   "images whose decoded pixels (width × height × channels × "
                                   "bytes per channel, read from the header) would take more "
                                   "memory than this; sized for a 4 GB Raspberry Pi.")
    vehicle_fallback_score: float = Field(0.15, gt=0, lt=1, description="When nothing reaches "
                                          "vehicle_score, keep the best vehicle above this.")
    vehicle_rotate_fallback: bool = Field(True, description="When no vehicle is found, look "
                                          "again with the photo turned 90 degrees both ways "
                                          "(fisheye and overhead cameras).")
    plate_vehicle_margin: float = Field(0.08, ge=0, le=0.5, description="Share of a vehicle "
                                        "box added on each side before searching it for plates.")
    plate_text_fallback: bool = Field(True, description="Use the PaddleOCR text detector "
                                      "(models.toml ppocrv4-det) when the plate detector finds "
                                      "nothing in the whole frame.")
    text_detector: str = Field("ppocrv4-det", description="models.toml id of the text detector "
                               "used without a plate detector or as its fallback.")
    plate_search_top: float = Field(0.3, ge=0, lt=1, description="Share of an upright "
                                    "vehicle's height, from its top, not searched for its plate "
                                    "(plates sit low; each pixel costs text-detector time).")
    text_vehicle_side: int = Field(640, ge=64, le=4096, description="Longest side a vehicle's "
                                   "search region is scaled to for the text detector (time grows "
                                   "with its square; plates on buses need 640).")
    text_vehicle_zoom: float = Field(2.0, ge=1, le=16, description="Most a small vehicle's "
                                     "region is enlarged for the text detector.")
    text_min_side: int = Field(256, ge=32, le=2048, description="Short side a small whole photo "
                               "(a plate close-up) is enlarged to for the text detector; its "
                               "long side stays within 960.")
    text_batch: int = Field(1, ge=1, le=32, description="Vehicle regions per text-detector run, "
                            "padded to one size; 1 (one by one) measured faster on 2 cores.")


class PlatesConfig(Section):
    """How sure a plate read must be, in one place: for the reader's closer looks, for a read to
    be evidence, and for two reads one character apart to be one plate. Each value is the
    confidence of a single character (a region name's applies to both of its characters)."""

    sure_read: float = Field(0.9, ge=0, le=1, description="A read that is a plate and whose "
                             "every character is at least this sure gets no closer look (cut to "
                             "its text, split in two lines, turned level); one unsure letter in "
                             "an otherwise sure read is how a misread looks.")
    evidence_floor: float = Field(0.6, ge=0, le=1, description="A plate read is evidence only "
                                  "if its weakest character is at least this sure; less sure "
                                  "reads are shown but never recorded.")
    check_views: bool = Field(True, description="Read every would-be-evidence plate again in "
                              "five jittered views of its crop (tighter, looser, shifted, "
                              "softer) and count, per character, the views that read it "
                              "otherwise; off only to measure what the check adds.")
    max_dissent: int = Field(2, ge=0, le=4, description="A read is evidence only if no "
                             "character is read otherwise by more than this many of the five "
                             "views (chosen on held-out crops: README, \"How sure is sure\").")
    min_plate_px: int = Field(32, ge=0, le=400, description="A read is evidence only from a "
                              "plate crop at least this many pixels tall (twice that for a "
                              "crop shaped like a two-line plate, whose lines share it): "
                              "in a smaller one the characters are a few pixels high, too few "
                              "to tell letters that differ by one stroke (서/사, 로/도), or to "
                              "check the photo by eye.")
    one_char_unsure: float = Field(LOW_CHAR_CONFIDENCE, ge=0, le=1, description="Two reads one "
                                   "character apart are the same plate only if that character "
                                   "is below this in one read ... (default: the cloud's, "
                                   "gotcha_contracts.plate_identity)")
    one_char_sure: float = Field(HIGH_CHAR_CONFIDENCE, ge=0, le=1, description="... and at "
                                 "least this in the other; the report keeps the sure read.")

    @model_validator(mode="after")
    def _unsure_below_sure(self) -> PlatesConfig:
        if not self.one_char_unsure < self.one_char_sure:
            raise ValueError(f"plates.one_char_unsure ({self.one_char_unsure}) must be below "
                             f"plates.one_char_sure ({self.one_char_sure})")
        return self


class RulesConfig(Section):
    """Device-side overrides of the shared gotcha_contracts.rules (empty = the defaults)."""

    min_interval_s: dict[str, float] = Field(default_factory=dict,
                                             description="Per-zone minimum interval override.")
    radius_m: float | None = Field(None, gt=0, description="Same-spot radius override.")
    scene_threshold: float | None = Field(None, gt=0, lt=1,
                                          description="Scene-match threshold override.")


class StoreConfig(Section):
    path: Path = Field(Path("var/gotcha.db"), description="SQLite database file.")
    photo_dir: Path = Field(Path("var/photos"), description="Content-addressed photo store.")
    max_photo_bytes: int = Field(8_000_000_000, ge=10_000_000,
                                 description="Storage cap for photos; oldest unneeded go first.")
    expired_retention_h: float = Field(48.0, ge=0, description="Hours to keep photos of expired "
                                       "candidates.")
    min_free_mb: float = Field(500.0, ge=0, description="`gotcha doctor` reports a problem when "
                               "the disk of the database or the photos has less free space.")


class UploadConfig(Section):
    backend: Literal["local", "s3"] = Field("local", description="Where confirmed reports go.")
    local_dir: Path = Field(Path("var/outbox-store"), description="Object store folder for "
                            "backend=local.")
    bucket: str = Field("gotcha-reports", min_length=3, description="S3 bucket.")
    region: str = Field("ap-northeast-2", description="AWS region.")
    endpoint_url: str | None = Field(None, description="S3 endpoint (a local S3 for tests).")
    blur_people: bool = Field(True, description="Blur people in uploaded copies.")
    blur_other_plates: bool = Field(True, description="Blur every plate but the reported one.")
    max_attempts: int = Field(8, ge=1, description="Attempts per object before giving up a pass.")
    backoff_base_s: float = Field(0.5, gt=0, description="First retry delay.")
    backoff_max_s: float = Field(60.0, gt=0, description="Largest retry delay.")
    breaker_failures: int = Field(5, ge=1, description="Consecutive failures that open the "
                                  "circuit breaker.")
    breaker_cooldown_s: float = Field(30.0, gt=0, description="How long the breaker stays open.")


class GotchaConfig(Section):
    device: DeviceConfig = Field(default_factory=DeviceConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    vision: VisionConfig = Field(default_factory=VisionConfig)
    plates: PlatesConfig = Field(default_factory=PlatesConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    upload: UploadConfig = Field(default_factory=UploadConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)


def _field(section: str, key: str) -> Any:
    """The pydantic field ``section.key`` of GotchaConfig, or None when there is none."""
    outer = GotchaConfig.model_fields.get(section)
    model = outer.annotation if outer is not None else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    return model.model_fields.get(key)


def _takes_text_only(field: Any) -> bool:
    """True when every type the field accepts is text (str, a path, a string literal):
    then a GOTCHA_* value is taken as it is, never as JSON, so a password '"abc"' stays
    '"abc"' and 'true' stays 'true'."""
    if field is None:
        return False
    if (field.json_schema_extra or {}).get("secret"):
        return True
    union = get_origin(field.annotation) in (Union, types.UnionType)  # not list[...]'s args
    members = get_args(field.annotation) if union else (field.annotation,)
    kinds = [a for a in members if a is not type(None)]
    for kind in kinds:
        if get_origin(kind) is Literal:
            if not all(isinstance(v, str) for v in get_args(kind)):
                return False
        elif kind not in (str, Path):
            return False
    return bool(kinds)


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """Turn GOTCHA_SECTION__KEY=value into a nested dict. A value for a text field is the
    text as written; for any other field it is JSON when it parses (numbers, true, lists)."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX):]
        if rest == "MODEL_DIR":
            rest = "MODELS__DIR"
        if "__" not in rest:
            continue  # GOTCHA_CONFIG and friends are not config keys
        section, key = (part.lower() for part in rest.split("__", 1))
        value: Any = raw
        if not _takes_text_only(_field(section, key)):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
        tree.setdefault(section, {})[key] = value
    return tree


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError, origin: str) -> str:
    for problem in error.errors():
        key = ".".join(str(p) for p in problem["loc"])
        if problem["type"] == "extra_forbidden" and key in MOVED_KEYS:
            new = MOVED_KEYS[key]
            env = "GOTCHA_" + new.upper().replace(".", "__")
            return (f"{origin}: '{key}' is now '{new}'; rename it (in the environment: {env})")
    first = error.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"{origin}: unknown key '{key}'; check the spelling (see gotcha.example.toml)"
    value = first.get("input")
    shown = repr(value) if not isinstance(value, dict) else "(section)"
    loc = [str(p) for p in first["loc"]]
    field = _field(loc[0], loc[1]) if len(loc) >= 2 else None
    if field is not None and ((field.json_schema_extra or {}).get("secret")
                              or "SecretStr" in str(field.annotation)):
        shown = "(secret, not shown)"
    return f"{origin}: bad value for '{key}': {shown} ({first['msg']})"


def load_config(path: Path | None = None, environ: dict[str, str] | None = None) -> GotchaConfig:
    """Load and validate the config. ``path`` None: $GOTCHA_CONFIG, else ./gotcha.toml if it
    exists, else the built-in defaults (the embedded setup: SQLite, local store, bundled models).
    """
    environ = dict(os.environ) if environ is None else environ
    if path is None and environ.get("GOTCHA_CONFIG"):
        path = Path(environ["GOTCHA_CONFIG"])
    data: dict[str, Any] = {}
    origin = "built-in defaults"
    if path is not None or DEFAULT_CONFIG_PATH.exists():
        path = path or DEFAULT_CONFIG_PATH
        origin = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist; pass an existing file "
                              "or leave it out for the defaults") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    overrides = _env_overrides(environ)
    if overrides:
        origin += " + GOTCHA_* environment"
    try:
        return GotchaConfig.model_validate(_merge(data, overrides))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from exc
