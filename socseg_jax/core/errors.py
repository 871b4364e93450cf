"""The project's error for bad input: launch.py reports it in one line, without a traceback."""

import difflib
from collections.abc import Iterable


class UserError(ValueError):
    """Bad input or configuration a user can fix: a missing file, a wrong key, a corrupt image.

    Everything else (a bug) keeps its traceback. Subclasses ValueError so that code catching
    ValueError around input handling keeps working.
    """


class MissingInputError(UserError, FileNotFoundError):
    """A file or folder the user named (config key, manifest entry) does not exist."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean X or Y?"`` with the nearest of ``choices`` (all of them when none is
    near), so a misspelt job, preset or key names the valid ones in the same line."""
    choices = sorted(choices)
    near = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    if near:
        return f"; did you mean {' or '.join(near)}?"
    return f"; choose one of {', '.join(choices)}"
