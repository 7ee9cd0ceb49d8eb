"""edgehls: an ONNX-to-Verilog compiler for a weight-stationary systolic MAC array."""

from edgehls.errors import EdgeHLSError

__version__ = "0.1.0"
__all__ = ["EdgeHLSError", "__version__"]
