"""Vision: ONNX sessions, vehicle detection, text detection, scene signatures."""
