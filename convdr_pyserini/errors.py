"""Errors that the command-line tools report as one line on stderr with exit code 2."""


class UserError(Exception):
    """Bad input from the user: a missing or malformed file, an unknown id, a bad option value."""
