"""Vision: ONNX sessions, vehicle detection, plate location, plate reading, scene signatures."""
