"""`gotcha store check|recover|fill-blur-boxes`: is the database whole, rebuilding it when it
is not, and recording what to blur in reports an older gotcha confirmed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edge_agent.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    ConfigOption,
    JsonOption,
    cli_errors,
    error,
    get_config,
)
from edge_agent.config import GotchaConfig
from edge_agent.printable import printable

if TYPE_CHECKING:
    from edge_agent.store.recover import Replay

store_app = typer.Typer(help="Check the device store, and rebuild a lost or damaged database.",
                        no_args_is_help=True)


@store_app.command("check")
def check(config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """Look at the database and the photo folder without changing anything: exit 0 when
    whole, 1 when something needs a person (each problem says what to do)."""
    from edge_agent.store.health import diagnose

    cfg = get_config(config)
    with cli_errors():
        health = diagnose(cfg.store)
    if json_out:
        typer.echo(json.dumps({"ok": health.ok, "facts": list(health.facts),
                               "problems": list(health.problems)}, ensure_ascii=False))
    else:
        for line in health.facts:
            typer.echo(printable(line, backslash=False))
        for line in health.problems:
            typer.echo(f"PROBLEM: {printable(line, backslash=False)}")
        typer.echo("store ok" if health.ok else f"{len(health.problems)} problem(s)")
    raise typer.Exit(EXIT_OK if health.ok else EXIT_SOME_FAILED)


def _replayer(cfg: GotchaConfig) -> tuple[Replay, Callable[[], None]]:
    """Vision and the lifecycle, to read kept photos again; and how to close them."""
    from edge_agent.agent import Agent
    from edge_agent.errors import BadInputError
    from edge_agent.inference.optional import without_absent
    from edge_agent.io.photo import decode_photo
    from edge_agent.vision.pipeline import VisionPipeline

    cfg, notes = without_absent(cfg)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    pipeline = VisionPipeline.from_config(cfg)
    agent = Agent.open(cfg)

    def replay(sha: str, data: bytes) -> int:
        try:
            photo = decode_photo(data, cfg, name=f"stored photo {sha[:12]}")
        except BadInputError as exc:
            error(str(exc))
            return 0
        return len(agent.handle(photo, pipeline.process(photo)))

    return replay, agent.close


@store_app.command("recover")
def recover(
    manifests: Annotated[list[Path] | None, typer.Option(
        "--manifests", help="A folder holding uploaded reports' manifest.json files (e.g. "
        "copied down from the bucket's reports/DEVICE/ prefix); repeatable. The local object "
        "store folder is always searched when upload.backend is local.",
        show_default=False)] = None,
    reprocess: Annotated[bool, typer.Option(
        "--reprocess", help="Read the stored photos no manifest names again (vision and the "
        "lifecycle, oldest first) to rebuild their candidates and confirmed reports.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Rebuild even when `gotcha store check` finds nothing wrong.")] = False,
    config: ConfigOption = None,
) -> None:
    """Move the database aside (renamed with a timestamp, never deleted) and rebuild it from
    the evidence photos and the uploaded manifests. Stop gotcha first."""
    from edge_agent.store.health import diagnose
    from edge_agent.store.recover import recover_store, replay_kept

    cfg = get_config(config)
    with cli_errors():
        health = diagnose(cfg.store)
        if health.ok and not force:
            typer.echo("store ok: nothing to recover (--force rebuilds it anyway)")
            raise typer.Exit(EXIT_OK)
        roots = list(manifests or [])
        if cfg.upload.backend == "local":
            roots.append(cfg.upload.local_dir)
        result = recover_store(cfg, roots)
        for line in result.lines():
            typer.echo(line)
        if reprocess and result.kept:
            replay, close = _replayer(cfg)
            try:
                done, recorded = replay_kept(cfg, result.kept, replay)
            finally:
                close()
            typer.echo(f"read {done} kept photo(s) again: {recorded} sighting(s) recorded")
        elif result.kept:
            typer.echo("run `gotcha store recover --reprocess --force` to read them again, or "
                       "leave them pinned")
    raise typer.Exit(EXIT_OK)


@store_app.command("fill-blur-boxes")
def fill_boxes(config: ConfigOption = None) -> None:
    """Find people and plates (vision models, once) in the photos of reports waiting for
    upload that were recorded before gotcha kept what to blur; the uploader refuses those."""
    from edge_agent.io.photo import decode_photo
    from edge_agent.store.blur_boxes import fill_blur_boxes, photos_missing_boxes
    from edge_agent.store.store import Store
    from edge_agent.vision.pipeline import VisionPipeline

    cfg = get_config(config)
    with cli_errors(), Store.open(cfg.store) as store:
        if not photos_missing_boxes(store):
            typer.echo("every report waiting for upload has its blur boxes")
            raise typer.Exit(EXIT_OK)
        pipeline = VisionPipeline.from_config(cfg, with_reader=False)

        def find(sha: str, data: bytes) -> tuple[list, list]:
            result = pipeline.process(decode_photo(data, cfg, name=f"stored photo {sha[:12]}"))
            return list(result.people), [p.box for p in result.plates]

        done = fill_blur_boxes(store, find)
    typer.echo(f"recorded blur boxes for {done} sighting(s); `gotcha sync` uploads them now")
    raise typer.Exit(EXIT_OK)


def register(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")
