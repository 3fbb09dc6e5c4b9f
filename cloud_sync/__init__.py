"""The cloud side: Lambda handlers, S3 ingest, the promoter and MySQL access.

Only the Lambda code lives here; what it shares with the device (plate grammar and identity,
rules, manifest) is gotcha_contracts. No numpy/opencv/onnx/pydantic and never edge_agent: it
must fit a small Lambda zip (docs/design.md, section "Cloud").
"""
