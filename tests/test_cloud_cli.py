"""`gotcha cloud init-db|ingest|promote` against the local MariaDB and a moto S3 server."""

from __future__ import annotations

import json

import pytest
import typer
from cloud_helpers import BUCKET, make_report, put_manifest, query, upload
from typer.testing import CliRunner

from cloud_sync import db
from edge_agent.cli import cloud


@pytest.fixture()
def app():
    """Only the cloud group, so these tests do not depend on the other command modules."""
    root = typer.Typer()
    cloud.register(root)

    @root.callback()
    def main() -> None:
        """gotcha"""

    return root


@pytest.fixture()
def env(mysql_database, moto_s3, monkeypatch):
    values = {"RDS_HOST": mysql_database["host"], "RDS_PORT": str(mysql_database["port"]),
              "RDS_USERNAME": mysql_database["user"],
              "RDS_PASSWORD": mysql_database["password"],
              "RDS_DATABASE": mysql_database["database"], "S3_BUCKET": BUCKET,
              "S3_ENDPOINT_URL": moto_s3.endpoint_url, "AWS_REGION": "us-east-1"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    moto_s3.client().create_bucket(Bucket=BUCKET)
    return values


def run(app, *args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_init_ingest_promote(app, env, moto_s3, tmp_path, mysql_database):
    s3 = moto_s3.client()
    result = run(app, "cloud", "init-db")
    assert result.exit_code == 0, result.output
    assert "applied" in result.output
    assert run(app, "cloud", "init-db").exit_code == 0  # re-runnable

    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(upload(s3, make_report(plate="부산12가3456"))))
    result = run(app, "cloud", "ingest", str(event_path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["accepted"] == 1

    for i in range(3):  # already in the bucket, never ingested
        upload(s3, make_report(plate=f"12가{3000 + i}"))
    result = run(app, "cloud", "ingest", "--scan", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"records": 4, "accepted": 3, "replayed": 1,
                                              "waiting": 0, "rejected": 0, "raw": 0,
                                              "ignored": 0}

    result = run(app, "cloud", "promote", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["final"] == 4
    conn = db.connect(db.DbSettings(**{k: mysql_database[k] for k in (
        "host", "port", "user", "password", "database")}))
    assert len(query(conn, "SELECT * FROM final")) == 4
    conn.close()


def test_waiting_and_rejected_exit_1(app, env, moto_s3, tmp_path):
    s3 = moto_s3.client()
    assert run(app, "cloud", "init-db").exit_code == 0
    key = put_manifest(s3, make_report())  # no photos
    s3.put_object(Bucket=BUCKET, Key="reports/junk/manifest.json", Body=b"{}")
    result = run(app, "cloud", "ingest", "--scan")
    assert result.exit_code == 1
    assert "waiting=1" in result.output and "rejected=1" in result.output
    assert key


def test_missing_variable_is_one_line_exit_2(app, env, monkeypatch):
    monkeypatch.delenv("RDS_HOST")
    result = CliRunner().invoke(app, ["cloud", "promote"])
    assert result.exit_code == 2
    assert "RDS_HOST" in result.output and "Traceback" not in result.output


def test_unreachable_database_is_one_line_exit_2(app, env):
    result = CliRunner().invoke(app, ["cloud", "promote", "--db-port", "1"])
    assert result.exit_code == 2 and "cannot connect" in result.output


def test_event_file_and_scan_are_exclusive(app, env, tmp_path):
    assert CliRunner().invoke(app, ["cloud", "ingest"]).exit_code == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"nope": 1}')
    assert run(app, "cloud", "init-db").exit_code == 0
    result = CliRunner().invoke(app, ["cloud", "ingest", str(bad)])
    assert result.exit_code == 2 and "no Records" in result.output


def test_unreachable_s3_is_one_line_exit_2(app, env):
    assert run(app, "cloud", "init-db").exit_code == 0
    result = CliRunner().invoke(app, ["cloud", "ingest", "--scan", "--endpoint-url",
                                      "http://127.0.0.1:1"])
    assert result.exit_code == 2 and "S3 error" in result.output
    assert "Traceback" not in result.output


def test_raw_photos_with_the_service_down_are_recorded_exit_1(app, env, tmp_path, monkeypatch):
    from cloud_helpers import event_for, photo_bytes

    s3 = boto_client(env)
    assert run(app, "cloud", "init-db").exit_code == 0
    assert CliRunner().invoke(app, ["cloud", "raw"]).exit_code == 2  # event file or --retry
    monkeypatch.setenv("GOTCHA_SERVICE_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("GOTCHA_SERVICE_ATTEMPTS", "1")
    s3.put_object(Bucket=BUCKET, Key="raw/cam-1/a.jpg", Body=photo_bytes("a"))
    event = tmp_path / "event.json"
    event.write_text(json.dumps(event_for(s3, BUCKET, "raw/cam-1/a.jpg")))
    result = run(app, "cloud", "raw", str(event))
    assert result.exit_code == 1 and "failed=1" in result.output
    result = run(app, "cloud", "raw", "--retry", "--json")
    assert result.exit_code == 1 and json.loads(result.output)["failed"] == 1
    result = run(app, "cloud", "promote", "--json")
    assert json.loads(result.output)["paired"] == 0


def boto_client(env):
    import boto3

    return boto3.client("s3", endpoint_url=env["S3_ENDPOINT_URL"], region_name="us-east-1")
