"""`gotcha reports list|show|export`: what the device has found, and the evidence of one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.cli.common import ConfigOption, JsonOption, cli_errors, get_config
from edge_agent.store.records import REPORT_STATES, Report, Sighting
from edge_agent.store.store import Store
from gotcha_contracts.rules import KST

reports_app = typer.Typer(help="List, show and export the reports in the device store.",
                          no_args_is_help=True)

StateOption = Annotated[str | None, typer.Option(
    "--state", help=f"Only reports in this state ({', '.join(REPORT_STATES)}).",
    show_default=False)]


def _kst(report: Report, field: str) -> str:
    value = getattr(report, field)
    return value.astimezone(KST).strftime("%m-%d %H:%M:%S") if value else "-"


@reports_app.command("list")
def list_reports(state: StateOption = None,
                 limit: Annotated[int, typer.Option(help="At most this many, newest first.",
                                                    min=1)] = 100,
                 config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """Reports newest first: id, state, plate, zone, first seen and confirmed (KST)."""
    cfg = get_config(config)
    with cli_errors(), Store.open(cfg.store) as store:
        reports = store.list_reports(state, limit)
    if json_out:
        typer.echo(json.dumps([r.to_dict() for r in reports], ensure_ascii=False, indent=2))
        return
    if not reports:
        typer.echo(f"no reports{f' in state {state}' if state else ''} in {cfg.store.path}")
        return
    typer.echo(f"{'report':<10} {'state':<10} {'plate':<12} {'zone':<10} "
               f"{'first seen':<15} {'confirmed':<15} dup")
    for r in reports:
        typer.echo(f"{r.report_id[:8]:<10} {r.state:<10} {r.plate:<12} {r.zone:<10} "
                   f"{_kst(r, 'first_seen_at'):<15} {_kst(r, 'confirmed_at'):<15} "
                   f"{r.duplicate_count}")


@reports_app.command("show")
def show(report_id: Annotated[str, typer.Argument(help="Report id (or a unique prefix).")],
         config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """One report with its sightings and its upload state."""
    cfg = get_config(config)
    with cli_errors(), Store.open(cfg.store) as store:
        report = store.report(report_id)
        sightings = store.report_sightings(report.report_id)
        outbox = store.outbox_item(report.report_id)
    doc = report.to_dict()
    doc["sightings"] = [{
        "id": s.id, "role": s.role, "captured_at": s.captured_at.isoformat(),
        "plate": s.plate, "plate_raw": s.plate_raw,
        "plate_confidence": round(s.plate_confidence, 3), "photo_sha256": s.photo_sha256,
        "photo": str(cfg.store.photo_dir / s.photo_sha256[:2] / s.photo_sha256[2:4]
                     / f"{s.photo_sha256}.jpg"),
        "lat": s.location.lat if s.location else None,
        "lon": s.location.lon if s.location else None, "note": s.note,
    } for s in sightings]
    doc["plate_evidence"] = plate_evidence_lines(report, sightings)
    doc["outbox"] = None if outbox is None else {
        "state": outbox.state, "attempts": outbox.attempts,
        "next_attempt_at": outbox.next_attempt_at.isoformat(), "last_error": outbox.last_error}
    if json_out:
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
        return
    for key, value in doc.items():
        if key in ("sightings", "outbox", "plate_evidence"):
            continue
        typer.echo(f"{key:<24} {value if value is not None else '-'}")
    typer.echo(f"{'outbox':<24} " + ("-" if outbox is None else
                                     f"{outbox.state} after {outbox.attempts} attempt(s)"
                                     + (f", last error: {outbox.last_error}"
                                        if outbox.last_error else "")))
    typer.echo("sightings:")
    for s in doc["sightings"]:
        typer.echo(f"  #{s['id']:<5} {s['role']:<11} {s['captured_at']}  {s['plate']} "
                   f"({s['plate_confidence']})  {s['photo']}"
                   + (f"  note: {s['note']}" if s["note"] else ""))
    typer.echo("plate evidence:")
    for line in doc["plate_evidence"]:
        typer.echo(f"  {line}")


def _weakest(sighting: Sighting) -> str:
    confs = sighting.char_confidences
    if not confs:
        return "no per-character confidences"
    k = min(range(len(confs)), key=confs.__getitem__)
    return f"weakest character {sighting.plate[k]} at {confs[k]:.2f}"


def plate_evidence_lines(report: Report, sightings: list[Sighting]) -> list[str]:
    """How the report's plate stands: what each photo read and whether the two agree.

    Why spelt out: a technician asked why a report was (or was not) confirmed must see that
    only sure reads were recorded and that both photos read the plate the report names."""
    lines = [f"{s.role or '-':<11} read {s.plate} ({_weakest(s)})" for s in sightings]
    first = next((s for s in sightings if s.role == "first"), None)
    second = next((s for s in sightings if s.role == "confirming"), None)
    if second is None:
        lines.append("one photo so far: a second sure read of the same plate at this spot, "
                     "at least the zone's minimum interval later, with the scene unchanged, "
                     "confirms it")
    elif first is not None and first.plate == second.plate == report.plate:
        lines.append(f"both photos read {report.plate}")
    elif first is not None:
        lines.append(f"the photos read {first.plate} and {second.plate}, one character apart, "
                     f"unsure in one read and sure in the other; the report keeps the sure "
                     f"read {report.plate}")
    lines.append("reads less sure than the evidence rule ([plates] evidence_floor, "
                 "min_plate_px, view check) are never recorded; `gotcha process` shows them "
                 "marked UNSURE")
    return lines


@reports_app.command("export")
def export(report_id: Annotated[str, typer.Argument(help="Report id (or a unique prefix).")],
           out_dir: Annotated[Path, typer.Argument(help="Folder to write into (created).")],
           config: ConfigOption = None) -> None:
    """Write the two photos, the manifest and a contact sheet PNG of a confirmed report."""
    from edge_agent.agent import rules_from_config
    from edge_agent.store.export import export_report

    cfg = get_config(config)
    with cli_errors(), Store.open(cfg.store) as store:
        written = export_report(store, report_id, out_dir, rules_from_config(cfg))
    for path in written:
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.add_typer(reports_app, name="reports")
