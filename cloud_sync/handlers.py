"""AWS Lambda entry points: ``cloud_sync.handlers.ingest_handler``, ``raw_handler`` and
``promote_handler``.

Lean on purpose (boto3 from the Lambda runtime; pymysql, gotcha_contracts and this package in
the zip): no numpy, OpenCV, onnxruntime, pydantic or edge_agent is imported here. The database
connection and the S3 client live in module globals so a warm Lambda container reuses them
between calls.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from cloud_sync import db, ingest, pairing, promote
from cloud_sync.config import db_settings_from_env, s3_settings_from_env
from cloud_sync.limits import limits_from_env
from gotcha_contracts.rules import DEFAULT_RULES

log = logging.getLogger(__name__)
logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))

_conn: db.Connection | None = None
_s3: Any = None

# Leave this much of the Lambda's time for the last batch to commit.
PROMOTE_SAFETY_MS = 15_000


def connection() -> db.Connection:
    """The cached connection, reconnected if the server dropped it while the container slept."""
    global _conn
    if _conn is None:
        _conn = db.connect(db_settings_from_env())
    else:
        _conn.ping(reconnect=True)
    return _conn


def s3_client() -> Any:
    global _s3
    if _s3 is None:
        import boto3  # in the Lambda runtime; imported late so promote never pays for it

        settings = s3_settings_from_env()
        _s3 = boto3.client("s3", region_name=settings.region,
                           endpoint_url=settings.endpoint_url)
    return _s3


def ingest_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """S3 ObjectCreated (``*/manifest.json``, ``raw/*.jpg``) -> `temporary`.

    Raises PhotosNotReadyError (Lambda retries the event) while a manifest's photos are
    missing. Limits (times, places, photo size) come from ``GOTCHA_CLOUD_*`` (cloud_sync.limits).
    """
    summary = ingest.handle_event(event, connection(), s3_client())
    log.info("ingest: %s", {k: v for k, v in summary.items() if k != "outcomes"})
    return summary


def raw_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """S3 ObjectCreated on ``raw/`` -> the vision service (GOTCHA_SERVICE_URL, _API_KEY) ->
    sightings in `temporary`. Raises ServiceUnavailableError (Lambda retries the event) after
    recording photos the service could not read."""
    from cloud_sync import raw
    from cloud_sync.service_client import ServiceClient, service_settings_from_env

    client = ServiceClient(service_settings_from_env(os.environ))
    summary = raw.handle_event(event, connection(), s3_client(), client)
    log.info("raw: %s", {k: v for k, v in summary.items() if k != "outcomes"})
    return summary


def promote_handler(event: dict[str, Any] | None = None, context: Any = None) -> dict[str, Any]:
    """Scheduled (EventBridge): pair raw-photo sightings into reports, then promote pending
    rows. Optional event keys: batch_size, max_batches. The limits on the rules a device may
    name come from ``GOTCHA_CLOUD_*``."""
    event = event or {}
    paired = pairing.pair_sightings(connection(), rules=DEFAULT_RULES)
    budget_s = None
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        budget_s = max(0.0, (context.get_remaining_time_in_millis() - PROMOTE_SAFETY_MS) / 1000)
    max_batches = event.get("max_batches")
    result = promote.promote_pending(
        connection(), limits=limits_from_env(), batch_size=int(event.get("batch_size", 500)),
        max_batches=None if max_batches is None else int(max_batches), time_budget_s=budget_s)
    return {**result.as_dict(), "pairing": paired.as_dict()}
