"""How `gotcha run` runs: the photo source and the workers' pace (its CLI options).

Kept apart from the runner so the CLI and the tests build and validate settings without
importing the workers; the config file says everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_agent.errors import ConfigError


@dataclass(frozen=True)
class RunnerSettings:
    """How the device runs (the CLI options of `gotcha run`); the config file says the rest."""

    watch_dir: Path | None = None  # a folder photos are copied into
    camera: int | str | None = None  # an OpenCV source: device index, URL or GStreamer pipeline
    frame_interval_s: float = 5.0  # camera: at most one frame per interval is processed
    poll_s: float = 1.0  # watched folder: seconds between scans
    settle_s: float = 2.0  # watched folder: a file must be unchanged this long to be read
    include_existing: bool = False  # watched folder: also process the photos already there
    upload_every_s: float = 30.0  # seconds between uploader passes (sync_now: at once)
    maintenance_every_s: float = 30.0  # seconds between expiry/retention sweeps
    join_timeout_s: float = 30.0  # how long stop waits for each worker to finish
    config_path: Path | None = None  # the file reload_config re-reads (None: load_config's)

    def __post_init__(self) -> None:
        if (self.watch_dir is None) == (self.camera is None):
            raise ConfigError("give exactly one photo source: a folder to watch or a camera")
        for name in ("frame_interval_s", "poll_s", "upload_every_s", "maintenance_every_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be above 0, got {getattr(self, name)}")
        if self.settle_s < 0:
            raise ConfigError(f"settle_s must be 0 or more, got {self.settle_s}")

    @property
    def source_name(self) -> str:
        return f"folder:{self.watch_dir}" if self.watch_dir is not None else f"camera:{self.camera}"
