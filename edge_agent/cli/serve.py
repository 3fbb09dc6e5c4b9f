"""`gotcha serve`: the vision pipeline as an HTTP service (POST /process_metadata,
POST /compare_background, GET /healthz) for raw photos from devices without the agent."""

from __future__ import annotations

from typing import Annotated

import typer

from edge_agent.cli.common import ConfigOption, cli_errors, get_config


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 for every "
                                      "interface; keep 127.0.0.1 behind a proxy).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="TCP port (0 picks a free one).")] = 8080,
    config: ConfigOption = None,
) -> None:
    """Serve the vision pipeline over HTTP until interrupted (Ctrl-C)."""
    from edge_agent.service.http import create_server

    cfg = get_config(config)
    with cli_errors():
        server = create_server(cfg, host, port)
    typer.echo(f"gotcha serve: listening on {server.url} (POST /process_metadata, "
               f"POST /compare_background, GET /healthz); Ctrl-C stops", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        typer.echo("gotcha serve: stopped", err=True)
    finally:
        server.server_close()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
