"""One error tree for metamed.

Every error a user can see derives from :class:`MetamedError` and from the builtin
that matches its meaning, so ``except ValueError`` keeps working for callers who do
not know about metamed.  Messages say what was wrong, what was expected, what was
received and how to fix it; :func:`did_you_mean` supplies the "did you mean" part.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "MetamedError",
    "MetamedValueError",
    "MetamedTypeError",
    "DataNotFoundError",
    "ChecksumError",
    "NotFittedError",
    "UnknownNameError",
    "MetamedWarning",
    "OutputPlaceError",
    "ArtifactError",
    "ArtifactNotFoundError",
    "InvalidInputError",
    "ModelStateError",
    "did_you_mean",
    "unknown_name",
]


class MetamedError(Exception):
    """Base class of every error raised by metamed."""


class MetamedValueError(MetamedError, ValueError):
    """A value has the right type but is not acceptable (bad K, NaN feature, ...)."""


class MetamedTypeError(MetamedError, TypeError):
    """A value has the wrong type (a text column where numbers were expected, ...)."""


class DataNotFoundError(MetamedError, FileNotFoundError):
    """A dataset's files are not where they were looked for."""


class ChecksumError(MetamedError, ValueError):
    """A downloaded or local file does not match its published checksum."""


class NotFittedError(MetamedError, RuntimeError):
    """A learner or preprocessor was used before ``meta_fit`` / ``fit``."""


class UnknownNameError(MetamedError, KeyError):
    """A name (dataset, method, column) is not one metamed knows."""

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class MetamedWarning(UserWarning):
    """Something metamed did on the user's behalf and says so (a recoding, a cleaning).

    The command line prints each as one ``note:`` line; in Python they are ordinary
    warnings, so ``warnings.simplefilter("error", MetamedWarning)`` makes them errors.
    """


class OutputPlaceError(MetamedError, OSError):
    """An output folder cannot be used (a file, read-only, holds files, ...)."""


class ArtifactError(MetamedError, ValueError):
    """A saved model folder is damaged, tampered with, or written by an incompatible metamed."""


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    """A model artifact folder (or its manifest) is not where it was looked for."""


class InvalidInputError(MetamedValueError):
    """Patient rows sent to a deployed model break its input schema.

    ``field`` names the column (``None`` for the rows as a whole) and ``row`` the 0-based
    row, so that a service can answer which value of which record was wrong.
    """

    def __init__(self, message: str, field: str | None = None, row: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.row = row


class ModelStateError(MetamedValueError):
    """A model cannot do what was asked in its state: predict before it is adapted to a
    site, adapt a model that already is."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return a ``" Did you mean 'x'?"`` suffix, or an empty string when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> UnknownNameError:
    """Build the standard error for an unknown dataset / method / column name."""
    choices = sorted(choices)
    return UnknownNameError(
        f"Unknown {kind} '{name}'.{did_you_mean(name, choices)} Known {kind}s: {', '.join(choices)}."
    )
