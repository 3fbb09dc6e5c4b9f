"""`gotcha demo`: two photos of one parked car, 70 s apart, through the whole device path."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge_agent.cli.common import EXIT_OK, EXIT_SOME_FAILED, ConfigOption, cli_errors, get_config
from gotcha_contracts.rules import KST


def demo(
    folder: Annotated[Path, typer.Option("--dir", help="Folder for the demo's photos, store "
                                         "and exported report (created).")] = Path("gotcha-demo"),
    config: ConfigOption = None,
) -> None:
    """Make two photos of one parked car 70 s apart (EXIF time + GPS), process them, and show
    the confirmed report. Needs no downloaded model: absent ones are left out."""
    from edge_agent.demo import DEMO_PLATE, run_demo

    cfg = get_config(config)
    with cli_errors():
        run = run_demo(cfg, folder.resolve())
    for note in run.notes:
        typer.echo(f"note: {note}")
    for path, reads, decisions in zip(run.photos, run.reads, run.decisions, strict=True):
        typer.echo(f"{path.name}: read {', '.join(reads) or 'no plate'}")
        for d in decisions:
            typer.echo(f"  {d.plate}: {d.action} ({d.reason})")
    report = run.report
    if report is None:
        typer.echo(f"no report was confirmed for {DEMO_PLATE}; see the notes and reads above "
                   "(run with -v for details)", err=True)
        raise typer.Exit(EXIT_SOME_FAILED)
    assert report.confirmed_at is not None
    gap = (report.confirmed_at - report.first_seen_at).total_seconds()
    typer.echo("")
    typer.echo(f"report {report.report_id}: {report.state} — {report.plate}, zone {report.zone}, "
               f"{gap:.0f} s apart, scene score {report.scene_score:.2f}")
    typer.echo(f"  first seen {report.first_seen_at.astimezone(KST):%Y-%m-%d %H:%M:%S} KST, "
               f"report by {report.deadline.astimezone(KST):%Y-%m-%d %H:%M} KST"
               if report.deadline else "")
    typer.echo(f"  store:   {run.folder / 'gotcha.db'}")
    typer.echo(f"  photos:  {run.folder / 'photos'}")
    typer.echo(f"  export:  {run.exported[0].parent} (photos, manifest.json, contact-sheet.png)")
    typer.echo(f"  queued for upload; see `GOTCHA_STORE__PATH={run.folder / 'gotcha.db'} "
               f"GOTCHA_STORE__PHOTO_DIR={run.folder / 'photos'} "
               f"gotcha reports show {report.report_id[:8]}`")
    raise typer.Exit(EXIT_OK)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
