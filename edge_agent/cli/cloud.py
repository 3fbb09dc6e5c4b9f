"""`gotcha cloud init-db|ingest|raw|promote`: the cloud side, run locally against a given S3 and DB.

Thin: each command reads settings (RDS_* / S3_* environment variables, overridden by options),
calls one cloud_sync function, and prints what it did. The password only ever comes from
RDS_PASSWORD, never from an option (it would land in shell history).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from edge_agent.cli.common import EXIT_ERROR, EXIT_OK, EXIT_SOME_FAILED, JsonOption, error

cloud_app = typer.Typer(help="Cloud side: create the RDS schema, ingest S3 manifests into "
                        "`temporary`, process raw photos, promote to `final`.",
                        no_args_is_help=True)

DbHost = Annotated[str | None, typer.Option("--db-host", help="Database host (default "
                                            "$RDS_HOST).", show_default=False)]
DbPort = Annotated[int | None, typer.Option("--db-port", help="Database port (default $RDS_PORT "
                                            "or 3306).", show_default=False)]
DbUser = Annotated[str | None, typer.Option("--db-user", help="Database user (default "
                                            "$RDS_USERNAME); the password is read from "
                                            "$RDS_PASSWORD only.", show_default=False)]
DbName = Annotated[str | None, typer.Option("--database", help="Database name (default "
                                            "$RDS_DATABASE).", show_default=False)]
Bucket = Annotated[str | None, typer.Option("--bucket", help="S3 bucket (default $S3_BUCKET).",
                                            show_default=False)]
Endpoint = Annotated[str | None, typer.Option("--endpoint-url", help="S3 endpoint, e.g. a local "
                                              "S3 (default $S3_ENDPOINT_URL).",
                                              show_default=False)]
Region = Annotated[str | None, typer.Option("--region", help="AWS region (default $AWS_REGION "
                                            "or ap-northeast-2).", show_default=False)]


@contextlib.contextmanager
def _cloud_errors() -> Iterator[None]:
    """CloudError, a failed MySQL statement or an S3 failure -> one line, exit code 2."""
    import pymysql
    from botocore.exceptions import BotoCoreError, ClientError

    from cloud_sync.errors import CloudError

    try:
        yield
    except CloudError as exc:
        error(str(exc))
        raise typer.Exit(EXIT_ERROR) from None
    except pymysql.err.MySQLError as exc:
        error(f"database error: {exc.args[-1] if exc.args else exc}")
        raise typer.Exit(EXIT_ERROR) from None
    except (BotoCoreError, ClientError) as exc:
        error(f"S3 error: {exc}; check --endpoint-url/--bucket and AWS credentials")
        raise typer.Exit(EXIT_ERROR) from None


def _env(**overrides: Any) -> dict[str, str]:
    env = dict(os.environ)
    env.update({k: str(v) for k, v in overrides.items() if v is not None})
    return env


def _db(host: str | None, port: int | None, user: str | None, database: str | None):
    from cloud_sync.config import db_settings_from_env

    return db_settings_from_env(_env(RDS_HOST=host, RDS_PORT=port, RDS_USERNAME=user,
                                     RDS_DATABASE=database))


def _s3(bucket: str | None, endpoint: str | None, region: str | None, need_bucket: bool):
    import boto3

    from cloud_sync.config import s3_settings_from_env

    settings = s3_settings_from_env(_env(S3_BUCKET=bucket, S3_ENDPOINT_URL=endpoint,
                                         AWS_REGION=region), need_bucket=need_bucket)
    return settings, boto3.client("s3", region_name=settings.region,
                                  endpoint_url=settings.endpoint_url)


def _read_event(event_file: Path) -> Any:
    """The JSON of an event file; exit 2 with one line when it cannot be read."""
    try:
        return json.loads(event_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        error(f"cannot read the event file {event_file}: {exc}")
        raise typer.Exit(EXIT_ERROR) from None


def _print(result: dict[str, Any], json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    else:
        typer.echo("  ".join(f"{k}={v}" for k, v in result.items()))


@cloud_app.command("init-db")
def init_db(
    db_host: DbHost = None, db_port: DbPort = None, db_user: DbUser = None,
    database: DbName = None,
    sql_dir: Annotated[Path | None, typer.Option("--sql-dir", help="Folder with schema.sql, "
                                                 "init_data.sql, views.sql (default: the "
                                                 "repository's sql/).", show_default=False)] = None,
    create_database: Annotated[bool, typer.Option("--create-database", help="CREATE DATABASE "
                                                  "IF NOT EXISTS first.")] = False,
) -> None:
    """Create or update the tables, zones and dashboard views; safe to run again."""
    from cloud_sync import db

    with _cloud_errors():
        settings = _db(db_host, db_port, db_user, database)
        count = db.init_db(settings, sql_dir=sql_dir or db.SQL_DIR,
                           create_database=create_database)
    typer.echo(f"applied {count} statements to {settings.database} on "
               f"{settings.host}:{settings.port}")


@cloud_app.command("ingest")
def ingest(
    event_file: Annotated[Path | None, typer.Argument(help="S3 event JSON file (as Lambda "
                                                      "receives it); omit with --scan.",
                                                      show_default=False)] = None,
    scan: Annotated[bool, typer.Option("--scan", help="Instead of an event file, list the "
                                       "bucket under --prefix and ingest every manifest (and "
                                       "raw photo) found.")] = False,
    prefix: Annotated[str, typer.Option("--prefix", help="Key prefix for --scan (raw/ for raw "
                                        "photos).")] = "reports/",
    bucket: Bucket = None, endpoint_url: Endpoint = None, region: Region = None,
    db_host: DbHost = None, db_port: DbPort = None, db_user: DbUser = None,
    database: DbName = None, json_out: JsonOption = False,
) -> None:
    """Run the ingest handler locally: S3 manifests -> `temporary` (idempotent)."""
    from cloud_sync import db
    from cloud_sync import ingest as ingest_mod
    from cloud_sync.events import parse_s3_event

    if (event_file is None) == (not scan):
        error("give either an S3 event JSON file or --scan")
        raise typer.Exit(EXIT_ERROR)
    with _cloud_errors():
        s3_settings, s3 = _s3(bucket, endpoint_url, region, need_bucket=scan)
        conn = db.connect(_db(db_host, db_port, db_user, database))
        try:
            if scan:
                result = ingest_mod.ingest_bucket(s3, conn, s3_settings.bucket or "", prefix)
            else:
                event = _read_event(event_file)
                parse_s3_event(event)  # a file that is not an S3 event: say so, exit 2
                result = ingest_mod.handle_event(event, conn, s3, raise_on_waiting=False)
                if not json_out:
                    result = {k: v for k, v in result.items() if k != "outcomes"}
        finally:
            conn.close()
    _print(result, json_out)
    if result.get("rejected") or result.get("waiting"):
        raise typer.Exit(EXIT_SOME_FAILED)
    raise typer.Exit(EXIT_OK)


@cloud_app.command("promote")
def promote(
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Rows claimed per "
                                            "transaction.")] = 200,
    max_batches: Annotated[int | None, typer.Option("--max-batches", min=1, help="Stop after "
                                                    "this many batches (default: until none "
                                                    "is pending).", show_default=False)] = None,
    db_host: DbHost = None, db_port: DbPort = None, db_user: DbUser = None,
    database: DbName = None, json_out: JsonOption = False,
) -> None:
    """Run the promote handler locally: raw-photo sightings paired into reports, then pending
    `temporary` rows -> `final`/duplicate/rejected."""
    from cloud_sync import db, pairing
    from cloud_sync import promote as promote_mod

    with _cloud_errors():
        conn = db.connect(_db(db_host, db_port, db_user, database))
        try:
            paired = pairing.pair_sightings(conn)
            result = promote_mod.promote_pending(conn, batch_size=batch_size,
                                                 max_batches=max_batches)
        finally:
            conn.close()
    _print({**result.as_dict(), "paired": paired.paired}, json_out)


@cloud_app.command("raw")
def raw_photos(
    event_file: Annotated[Path | None, typer.Argument(help="S3 event JSON file for raw/ photos "
                                                      "(as Lambda receives it); omit with "
                                                      "--retry.", show_default=False)] = None,
    retry: Annotated[bool, typer.Option("--retry", help="Instead of an event file, process "
                                        "again the raw photos left raw or failed.")] = False,
    bucket: Bucket = None, endpoint_url: Endpoint = None, region: Region = None,
    db_host: DbHost = None, db_port: DbPort = None, db_user: DbUser = None,
    database: DbName = None, json_out: JsonOption = False,
) -> None:
    """Run the raw-photo handler locally: raw/ photos -> the vision service
    ($GOTCHA_SERVICE_URL, $GOTCHA_SERVICE_API_KEY) -> sightings in `temporary`."""
    from cloud_sync import db, raw
    from cloud_sync.events import parse_s3_event
    from cloud_sync.service_client import ServiceClient, service_settings_from_env

    if (event_file is None) == (not retry):
        error("give either an S3 event JSON file or --retry")
        raise typer.Exit(EXIT_ERROR)
    with _cloud_errors():
        client = ServiceClient(service_settings_from_env(os.environ))
        _, s3 = _s3(bucket, endpoint_url, region, need_bucket=False)
        conn = db.connect(_db(db_host, db_port, db_user, database))
        try:
            if retry:
                result = raw.retry_failed(conn, s3, client)
            else:
                event = _read_event(event_file)
                parse_s3_event(event)  # a file that is not an S3 event: say so, exit 2
                result = raw.handle_event(event, conn, s3, client, raise_on_failure=False)
        finally:
            conn.close()
    if not json_out:
        result = {k: v for k, v in result.items() if k != "outcomes"}
    _print(result, json_out)
    if result.get("failed") or result.get("refused") or result.get("rejected"):
        raise typer.Exit(EXIT_SOME_FAILED)


def register(app: typer.Typer) -> None:
    app.add_typer(cloud_app, name="cloud")
