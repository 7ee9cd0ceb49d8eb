"""Errors that edgehls reports to its user.

Every error a user can cause is an ``EdgeHLSError``: the CLI prints its message on one line and
exits with status 2, never a traceback. Messages name the node, the op and the fix.
"""

from __future__ import annotations


class EdgeHLSError(Exception):
    """Base class of every error caused by the user's input or options."""


class ModelError(EdgeHLSError):
    """The model file is missing, malformed, or fails onnx.checker / shape inference."""


class UnsupportedError(EdgeHLSError):
    """The model uses an op, attribute or shape edgehls does not implement."""


class OptionError(EdgeHLSError):
    """A command-line option is out of range or inconsistent."""


class DataError(EdgeHLSError):
    """A calibration or evaluation file does not match the model."""


class OutputError(EdgeHLSError):
    """The output directory exists and is not empty, and --force was not given."""


class PassError(EdgeHLSError):
    """A pass found the IR in a state it does not accept (an internal ordering bug)."""
