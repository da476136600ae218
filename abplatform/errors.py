"""User-facing errors and the CLI's exit codes.

A user mistake (bad config, bad data, missing file) raises :class:`InputError` with one line
that names the file, the line or field, and what was expected; the CLI prints it without a
traceback and exits with :data:`EXIT_INVALID`.
"""

from __future__ import annotations

EXIT_PROMOTE = 0
EXIT_HOLD = 1
EXIT_INVALID = 2
EXIT_CANNOT_EVALUATE = 3


class InputError(Exception):
    """A problem with the user's input; ``str(err)`` is the whole message (one line per problem)."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = problems or [message]
        super().__init__(message)


class EvaluationError(Exception):
    """Inputs are valid but the experiment cannot be evaluated (e.g. data missing for an arm)."""

    exit_code = EXIT_CANNOT_EVALUATE
