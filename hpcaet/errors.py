"""Exception and warning classes of hpcaet.

Every error the package raises on purpose derives from :class:`HpcaetError`, so a
caller can catch them all at once; messages name the value received, what was
expected and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "HpcaetError",
    "ConfigError",
    "SchemaError",
    "InputError",
    "ConvergenceError",
    "HpcaetWarning",
    "DatasetNotFoundError",
]


class HpcaetError(Exception):
    """Base class of every error raised by hpcaet."""


class ConfigError(HpcaetError, ValueError):
    """A configuration file or value is invalid (unknown key, wrong type, bad range)."""


class SchemaError(HpcaetError, ValueError):
    """A Dataset or file does not follow the schema of its kind."""


class InputError(HpcaetError, ValueError):
    """An argument to a numerical function has the wrong shape, range or content."""


class ConvergenceError(HpcaetError, RuntimeError):
    """An iterative method failed to reach its tolerance."""


class HpcaetWarning(UserWarning):
    """Base class of warnings issued by hpcaet (turned into errors in the test suite)."""


class DatasetNotFoundError(SchemaError, FileNotFoundError):
    """A Dataset file, or the folder it should be written to, does not exist."""
