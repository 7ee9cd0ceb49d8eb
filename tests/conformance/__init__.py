"""ONNX backend node-test conformance (issue 4): the wheel reader and the per-test check."""
