"""`gotcha process PHOTO...`: vehicles, plate boxes and readings for each photo.

The command is thin: load the pipeline, call ``process_photos`` (a library function, so the
lifecycle can hook in with ``on_result``), print. A bad photo is one line on stderr and the
batch goes on; exit 1 if any photo failed, 2 if nothing could run (config, model). On a
terminal a progress bar runs on stderr (never with --json, never into a pipe or file).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

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
from edge_agent.cli.progress import ProgressBar
from edge_agent.config import PlatesConfig
from edge_agent.errors import BadInputError
from edge_agent.plates.evidence import unsure_reason
from edge_agent.printable import printable
from edge_agent.results import PhotoResult

log = logging.getLogger(__name__)

ResultHook = Callable[[Any, PhotoResult], object]


@dataclass(frozen=True)
class PhotoOutcome:
    """One photo of a batch: its result, or the one-line reason it could not be used."""

    path: Path
    result: PhotoResult | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        if self.result is None:
            return {"file": str(self.path), "ok": False, "error": self.error}
        return {"file": str(self.path), "ok": True, **self.result.to_dict()}


def process_photos(paths: Iterable[Path], pipeline: Any, on_result: ResultHook | None = None
                   ) -> Iterable[PhotoOutcome]:
    """Process photos one by one, yielding as each finishes; a bad photo (BadInputError) is an
    outcome with ``error``, never the end of the batch. ``on_result(photo, result)`` runs after
    each good photo (the lifecycle's ``Agent.handle``); its errors do end the batch.
    """
    for path in paths:
        try:
            photo, result = pipeline.process_path(Path(path))
        except BadInputError as exc:
            log.info("skipped %s: %s", path, exc)
            yield PhotoOutcome(Path(path), error=str(exc))
            continue
        if on_result is not None:
            on_result(photo, result)
        yield PhotoOutcome(Path(path), result=result)


def _read_text(plate: Any, rule: PlatesConfig) -> str:
    """The read, marked sure (evidence) or UNSURE with the reason it is not evidence."""
    read = plate.read
    if read is None:
        return "(not read)"
    shown = read.text if read.valid else (read.raw_text or "''")
    if not read.valid:
        return f"{shown}  conf {read.confidence:.2f}  invalid: {read.reject_reason}"
    reason = unsure_reason(read, rule)
    verdict = "sure" if reason is None else f"UNSURE, not evidence: {reason}"
    return f"{shown}  conf {read.confidence:.2f}  {verdict}"


def outcome_dict(outcome: PhotoOutcome, rule: PlatesConfig) -> dict[str, object]:
    """The JSON of one photo, each plate marked ``sure`` (evidence under ``rule``) or not, with
    the reason, as the table marks it."""
    doc = outcome.to_dict()
    plate_docs = doc.get("plates")
    if outcome.result is not None and isinstance(plate_docs, list):
        for plate_doc, plate in zip(plate_docs, outcome.result.plates, strict=True):
            reason = unsure_reason(plate.read, rule)
            plate_doc["sure"] = reason is None
            plate_doc["unsure_reason"] = reason
    return doc


def format_outcome(outcome: PhotoOutcome, rule: PlatesConfig) -> list[str]:
    """Readable lines for one photo."""
    result = outcome.result
    if result is None:
        return [f"{printable(outcome.path.name)}: FAILED"]
    meta = result.photo_meta
    place = ("no location" if meta.location is None
             else f"{meta.location.lat:.6f},{meta.location.lon:.6f}")
    lines = [f"{printable(outcome.path.name)}  {result.image_size[0]}x{result.image_size[1]}  "
             f"{meta.captured_at.isoformat()} ({meta.time_source})  {place} "
             f"({meta.location_source})  {result.timings_ms['total']:.0f} ms"]
    lines += [f"  ! {w}" for w in meta.warnings]
    for i, v in enumerate(result.vehicles):
        lines.append(f"  vehicle {i:<2} {v.label:<10} {v.score:.2f}  {v.box.as_list()}")
    for p in result.plates:
        owner = "frame" if p.vehicle_index is None else f"vehicle {p.vehicle_index}"
        lines.append(f"  plate   on {owner:<10} {p.score:.2f}  {p.box.as_list()}  "
                     f"{_read_text(p, rule)}")
    if not result.vehicles and not result.plates:
        lines.append("  nothing found")
    return lines


def register(app: typer.Typer) -> None:
    @app.command("process")
    def process(
        photos: Annotated[list[Path], typer.Argument(help="Photo files (JPEG, PNG, HEIC).",
                                                     show_default=False)],
        config: ConfigOption = None,
        json_out: JsonOption = False,
        no_lifecycle: Annotated[bool, typer.Option(
            "--no-lifecycle", help="Only read the photos: record no sightings, open no store "
            "(by default each valid plate is recorded and may start or confirm a report).")]
        = False,
    ) -> None:
        """Find vehicles and plates in photos and read the plates: time, place, boxes, text.

        On a terminal a progress bar runs on stderr (not with --json or into a pipe)."""
        cfg = get_config(config)
        with cli_errors():
            from edge_agent.agent import LifecycleHook
            from edge_agent.inference.optional import without_absent
            from edge_agent.vision.pipeline import VisionPipeline

            cfg, notes = without_absent(cfg)
            for note in notes:  # once per run, before the photos: a missing download
                typer.echo(f"note: {note}", err=True)
            pipeline = VisionPipeline.from_config(cfg)
            hook = None if no_lifecycle else LifecycleHook.open(cfg)
            ordered = list(photos) if hook is None else hook.in_capture_order(list(photos))
            failed = 0
            collected = []
            # no bar for machines: JSON, or results piped to a file or another program
            piped = json_out or not ProgressBar.is_terminal(sys.stdout)
            bar = ProgressBar(len(ordered), enabled=False if piped else None)
            bar.show(0, ordered[0].name if ordered else "")
            try:
                for done, outcome in enumerate(process_photos(ordered, pipeline,
                                                              on_result=hook), start=1):
                    bar.clear()
                    if outcome.error is not None:
                        failed += 1
                        error(outcome.error)
                    if json_out:
                        doc = outcome_dict(outcome, cfg.plates)
                        if hook is not None:
                            doc["lifecycle"] = hook.to_dicts(outcome.path)
                        collected.append(doc)
                    elif outcome.result is not None:
                        lines = format_outcome(outcome, cfg.plates)
                        lines += hook.lines(outcome.path) if hook else []
                        typer.echo("\n".join(printable(line, backslash=False)
                                             for line in lines))
                    if done < len(ordered):
                        bar.show(done, ordered[done].name)
            finally:
                bar.clear()
                if hook is not None:
                    hook.close()
        if json_out:
            typer.echo(json.dumps(collected, ensure_ascii=False, indent=2))
        elif failed:
            typer.echo(f"{len(photos) - failed} of {len(photos)} photos processed, "
                       f"{failed} failed")
        raise typer.Exit(EXIT_SOME_FAILED if failed else EXIT_OK)
