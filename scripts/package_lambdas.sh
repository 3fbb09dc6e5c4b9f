#!/usr/bin/env bash
# Build the two AWS Lambda deployment zips into dist/:
#   dist/gotcha-ingest.zip   handler cloud_sync.handlers.ingest_handler   (S3 ObjectCreated)
#                            and cloud_sync.handlers.raw_handler      (ObjectCreated on raw/)
#   dist/gotcha-promote.zip  handler cloud_sync.handlers.promote_handler  (EventBridge schedule)
# Each holds only the cloud_sync package, the gotcha_contracts it shares with the device,
# pymysql and piexif (all pure Python, so any Lambda architecture; piexif reads raw photos'
# EXIF in raw_handler); never edge_agent.
# boto3 is NOT packaged: the Lambda Python runtime ships it. Runtime: python3.11 or newer.
# Zips are reproducible (fixed timestamps, sorted entries) and must stay under 10 MB.
#
# usage: scripts/package_lambdas.sh [OUT_DIR]     (PYTHON=... to pick the interpreter)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$REPO/dist}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON="$(command -v python3)"
LIMIT=$((10 * 1024 * 1024))

mkdir -p "$OUT"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT

# pymysql from the project's environment (pinned there by pyproject), with its licence.
PYMYSQL_DIR="$("$PYTHON" -c 'import os, pymysql; print(os.path.dirname(pymysql.__file__))')"
cp -r "$PYMYSQL_DIR" "$STAGE/pymysql"
for info in "$(dirname "$PYMYSQL_DIR")"/[Pp]y[Mm]y[Ss][Qq][Ll]-*.dist-info; do
  [ -d "$info" ] && cp -r "$info" "$STAGE/"
done
PIEXIF_DIR="$("$PYTHON" -c 'import os, piexif; print(os.path.dirname(piexif.__file__))')"
cp -r "$PIEXIF_DIR" "$STAGE/piexif"
for info in "$(dirname "$PIEXIF_DIR")"/piexif-*.dist-info; do
  [ -d "$info" ] && cp -r "$info" "$STAGE/"
done
for package in cloud_sync gotcha_contracts; do
  mkdir -p "$STAGE/$package"
  cp "$REPO/$package"/*.py "$STAGE/$package/"
done
find "$STAGE" -name '__pycache__' -type d -prune -exec rm -rf {} +

for name in ingest promote; do
  zip_path="$OUT/gotcha-$name.zip"
  "$PYTHON" - "$STAGE" "$zip_path" <<'PY'
import os, sys, zipfile
stage, target = sys.argv[1], sys.argv[2]
paths = sorted(os.path.relpath(os.path.join(d, f), stage)
               for d, _, files in os.walk(stage) for f in files)
tmp = target + ".tmp"
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
    for rel in paths:
        info = zipfile.ZipInfo(rel.replace(os.sep, "/"), date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(os.path.join(stage, rel), "rb") as fh:
            zf.writestr(info, fh.read())
os.replace(tmp, target)
PY
  size=$(stat -c %s "$zip_path")
  printf '%-28s %9d bytes (%.2f MB)  handler cloud_sync.handlers.%s_handler\n' \
    "$(basename "$zip_path")" "$size" "$(echo "$size" | awk '{print $1/1048576}')" "$name"
  if [ "$size" -ge "$LIMIT" ]; then
    echo "error: $zip_path is $size bytes, over the 10 MB limit" >&2
    exit 1
  fi
done
echo "boto3 is not packaged: the Lambda Python runtime provides it."
