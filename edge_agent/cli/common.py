"""What every command shares: loading the config and turning library errors into one line."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.config import GotchaConfig, load_config
from edge_agent.errors import GotchaError
from edge_agent.printable import printable

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file (default: $GOTCHA_CONFIG or "
                 "./gotcha.toml, else built-in defaults).", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

EXIT_OK = 0
EXIT_SOME_FAILED = 1  # the batch ran, but at least one item failed
EXIT_ERROR = 2  # nothing could run (bad config, broken model, ...)


def error(message: str) -> None:
    """One line on stderr, prefixed so it stands out in a technician's terminal; a control
    character in it (a newline in a file name) is shown escaped, never obeyed."""
    typer.echo(f"error: {printable(message, backslash=False)}", err=True)


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn a GotchaError into one line on stderr and exit code 2; let real bugs show a trace."""
    try:
        yield
    except GotchaError as exc:
        error(str(exc))
        raise typer.Exit(EXIT_ERROR) from None


def get_config(path: Path | None) -> GotchaConfig:
    with cli_errors():
        return load_config(path)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
