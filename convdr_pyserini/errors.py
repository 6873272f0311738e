"""Errors that the command-line tools report as `error:` lines on stderr with exit code 2.

A message may name the parameters it is about as `{name}` fields, listed after the message:
`UserError("{k1} -1 is out of range", "k1")` reads `k1 -1 is out of range` from Python (the API's parameter), and a
command line reports it with its flag (`--k1 -1 is out of range`) through `render`.
"""
from __future__ import annotations

from typing import Mapping


def _named(text: str, parameters: tuple[str, ...], names: Mapping[str, str]) -> str:
    for parameter in parameters:
        text = text.replace("{" + parameter + "}", names.get(parameter, parameter))
    return text


class UserError(Exception):
    """Bad input from the user: a missing or malformed file, an unknown id, a bad option or parameter value."""

    def __init__(self, message: str = "", *parameters: str):
        self.template, self.parameters = message, parameters
        super().__init__(_named(message, parameters, {}))

    def render(self, names: Mapping[str, str]) -> list[str]:
        """The message's lines, each parameter named as `names` says (a command line: its flags)."""
        return [_named(self.template, self.parameters, names)]


class InvalidInput(UserError):
    """Several problems in the inputs, each reported on its own line (`problems`)."""

    def __init__(self, problems: list[str], *parameters: str):
        self.templates = list(problems)
        self.problems = [_named(problem, parameters, {}) for problem in problems]
        super().__init__("\n".join(self.templates), *parameters)

    def render(self, names: Mapping[str, str]) -> list[str]:
        return [_named(problem, self.parameters, names) for problem in self.templates]
