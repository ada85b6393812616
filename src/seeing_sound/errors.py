"""Exceptions the CLI turns into one clear line (exit code 1).

Library code raises ``ValueError`` for a bad argument (naming the argument and value) and
``SeeingSoundError`` for a failure a user can act on (missing model, inconsistent pool, ...).
Messages name the library's own parameters (``model=PATH``, ``overwrite=True``); the CLI
rewrites those to the command's flags (``--model PATH``, ``--overwrite``) when it prints them.
Bad *items* (one corrupt file in a million) never raise: stages record them with a reason.
"""


class SeeingSoundError(Exception):
    """A failure the user can act on; its message is shown as one line."""


class ModelNotFoundError(SeeingSoundError):
    """A model could not be loaded from the hub cache or a local path."""

    def __init__(self, what: str, name_or_path: str, param: str, cause: BaseException | None = None):
        """``param``: the parameter (config field) that points at another copy, e.g. ``"vae"``."""
        reason = f": {type(cause).__name__}" if cause is not None else ""
        where = param if " " in param or "=" in param else f"{param}=PATH"  # "vlms=[...]" is already whole
        super().__init__(
            f"{what} model '{name_or_path}' could not be loaded (not found locally or offline{reason}); "
            f"download it once with network access or pass a local copy as {where}"
        )
        self.name_or_path = name_or_path
        self.param = param


class StageMismatchError(SeeingSoundError):
    """A rerun found partial output made from other inputs or settings."""
