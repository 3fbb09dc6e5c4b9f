"""scripts/package_lambdas.sh builds two small zips that run on their own."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from cloud_helpers import BUCKET, fresh_db, make_report, query, upload

REPO = Path(__file__).resolve().parent.parent
LIMIT = 10 * 1024 * 1024


def _run_from(unpacked: Path, code: str, env: dict[str, str], *, site: bool) -> str:
    """Run ``code`` with the unpacked zip first on sys.path; without site-packages if not site."""
    prelude = f"import sys; sys.path.insert(0, {str(unpacked)!r}); "
    args = [sys.executable, *([] if site else ["-S"]), "-c", prelude + code]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, cwd="/")
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_zips_are_small_and_self_contained(tmp_path, mysql_database, moto_s3):
    # PYTHON: pymysql comes from the environment running the tests (a checkout may have no .venv)
    out = subprocess.run(["bash", str(REPO / "scripts/package_lambdas.sh"), str(tmp_path)],
                         capture_output=True, text=True, timeout=300, check=True,
                         env={**os.environ, "PYTHON": sys.executable})
    sizes = {m[0]: int(m[1]) for m in re.findall(r"(gotcha-\w+\.zip)\s+(\d+) bytes", out.stdout)}
    assert set(sizes) == {"gotcha-ingest.zip", "gotcha-promote.zip"}
    for name, size in sizes.items():
        path = tmp_path / name
        assert path.stat().st_size == size < LIMIT
        names = zipfile.ZipFile(path).namelist()
        assert "cloud_sync/handlers.py" in names and "pymysql/__init__.py" in names
        assert "gotcha_contracts/manifest.py" in names
        assert "piexif/__init__.py" in names  # raw_handler reads raw photos' EXIF
        # never edge_agent: the Lambda code shares only gotcha_contracts with the device
        assert not [n for n in names if n.split("/")[0] not in (
            "cloud_sync", "gotcha_contracts", "pymysql", "piexif")
            and not n.split("/")[0].lower().startswith(("pymysql-", "piexif-"))]

    conn = fresh_db(mysql_database)
    s3 = moto_s3.client()
    s3.create_bucket(Bucket=BUCKET)
    event = upload(s3, make_report())
    env = {"PATH": os.environ["PATH"], "RDS_HOST": mysql_database["host"],
           "RDS_PORT": str(mysql_database["port"]), "RDS_USERNAME": mysql_database["user"],
           "RDS_PASSWORD": mysql_database["password"],
           "RDS_DATABASE": mysql_database["database"], "S3_ENDPOINT_URL": moto_s3.endpoint_url,
           "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test"}

    ingest_dir = tmp_path / "ingest"
    zipfile.ZipFile(tmp_path / "gotcha-ingest.zip").extractall(ingest_dir)
    # boto3 comes from the Lambda runtime: here, the venv's site-packages stand in for it.
    code = ("import json, cloud_sync.handlers as h, gotcha_contracts as c, pymysql; "
            f"assert h.__file__.startswith({str(ingest_dir)!r}), h.__file__; "
            f"assert c.__file__.startswith({str(ingest_dir)!r}), c.__file__; "
            f"assert pymysql.__file__.startswith({str(ingest_dir)!r}), pymysql.__file__; "
            f"print(json.dumps(h.ingest_handler(json.loads({json.dumps(json.dumps(event))}), "
            "None)['accepted']))")
    assert _run_from(ingest_dir, code, env, site=True).strip() == "1"

    promote_dir = tmp_path / "promote"
    zipfile.ZipFile(tmp_path / "gotcha-promote.zip").extractall(promote_dir)
    # promote needs nothing outside the zip and the standard library (no site-packages at all)
    code = ("import json, cloud_sync.handlers as h; "
            "print(json.dumps(h.promote_handler({}, None)))")
    result = json.loads(_run_from(promote_dir, code, env, site=False))
    assert result["final"] == 1
    assert len(query(conn, "SELECT * FROM final")) == 1
    conn.close()
