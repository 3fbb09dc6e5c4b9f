"""The OpenAPI document of the service, and the request bodies FastAPI cannot infer.

Both photo endpoints read their body themselves (a photo's bytes, JSON or multipart under one
path), so their request bodies are declared here; the JSON schemas come from the pydantic
models in :mod:`edge_agent.service.models`, so document and validation cannot drift apart.
``gotcha serve --write-openapi docs/openapi.json`` writes the document; a test keeps the
checked-in copy equal to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from edge_agent.service.models import CompareJson, ProcessReference

REF = "#/components/schemas/{model}"
BINARY = {"schema": {"type": "string", "format": "binary"}}


def _ref(model: type) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def process_body() -> dict[str, Any]:
    return {"requestBody": {"required": True, "description": "The photo's bytes, or an S3 "
                            "reference as JSON.", "content": {
                                "image/jpeg": BINARY, "image/png": BINARY,
                                "image/heic": BINARY, "application/octet-stream": BINARY,
                                "application/json": {"schema": _ref(ProcessReference)}}}}


def compare_body() -> dict[str, Any]:
    box = {"type": "string", "description": "JSON [x1, y1, x2, y2] in upright pixels"}
    form = {"type": "object", "required": ["image_a", "image_b"], "properties": {
        "image_a": {"type": "string", "format": "binary"},
        "image_b": {"type": "string", "format": "binary"},
        "box_a": box, "box_b": box}}
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": _ref(CompareJson)},
        "multipart/form-data": {"schema": form}}}}


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with the hand-declared bodies' schemas in components."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (ProcessReference, CompareJson):
        schema = model.model_json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    doc["components"]["schemas"] = dict(sorted(schemas.items()))
    app.openapi_schema = doc
    return doc


def render(doc: dict[str, Any]) -> str:
    """Stable text for the checked-in copy (sorted keys, one trailing newline)."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(app: FastAPI, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(document(app)), encoding="utf-8")
