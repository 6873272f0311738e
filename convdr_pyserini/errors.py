"""Errors that the command-line tools report as `error:` lines on stderr with exit code 2."""


class UserError(Exception):
    """Bad input from the user: a missing or malformed file, an unknown id, a bad option value."""


class InvalidInput(UserError):
    """Several problems in the inputs, each reported on its own line (`problems`)."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))
