"""Lean cloud code: Lambda handlers, manifest validation, MySQL access.

Also home of the pure-Python contracts the device shares (plate grammar, rules, manifest), so
they are written once. No numpy/opencv/onnx in here: it must fit a small Lambda zip.
"""
