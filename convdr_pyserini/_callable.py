"""Let `convdr_pyserini.evaluate(...)`, `.train(...)` and `.reproduce(...)` be called although each is also the
name of a subpackage (its `python -m` command): the subpackage module itself forwards a call to its function."""
from __future__ import annotations

import sys
import types


def make_module_callable(module_name: str, function_name: str) -> None:
    """Calling the module `module_name` calls its attribute `function_name`."""

    class CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return getattr(self, function_name)(*args, **kwargs)

    sys.modules[module_name].__class__ = CallableModule
