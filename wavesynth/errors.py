"""The errors that report a user's mistake.

``WavesynthError`` is a bad input, a bad setting, an unknown name, or a missing or damaged file: the
command line prints it as one line (``wavesynth: error: ...``, exit status 2). Any other exception is a
bug and keeps its traceback. ``WavesynthError`` subclasses ``ValueError`` and ``MissingFileError`` also
``FileNotFoundError``, so code that catches those keeps working.
"""

from __future__ import annotations

__all__ = ["MissingFileError", "WavesynthError"]


class WavesynthError(ValueError):
    """A user mistake: bad input, bad setting, unknown name, missing or damaged file."""


class MissingFileError(WavesynthError, FileNotFoundError):
    """A file or folder the user named (or that a step needs) does not exist."""
