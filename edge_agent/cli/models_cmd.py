"""`gotcha models list|verify|fetch`: what models.toml describes, whether it is here and sound,
and a verified download from the pinned source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

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
from edge_agent.errors import GotchaError
from edge_agent.inference.catalog import get_spec, load_catalog
from edge_agent.inference.fetch import fetch_model
from edge_agent.inference.inventory import (
    VerifyResult,
    configured_ids,
    model_status,
    verify_model,
)
from edge_agent.inference.optional import WITHOUT, what_still_works

models_app = typer.Typer(help="List, verify and download the models named in models.toml.",
                         no_args_is_help=True)


def _size(size: int | None) -> str:
    return "-" if size is None else f"{size / 1e6:.1f} MB"


@models_app.command("list")
def list_models(config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """Every models.toml entry: where its file was found, size, sha256 check, licence, source."""
    cfg = get_config(config)
    with cli_errors():
        catalog = load_catalog(cfg.models.catalog)
        rows = [model_status(cfg, spec) for spec in catalog.values()]
    if json_out:
        typer.echo(json.dumps([r.to_dict() for r in rows], ensure_ascii=False, indent=2))
        return
    header = ("id", "kind", "file", "found", "size", "sha256", "licence", "source")
    table = [header] + [(
        ("*" if r.in_use else " ") + r.id, r.kind, r.file, r.found_in, _size(r.size),
        r.sha256 or "-", r.license or "-", (r.source or "-")[:60],
    ) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[-1]]).rstrip())
    typer.echo(f"\n* = used by the configuration; models.dir = {cfg.models.dir}")


@models_app.command("verify")
def verify(
    ids: Annotated[list[str] | None, typer.Argument(
        help="Model ids to check (default: the ones the configuration uses).",
        show_default=False)] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Check every models.toml entry.")]
    = False,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Check sha256, load each model and check its input shape; exit 1 if any is bad."""
    cfg = get_config(config)
    with cli_errors():
        catalog = load_catalog(cfg.models.catalog)
    if ids:
        wanted: dict[str, str | None] = dict.fromkeys(ids)
    elif all_models:
        wanted = dict.fromkeys(catalog)
    else:
        wanted = dict(configured_ids(cfg))
    results = []
    for model_id, kind in wanted.items():
        try:
            spec = get_spec(catalog, model_id, kind)
        except GotchaError as exc:
            results.append(VerifyResult(model_id, False, str(exc)))
            continue
        results.append(verify_model(cfg, spec))
    if json_out:
        typer.echo(json.dumps([r.to_dict() for r in results], ensure_ascii=False, indent=2))
    else:
        for result in results:
            typer.echo(f"{'ok ' if result.ok else 'BAD'} {result.id}: {result.message}")
    if not all(r.ok for r in results):
        raise typer.Exit(EXIT_SOME_FAILED)


def _fetch_ids(cfg: GotchaConfig, ids: list[str] | None, configured: bool) -> dict[str, str]:
    """model id -> the configuration's role for it ("" when not configured): the ids named,
    and with ``configured`` every configured model that has a pinned url."""
    used = configured_ids(cfg)
    chosen = {model_id: used.get(model_id, "") for model_id in ids or []}
    if configured:
        catalog = load_catalog(cfg.models.catalog)
        pinned = {i: kind for i, kind in used.items() if i in catalog and catalog[i].url}
        chosen = {**pinned, **chosen}
    return chosen


def _failed_line(cfg: GotchaConfig, model_id: str, role: str, exc: GotchaError) -> str:
    """One line for a model that did not come: what is missing, what still works, the retry."""
    if role not in WITHOUT:
        return str(exc)
    return (f"{model_id} not downloaded ({exc}); until then {what_still_works(role, cfg)}; "
            f"retry: gotcha models fetch {model_id}")


@models_app.command("fetch")
def fetch(
    ids: Annotated[list[str] | None, typer.Argument(help="Model ids to download.",
                                                    show_default=False)] = None,
    configured: Annotated[bool, typer.Option(
        "--configured", help="Also every model the configuration uses that has a pinned url "
        "(what scripts/setup.sh runs).")] = False,
    dest: Annotated[Path | None, typer.Option(
        "--dest", help="Folder to put the files in (default: models.dir).", show_default=False)]
    = None,
    url: Annotated[str | None, typer.Option(
        "--url", help="Download from this URL instead of the pinned one (a mirror); the sha256 "
        "in models.toml is still checked. Only with a single model id.", show_default=False)]
    = None,
    timeout: Annotated[float, typer.Option("--timeout", min=1.0,
                                           help="Seconds to wait for the server.")] = 30.0,
    config: ConfigOption = None,
) -> None:
    """Download models from their pinned source: atomic, resumable, verified by sha256.
    A model that cannot come is one line: what is missing, what works without it, the retry."""
    cfg = get_config(config)
    with cli_errors():
        catalog = load_catalog(cfg.models.catalog)
        roles = _fetch_ids(cfg, ids, configured)
        specs = [get_spec(catalog, model_id) for model_id in roles]
    if not specs:
        error("name the model ids to download, or pass --configured")
        raise typer.Exit(EXIT_SOME_FAILED)
    if url and len(specs) != 1:
        error("--url names one file; pass a single model id with it")
        raise typer.Exit(EXIT_SOME_FAILED)
    folder = dest or cfg.models.dir
    failed = 0
    for spec in specs:
        try:
            result = fetch_model(spec, folder, url=url, timeout=timeout)
        except GotchaError as exc:
            error(_failed_line(cfg, spec.id, roles[spec.id], exc))
            failed += 1
            continue
        if result.already_present:
            typer.echo(f"{spec.id}: {result.path} already present, sha256 ok")
        else:
            resumed = f", resumed after {_size(result.resumed_from)}" if result.resumed_from else ""
            typer.echo(f"{spec.id}: {result.path} downloaded ({_size(result.downloaded_bytes)}"
                       f"{resumed}), sha256 ok")
    raise typer.Exit(EXIT_SOME_FAILED if failed else EXIT_OK)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
