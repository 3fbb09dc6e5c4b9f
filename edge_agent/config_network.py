"""The configuration sections that face the network: the MQTT broker and `gotcha serve`.

Part of the one configuration (edge_agent.config.GotchaConfig holds these as ``mqtt`` and
``service``); kept apart only so each module stays small.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from edge_agent.config_base import SECRET, Section


class MqttConfig(Section):
    """The broker, its TLS, and who may command the device (see README, "MQTT commands")."""

    enabled: bool = Field(False, description="Publish status/events/heartbeat over MQTT.")
    host: str = Field("127.0.0.1", description="Broker host.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    username: str | None = Field(None, description="Broker user (password from "
                                 "GOTCHA_MQTT__PASSWORD).")
    password: str | None = Field(None, repr=False, json_schema_extra=SECRET,
                                 description="Broker password; set it only through the "
                                 "environment.")
    heartbeat_s: float = Field(60.0, gt=0, description="Heartbeat period.")
    tls: bool = Field(False, description="Use TLS (needed for the broker's certificate to be "
                      "checked and for a client certificate).")
    ca_file: Path | None = Field(None, description="CA certificate(s) that sign the broker's "
                                 "certificate (AWS IoT Core: the Amazon root CA); empty = the "
                                 "system's CAs.")
    cert_file: Path | None = Field(None, description="This device's client certificate (PEM), "
                                   "for brokers that authenticate devices by certificate "
                                   "(AWS IoT Core, Mosquitto require_certificate).")
    key_file: Path | None = Field(None, description="The private key of cert_file (PEM).")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive; the broker "
                             "publishes the last will (offline) after about 1.5× this.")
    reconnect_max_s: float = Field(30.0, gt=0, description="Longest wait between reconnect "
                                   "attempts (they start at 1 s and double).")
    max_queued: int = Field(1000, ge=1, description="Events kept in memory while the broker "
                            "is unreachable; newer ones are dropped beyond this.")
    command_key: str | None = Field(None, repr=False, json_schema_extra=SECRET,
                                    min_length=16, description="HMAC-SHA256 key that signs "
                                    "commands (GOTCHA_MQTT__COMMAND_KEY; set it only through "
                                    "the environment). Without it, and without "
                                    "commands_trusted_by_acl, every command is ignored.")
    commands_trusted_by_acl: bool = Field(False, description="Obey unsigned commands, because "
                                          "the broker's ACL lets only the operator publish on "
                                          "gotcha/{device}/commands.")
    command_window_s: float = Field(60.0, gt=0, le=3600, description="A signed command is "
                                    "obeyed only this close to the device clock; its nonce "
                                    "is remembered this long against replay.")
    event_plates: Literal["hash", "clear"] = Field("hash", description="How events name a "
                                                   "plate: 'hash' (plate_hash, an HMAC-SHA256 "
                                                   "with plate_salt; no plate at all without a "
                                                   "salt) or 'clear' (the plate number).")
    plate_salt: str | None = Field(None, repr=False, json_schema_extra=SECRET, min_length=8,
                                   description="Secret salt of plate_hash "
                                   "(GOTCHA_MQTT__PLATE_SALT); the same on every device "
                                   "lets the fleet match plates without seeing them.")

    @model_validator(mode="after")
    def _user_needs_password(self) -> MqttConfig:
        if self.username and not self.password:
            raise ValueError("mqtt.username is set but mqtt.password is not "
                             "(set GOTCHA_MQTT__PASSWORD)")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("mqtt.cert_file and mqtt.key_file must be set together")
        if not self.tls and (self.ca_file or self.cert_file):
            raise ValueError("mqtt.ca_file/cert_file are set but mqtt.tls is false; set "
                             "mqtt.tls = true")
        return self


class ServiceConfig(Section):
    """`gotcha serve`: who may call it, how much one request may cost, how many at once."""

    api_keys: list[SecretStr] = Field(default_factory=list, description="Keys accepted in the "
                                      "X-API-Key header; set them through the environment "
                                      "(GOTCHA_SERVICE__API_KEYS='[\"k1\",\"k2\"]'). Empty: "
                                      "no key needed, allowed on a loopback address only.")
    max_photo_bytes: int = Field(25_000_000, ge=100_000, description="Largest photo a request "
                                 "may carry (bytes).")
    max_decoded_bytes: int = Field(200_000_000, ge=1_000_000, description="Largest decoded "
                                   "image (width x height x channels x bytes per sample, from "
                                   "the header) a request may cost; refused before decoding.")
    workers: int = Field(2, ge=1, le=32, description="Photos processed at once.")
    queue: int = Field(8, ge=0, le=1000, description="Requests admitted to wait for a worker; "
                       "beyond workers + queue a request gets 503 with Retry-After at once.")
    retry_after_s: int = Field(2, ge=1, le=3600, description="Retry-After of a 503.")
    header_timeout_s: float = Field(10.0, gt=0, description="A connection must send a "
                                    "request's headers within this, or it is closed.")
    body_timeout_s: float = Field(60.0, gt=0, description="A request's whole body must arrive "
                                  "within this, or it gets 408.")
    keep_alive_s: int = Field(5, ge=1, le=300, description="Idle keep-alive connections close "
                              "after this.")
    s3_buckets: list[str] = Field(default_factory=list, description="Buckets whose objects "
                                  "POST /process_metadata may fetch by reference; empty: "
                                  "references are refused.")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint for references (a local "
                                        "S3 for tests).")
    s3_region: str = Field("ap-northeast-2", description="AWS region for references.")
