"""The project's error for bad input: launch.py reports it in one line, without a traceback."""


class UserError(ValueError):
    """Bad input or configuration a user can fix: a missing file, a wrong key, a corrupt image.

    Everything else (a bug) keeps its traceback. Subclasses ValueError so that code catching
    ValueError around input handling keeps working.
    """


class MissingInputError(UserError, FileNotFoundError):
    """A file or folder the user named (config key, manifest entry) does not exist."""
