"""Errors of the user's inputs (data, config, checkpoints, downloads), as opposed to bugs.

A rule script that stops on a `UserError` prints its message, which names the file and the fix,
as the first thing on the terminal (`runtime.start_rule`); the traceback goes to the rule's log.
"""


class UserError(Exception):
    """A problem with what the user gave; the message names the file and says what to do."""


class CheckpointError(UserError, ValueError):
    """A checkpoint file that is missing, damaged, or not of the architecture its settings build."""


class DatasetError(UserError, ValueError):
    """A problem with the user's data; the message names the file and says what to do.

    ``problems`` holds the individual problem lines (one per file and fault); for
    an error raised with a single message it is ``[message]``.
    """

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = list(problems) if problems is not None else [message]
