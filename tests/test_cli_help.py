"""Every command and option of `gotcha` explains itself: a missing help text fails here."""

from __future__ import annotations

from collections.abc import Iterator

import typer.main
from typer.testing import CliRunner

from edge_agent.cli.main import app

# typer may bundle its own click, so the tree is walked by shape, not by click's classes.


def _walk(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, (*path, name))


def _commands() -> list[tuple[tuple[str, ...], object]]:
    return list(_walk(typer.main.get_command(app)))


def test_the_whole_tree_is_walked() -> None:
    paths = {" ".join(path) for path, _ in _commands()}
    for expected in ("process", "demo", "models list", "eval plates", "eval scenes",
                     "reports export", "cloud promote", "sync", "run", "serve", "doctor",
                     "store fill-blur-boxes"):
        assert expected in paths


def test_every_command_and_option_has_help() -> None:
    missing: list[str] = []
    for path, command in _commands():
        name = " ".join(("gotcha", *path))
        if not (command.help or command.short_help):
            missing.append(f"{name}: command")
        for param in command.params:
            is_option = getattr(param, "param_type_name", "") == "option"
            if is_option and not param.help and param.name != "help":
                missing.append(f"{name}: option {param.opts[0]}")
    assert not missing, "help text missing:\n" + "\n".join(missing)


def test_help_runs_for_every_command() -> None:
    runner = CliRunner()
    for path, _command in _commands():
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output
