"""What the device and the cloud share, written once: plate grammar and identity, rules, manifest.

Pure standard-library Python (docs/design.md, section "Layout"): the device imports it without
pymysql, and the Lambda zip carries it without numpy, OpenCV, onnxruntime or pydantic. Nothing
here imports edge_agent or cloud_sync; tests/test_architecture_imports.py keeps it that way.
"""
