"""Who may command a device over MQTT: signed commands, and hashed plates in events.

Why: any client that can publish on ``gotcha/{device}/commands`` could make a device re-read
its configuration or upload now, and events name the plates the device saw. A command is
obeyed only when it carries an HMAC-SHA256 made with the fleet's command key over the topic
and the whole command (so it cannot be moved to another device or altered), with a time close
to the device clock (so an old one is refused) and a nonce not seen before (so a recorded one
cannot be replayed inside the window). Where the broker's own ACL already lets only the
operator publish there (``mqtt.commands_trusted_by_acl``), unsigned commands are obeyed.

The signed form::

    {"command": "sync_now", ..., "ts": 1767225600.0, "nonce": "<16+ chars>", "sig": "<hex>"}

``sig`` = HMAC-SHA256(key, topic + "\\n" + the JSON of every other field, keys sorted,
separators "," and ":", UTF-8). :func:`sign_command` makes one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

MAX_NONCES = 10_000  # remembered at once; a flood beyond this is refused, not forgotten
PLATE_FIELDS = ("plate", "plate_alt", "plate_raw")


class CommandRejected(Exception):
    """A command that is not obeyed; ``str()`` says why (never echoes the payload)."""


def _signed_bytes(topic: str, body: Mapping[str, Any]) -> bytes:
    fields = {k: v for k, v in body.items() if k != "sig"}
    return (topic + "\n" + json.dumps(fields, sort_keys=True, separators=(",", ":"),
                                      ensure_ascii=False)).encode("utf-8")


def signature(key: str, topic: str, body: Mapping[str, Any]) -> str:
    return hmac.new(key.encode("utf-8"), _signed_bytes(topic, body), hashlib.sha256).hexdigest()


def sign_command(key: str, topic: str, command: str, now: float | None = None,
                 nonce: str | None = None, **args: Any) -> bytes:
    """The payload of a signed command, for the operator's tools (and the tests)."""
    body: dict[str, Any] = {"command": command, **args,
                            "ts": time.time() if now is None else now,
                            "nonce": nonce or secrets.token_hex(16)}
    body["sig"] = signature(key, topic, body)
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


class CommandVerifier:
    """Checks signature, time window and nonce of each command of one device's topic."""

    def __init__(self, key: str, topic: str, window_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._topic = topic
        self._window_s = window_s
        self._clock = clock
        self._nonces: OrderedDict[str, float] = OrderedDict()  # nonce -> forget after
        self._lock = threading.Lock()

    def verify(self, body: Mapping[str, Any]) -> None:
        """Return when the command may be obeyed; raise CommandRejected otherwise."""
        sig, ts, nonce = body.get("sig"), body.get("ts"), body.get("nonce")
        if not isinstance(sig, str) or not isinstance(nonce, str) \
                or isinstance(ts, bool) or not isinstance(ts, (int, float)):
            raise CommandRejected("unsigned (a command needs ts, nonce and sig)")
        if not 16 <= len(nonce) <= 128:
            raise CommandRejected("nonce must be 16 to 128 characters")
        if not hmac.compare_digest(sig, signature(self._key, self._topic, body)):
            raise CommandRejected("bad signature")
        now = self._clock()
        if not math.isfinite(float(ts)) or abs(now - float(ts)) > self._window_s:
            raise CommandRejected(f"outside the {self._window_s:.0f} s window "
                                  f"({now - float(ts):+.0f} s old)")
        with self._lock:
            while self._nonces and next(iter(self._nonces.values())) < now:
                self._nonces.popitem(last=False)
            if nonce in self._nonces:
                raise CommandRejected("replayed (nonce already used)")
            if len(self._nonces) >= MAX_NONCES:
                raise CommandRejected("too many commands in the window")
            self._nonces[nonce] = now + 2 * self._window_s


def plate_hash(salt: str, plate: str) -> str:
    """The salted hash events carry instead of a plate: HMAC-SHA256(salt, plate), 32 hex."""
    return hmac.new(salt.encode("utf-8"), plate.encode("utf-8"), hashlib.sha256
                    ).hexdigest()[:32]


def mask_plates(data: Mapping[str, Any], mode: str, salt: str | None) -> dict[str, Any]:
    """Event fields with each plate number replaced by ``<field>_hash`` ('hash' mode; left out
    without a salt) or kept ('clear' mode)."""
    out = dict(data)
    if mode == "clear":
        return out
    for field in PLATE_FIELDS:
        value = out.pop(field, None)
        if isinstance(value, str) and value and salt:
            out[f"{field}_hash"] = plate_hash(salt, value)
    return out
