"""`gotcha run`: the device's main loop (watched folder or camera) until SIGINT/SIGTERM."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge_agent.cli.common import EXIT_ERROR, ConfigOption, cli_errors, error, get_config


def _camera_source(value: str) -> int | str:
    """A bare number is a device index (/dev/videoN); anything else a URL or pipeline."""
    return int(value) if value.isdigit() else value


def run(
    watch: Annotated[Path | None, typer.Option(
        "--watch", help="Folder to watch: every photo copied into it is processed once it "
        "has finished arriving.", show_default=False)] = None,
    camera: Annotated[str | None, typer.Option(
        "--camera", help="Camera to read: a device index (0), an RTSP/HTTP URL, or a "
        "GStreamer pipeline.", show_default=False)] = None,
    interval: Annotated[float | None, typer.Option(
        "--interval", min=0.05, help="Seconds between frames taken from --camera (default "
        "5), or between scans of --watch (default 1).", show_default=False)] = None,
    settle: Annotated[float, typer.Option(
        "--settle", min=0.0, help="--watch: seconds a file must stay unchanged before it is "
        "read (a copy still in progress is not).")] = 2.0,
    existing: Annotated[bool, typer.Option(
        "--existing", help="--watch: also process the photos already in the folder at start "
        "(a photo recorded before changes nothing).")] = False,
    upload_every: Annotated[float, typer.Option(
        "--upload-every", min=0.1, help="Seconds between upload passes over the outbox "
        "(and at once on the MQTT sync_now command).")] = 30.0,
    config: ConfigOption = None,
) -> None:
    """Run the device: take photos from a folder or camera, read plates, confirm reports,
    upload them and report over MQTT (if enabled), until Ctrl-C or SIGTERM. Works with no
    broker and no network: reports wait in the outbox."""
    from edge_agent.run_settings import RunnerSettings
    from edge_agent.runner import DeviceRunner

    if (watch is None) == (camera is None):
        error("give exactly one of --watch DIR or --camera SRC")
        raise typer.Exit(EXIT_ERROR)
    cfg = get_config(config)
    with cli_errors():
        if watch is not None:
            settings = RunnerSettings(watch_dir=watch, poll_s=interval or 1.0, settle_s=settle,
                                      include_existing=existing, upload_every_s=upload_every,
                                      config_path=config)
        else:
            assert camera is not None
            settings = RunnerSettings(camera=_camera_source(camera),
                                      frame_interval_s=interval or 5.0,
                                      upload_every_s=upload_every, config_path=config)
        runner = DeviceRunner(cfg, settings)
        typer.echo(f"gotcha run: device {cfg.device.id}, {settings.source_name}, store "
                   f"{cfg.store.path}; loading models (Ctrl-C to stop)", err=True)
        try:
            runner.run()
        finally:
            if runner.started:  # else the start failed, and cli_errors says why
                stats = runner.stats.snapshot()
                typer.echo(f"stopped: {stats['photos_processed']} photo(s) processed, "
                           f"{stats['photos_failed']} failed, {stats['confirmed']} report(s) "
                           f"confirmed, {stats['uploaded']} uploaded, "
                           f"{stats['outbox_depth']} waiting in the outbox", err=True)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
