"""The doctor's checks of what the device talks to: the S3 bucket and the MQTT broker.

Each has a short timeout (a few seconds): a technician waits for the answer, and an endpoint
that does not answer that fast is a problem to report, not to wait out.
"""

from __future__ import annotations

import threading
from typing import Any

from edge_agent.config import GotchaConfig, UploadConfig
from edge_agent.doctor import Finding
from edge_agent.errors import GotchaError

TIMEOUT_S = 3.0


def check_s3(upload: UploadConfig, timeout_s: float = TIMEOUT_S) -> list[Finding]:
    """upload.backend = s3: the bucket answers a HEAD with these credentials."""
    if upload.backend != "s3":
        return [Finding("s3", True, f"upload.backend is {upload.backend}: "
                        f"{upload.local_dir}")]
    from edge_agent.upload.object_store import classify_s3_error, make_s3_client

    where = upload.endpoint_url or f"AWS {upload.region}"
    try:
        client = make_s3_client(upload.endpoint_url, upload.region,
                                connect_timeout_s=timeout_s, read_timeout_s=timeout_s)
        client.head_bucket(Bucket=upload.bucket)
    except Exception as exc:  # botocore raises many types; classify_s3_error names them
        code = _client_error_code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            detail = (f"bucket {upload.bucket} does not exist at {where}; create it or fix "
                      "upload.bucket")
        elif code in ("403", "AccessDenied"):
            detail = (f"bucket {upload.bucket} at {where}: access denied; give the device's "
                      "credentials s3:ListBucket, s3:PutObject and s3:GetObject on it")
        else:
            reason: GotchaError = classify_s3_error(exc, upload.bucket, "")
            detail = (f"{str(reason).removesuffix(' (will retry)')}; check the network and "
                      "upload.endpoint_url / upload.region")
        return [Finding("s3", False, detail)]
    return [Finding("s3", True, f"bucket {upload.bucket} reachable at {where}")]


def _client_error_code(exc: BaseException) -> str:
    response: Any = getattr(exc, "response", None)
    return str((response or {}).get("Error", {}).get("Code", "")) if response else ""


def check_mqtt(config: GotchaConfig, timeout_s: float = TIMEOUT_S) -> list[Finding]:
    """mqtt.enabled: the broker accepts a connection with the device's login and TLS (a
    client id of the doctor's own, so a running agent is not kicked off; nothing published)."""
    settings = config.mqtt
    if not settings.enabled:
        return [Finding("mqtt", True, "mqtt.enabled is false: not checked")]
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from edge_agent.telemetry.mqtt import secure_client

    broker = f"{settings.host}:{settings.port}"
    answered = threading.Event()
    verdict: dict[str, Any] = {}

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        verdict["reason"] = reason
        answered.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2,
                         client_id=f"gotcha-doctor-{config.device.id}", clean_session=True)
    client.on_connect = on_connect
    client.connect_timeout = timeout_s
    try:
        secure_client(client, settings)
        client.connect(settings.host, settings.port, keepalive=max(5, int(timeout_s) * 2))
    except GotchaError as exc:
        return [Finding("mqtt", False, str(exc))]
    except OSError as exc:  # refused, unreachable, DNS, TLS handshake
        return [Finding("mqtt", False, f"broker {broker} unreachable ({exc.strerror or exc}); "
                        "start the broker or fix mqtt.host / mqtt.port and the network")]
    client.loop_start()
    try:
        if not answered.wait(timeout_s):
            return [Finding("mqtt", False, f"broker {broker} did not answer within "
                            f"{timeout_s:.0f} s; check mqtt.host / mqtt.port and the network")]
        reason = verdict["reason"]
        if reason.is_failure:
            return [Finding("mqtt", False, f"broker {broker} refused the connection "
                            f"({reason}); check mqtt.username / GOTCHA_MQTT__PASSWORD and "
                            "the broker's ACL")]
    finally:
        client.disconnect()
        client.loop_stop()
    return [Finding("mqtt", True, f"broker {broker} accepts the device")]
