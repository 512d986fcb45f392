"""The errors a user can fix: the ``edgeface`` command prints them as one line and exits with code 2.

They live here, below every stage, so the runtime, the stages and the command line share them without
importing each other. Each also derives from the built-in type its callers already catch.
"""

from __future__ import annotations


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type name when the message is empty): what a one-line report
    shows of an exception raised by a library."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


class BackendUnavailable(UserError, RuntimeError):
    """The backend's library (or hardware) is missing here; the message says how to get it."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that is missing, corrupt or not an edgeface checkpoint."""


class ServingError(UserError):
    """An export request that cannot be honoured (printed as one line, exit code 2)."""


class OutputError(UserError, ValueError):
    """An output that would overwrite the user's own files or inputs, or that could not be written whole."""


class CardError(UserError, ValueError):
    """A model card (from a checkpoint, a manifest, an artifact's metadata) with a missing or out-of-bounds field."""


class ArtifactError(UserError, ValueError):
    """A convert folder's artifact that its manifest does not vouch for: outside the folder, or changed since."""


class DataError(UserError, ValueError):
    """A data set file that cannot be read as its format says (or a bad item under ``--strict``)."""


class PathNotText(UserError, ValueError):
    """A path whose bytes are not valid UTF-8: OpenCV cannot take it (it crashes), so it is refused by name."""


class TrainingDiverged(UserError, RuntimeError):
    """The training loss or the weights became NaN / infinite: training stops and keeps its last finite checkpoint."""
