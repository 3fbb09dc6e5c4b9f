"""Entry point of the `gotcha` command: one Typer app, each command group in its own module."""

from __future__ import annotations

from typing import Annotated

import typer

from edge_agent import __version__
from edge_agent.cli import common

app = typer.Typer(
    name="gotcha",
    help="Gotcha: report illegally parked vehicles from photos, with Korean plate reading.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gotcha {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[bool | None, typer.Option("--version", callback=_version,
                                                  is_eager=True, help="Show version.")] = None,
) -> None:
    """Gotcha: report illegally parked vehicles from photos, with Korean plate reading."""
    common.setup_logging(verbose)


def _register_all() -> None:
    """Each command module adds its own commands (one module a command group)."""
    from edge_agent.cli import (
        cloud,
        demo,
        doctor_cmd,
        eval_cmd,
        models_cmd,
        process,
        reports,
        run,
        serve,
        store_cmd,
        sync,
    )

    for module in (process, demo, run, sync, reports, store_cmd, models_cmd, eval_cmd, serve,
                   cloud, doctor_cmd):
        module.register(app)


_register_all()

if __name__ == "__main__":
    app()
