"""`gotcha doctor`: check the device in one command; one line per problem with its fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    ConfigOption,
    JsonOption,
    cli_errors,
    get_config,
)
from edge_agent.printable import printable


def doctor(
    watch: Annotated[Path | None, typer.Option(
        "--watch", help="Also check the folder `gotcha run --watch` will read.",
        show_default=False)] = None,
    camera: Annotated[str | None, typer.Option(
        "--camera", help="Also check that the camera `gotcha run --camera` will use opens "
        "(a device index, URL or GStreamer pipeline).", show_default=False)] = None,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Check this device: models and their sha256, execution providers, the store (writable,
    intact, free disk), the photo source, S3 and MQTT (when configured) and the clock.
    Exit 0 when all is well, 1 with one line per problem and what to do."""
    from edge_agent.cli.run import _camera_source
    from edge_agent.doctor import problems, run_doctor

    cfg = get_config(config)
    with cli_errors():
        findings = run_doctor(cfg, watch, _camera_source(camera) if camera else None)
    bad = problems(findings)
    if json_out:
        typer.echo(json.dumps({"ok": not bad, "problems": [f.line for f in bad],
                               "checks": [f.to_dict() for f in findings]},
                              ensure_ascii=False, indent=2))
    elif bad:
        for finding in bad:
            typer.echo(printable(finding.line, backslash=False))
    else:
        checked = sorted({f.check for f in findings})
        typer.echo(f"all good: {len(findings)} checks passed ({', '.join(checked)})")
        for finding in findings:
            typer.echo(f"  {printable(finding.line, backslash=False)}")
    raise typer.Exit(EXIT_SOME_FAILED if bad else EXIT_OK)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
