"""Exceptions the CLI turns into one clear line (exit code 1).

Library code raises ``ValueError`` for a bad argument (naming the argument and value) and
``SeeingSoundError`` for a failure a user can act on (missing model, inconsistent pool, ...).
Bad *items* (one corrupt file in a million) never raise: stages record them with a reason.
"""


class SeeingSoundError(Exception):
    """A failure the user can act on; its message is shown as one line."""


class ModelNotFoundError(SeeingSoundError):
    """A model could not be loaded from the hub cache or a local path."""

    def __init__(self, what: str, name_or_path: str, flag: str, cause: BaseException | None = None):
        reason = f": {type(cause).__name__}" if cause is not None else ""
        super().__init__(
            f"{what} model '{name_or_path}' could not be loaded (not found locally or offline{reason}); "
            f"download it once with network access or pass a local copy with {flag} PATH"
        )
        self.name_or_path = name_or_path
        self.flag = flag


class StageMismatchError(SeeingSoundError):
    """A rerun found partial output made from other inputs or settings."""
