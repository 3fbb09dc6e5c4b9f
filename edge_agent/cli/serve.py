"""`gotcha serve`: the vision pipeline as an HTTP service (POST /process_metadata,
POST /compare_background, GET /healthz, /readyz, /metrics) for raw photos from devices without
the agent; `--write-openapi PATH` writes the API document and exits."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.cli.common import ConfigOption, cli_errors, get_config


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 for every "
                                      "interface needs service.api_keys; keep 127.0.0.1 behind "
                                      "a proxy).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="TCP port (0 picks a free one).")] = 8080,
    write_openapi: Annotated[Path | None, typer.Option(
        "--write-openapi", help="Write the OpenAPI document to this file and exit (no models "
        "are loaded).", show_default=False)] = None,
    config: ConfigOption = None,
) -> None:
    """Serve the vision pipeline over HTTP until interrupted (Ctrl-C)."""
    cfg = get_config(config)
    if write_openapi is not None:
        from edge_agent.service import openapi
        from edge_agent.service.app import create_app
        from edge_agent.service.core import VisionService

        openapi.write(create_app(VisionService(cfg, None, None)), write_openapi)
        typer.echo(f"gotcha serve: wrote {write_openapi}", err=True)
        return
    from edge_agent.service.server import create_server

    with cli_errors():
        server = create_server(cfg, host, port)
    typer.echo(f"gotcha serve: listening on {server.url} (POST /process_metadata, "
               f"POST /compare_background, GET /healthz /readyz /metrics /openapi.json); "
               f"Ctrl-C stops", err=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn stopped cleanly first
        server.run()
    typer.echo("gotcha serve: stopped", err=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
