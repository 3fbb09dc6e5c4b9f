"""A fuzzing pass over the checked-in OpenAPI document against the real service: no 5xx, every
answer of the content type and status the document declares (schemathesis + hypothesis).

Generated cases include valid and invalid query parameters, JSON bodies with hostile numbers
and strings, random bytes as photos and multipart forms; each is sent over HTTP with a valid
key (the key itself is tested in test_serve.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    status_code_conformance,
)
from serve_helpers import KEY, service_config

from edge_agent.service.server import ServiceServer, create_server

REPO = Path(__file__).resolve().parent.parent
schema = schemathesis.openapi.from_dict(
    json.loads((REPO / "docs" / "openapi.json").read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def server(models_dir: Path) -> Iterator[ServiceServer]:
    srv = create_server(service_config(models_dir, workers=1, queue=16, max_photo_bytes=500_000),
                        "127.0.0.1", 0).start()
    try:
        yield srv
    finally:
        srv.stop()


@schema.parametrize()
@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_no_server_error_anywhere(case, server: ServiceServer) -> None:
    response = case.call(base_url=server.url, headers={"X-API-Key": KEY}, timeout=120)
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                             content_type_conformance])
    if response.status_code >= 400:
        assert response.json()["status"] == response.status_code
