"""User-facing errors.

Everything a user can get wrong (files, keys, shapes, config values) raises a subclass of
:class:`UnseenError` with a one-paragraph message naming the file/field/value at fault. The
CLI turns these into exit code 2 without a traceback.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "OutputExistsError", "UnseenError"]


class UnseenError(Exception):
    """Base class of errors caused by user input (never by a bug in unseen)."""


class DataError(UnseenError):
    """A data file is missing, unreadable, or holds values of the wrong shape/type."""


class ConfigError(UnseenError):
    """A configuration key or value is unknown or invalid."""


class OutputExistsError(UnseenError):
    """An output location already holds results and ``force`` was not given."""
