"""`gotcha doctor`: is this device ready to work? Every check in one pass, one line per problem.

Why one command: a field technician installing or visiting a device needs to know, in a
minute and without reading logs, whether the models are the pinned ones, the accelerator is
used, the store is sound and has room, the camera or folder is there, the uploads and the
broker can be reached and the clock can be trusted, and for each problem what to do.
Checks never change anything on the device (no migration, no repair, no upload).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from edge_agent.config import GotchaConfig


@dataclass(frozen=True)
class Finding:
    """One check's verdict: ``detail`` is a short fact when ok, else what is wrong and the fix."""

    check: str
    ok: bool
    detail: str

    @property
    def line(self) -> str:
        return f"{self.check}: {self.detail}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def run_doctor(config: GotchaConfig, watch: Path | None = None, camera: int | str | None = None,
               now: datetime | None = None) -> list[Finding]:
    """All checks, local ones first; network ones only for what the config enables."""
    from edge_agent.doctor.local import (
        check_clock,
        check_disk,
        check_models,
        check_providers,
        check_source,
        check_store,
    )
    from edge_agent.doctor.network import check_mqtt, check_s3

    findings = [*check_models(config), *check_providers(config), *check_store(config.store),
                *check_disk(config.store), *check_source(config, watch, camera),
                *check_s3(config.upload), *check_mqtt(config), *check_clock(config, now)]
    return findings


def problems(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if not f.ok]
