"""Every command and option of `gotcha` explains itself: a missing help text fails here."""

from __future__ import annotations

import click
import typer.main
from typer.testing import CliRunner

from edge_agent.cli.main import app


def _walk(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, (*path, name))


def test_every_command_and_option_has_help() -> None:
    root = typer.main.get_command(app)
    missing: list[str] = []
    for path, command in _walk(root):
        name = " ".join(("gotcha", *path))
        if not (command.help or command.short_help):
            missing.append(f"{name}: command")
        for param in command.params:
            if isinstance(param, click.Option) and not param.help and param.name != "help":
                missing.append(f"{name}: option {param.opts[0]}")
    assert not missing, "help text missing:\n" + "\n".join(missing)


def test_help_runs_for_every_command() -> None:
    root = typer.main.get_command(app)
    runner = CliRunner()
    for path, _command in _walk(root):
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output
