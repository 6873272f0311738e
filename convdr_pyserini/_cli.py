"""Shared command-line plumbing: the `main(argv) -> int` wrapper, the argument parser and argument types.

Every command behaves the same way: bad input is one `error:` line per problem on stderr and exit code 2;
Ctrl-C prints `interrupted` and exits 130, SIGTERM exits 143, after the temporaries are removed (the
writers clean up on any exception); `-q`/`-v` set how much the library logs; progress bars show only on a
terminal.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import math
import shlex
import signal
import sys
from typing import Callable, Iterator

from .errors import UserError

MAX_INT = 2**31 - 1  # Java's int: what Lucene and faiss take as a count


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that every writer removes its temporaries."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error reported as one `error:` line that points to `--help`."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {message}"


def configure_logging(verbosity: int) -> None:
    """Log the package's messages to stderr: warnings with -q, info by default, debug with -v."""
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    logger = logging.getLogger("convdr_pyserini")
    for handler in list(logger.handlers):
        if getattr(handler, "_convdr_cli", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(message)s"))
    handler._convdr_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def add_verbosity(parser: argparse.ArgumentParser, top: bool = True) -> None:
    """`-q`/`-v` on a parser and its subcommands (given before or after the subcommand)."""
    default = 0 if top else argparse.SUPPRESS
    group = parser.add_argument_group("output")
    group.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1, default=default,
                       help="only warnings and errors on stderr")
    group.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1, default=default,
                       help="more detail on stderr")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in dict.fromkeys(action.choices.values()):
                add_verbosity(subparser, top=False)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    def raise_terminated(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option's destination (the library's parameter name) -> its long flag, subcommands included."""
    names: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                names.update(flag_names(subparser))
            continue
        flags = [flag for flag in action.option_strings if flag.startswith("--")]
        if flags:
            names.setdefault(action.dest, flags[0])
    return names


def report(error: UserError, flags: dict[str, str] | None = None) -> int:
    """Print a UserError (each problem of an InvalidInput) as `error:` lines, the parameters it names shown as
    their `flags`; returns exit code 2."""
    for problem in error.render(flags or {}):
        print(f"error: {problem}", file=sys.stderr)
    return 2


def cli_main(build_parser: Callable[[], argparse.ArgumentParser]) -> Callable:
    """Turn `run(args) -> int | None` into `main(argv=None) -> int` with the behaviour described above."""

    def decorate(run: Callable) -> Callable:
        @functools.wraps(run)
        def main(argv: list[str] | None = None) -> int:
            parser = build_parser()
            add_verbosity(parser)
            words = sys.argv[1:] if argv is None else list(argv)
            try:
                args = parser.parse_args(words)
            except SystemExit as exit_:
                return int(exit_.code or 0)
            args.command_line = shlex.join(["python", "-m", parser.prog.split()[-1], *words])
            configure_logging(args.verbosity)
            with _terminate_as_interrupt():
                try:
                    return int(run(args) or 0)
                except UserError as error:
                    return report(error, flag_names(parser))
                except KeyboardInterrupt as interrupt:
                    print("interrupted", file=sys.stderr)
                    return 143 if isinstance(interrupt, Terminated) else 130

        return main

    return decorate


def bounded_int(minimum: int, maximum: int = MAX_INT) -> Callable[[str], int]:
    """argparse type: an integer within [minimum, maximum]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{value} is out of range [{minimum}, {maximum}]")
        return value

    return parse


positive_int = bounded_int(1)
non_negative_int = bounded_int(0)


def finite_float(minimum: float = -math.inf, maximum: float = math.inf, *, exclusive_minimum: bool = False,
                 what: str = "a number") -> Callable[[str], float]:
    """argparse type: a finite float within bounds (NaN and infinities are refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        below = value <= minimum if exclusive_minimum else value < minimum
        if not math.isfinite(value) or below or value > maximum:
            bound = f"> {minimum:g}" if exclusive_minimum else f">= {minimum:g}"
            limits = [bound] if math.isfinite(minimum) else []
            limits += [f"<= {maximum:g}"] if math.isfinite(maximum) else []
            raise argparse.ArgumentTypeError(
                f"expected {what}{' ' + ' and '.join(limits) if limits else ''} (finite), got {text!r}")
        return value

    return parse


positive_float = finite_float(0.0, exclusive_minimum=True, what="a positive number")


def add_ray_options(parser: argparse.ArgumentParser, what: str):
    """`--ray [ADDRESS]` and the worker sizes (see `convdr_pyserini._ray`; the destinations are `RayCluster`'s
    parameters); `what` says what runs on Ray. Returns the argument group (for a command's own Ray options)."""
    group = parser.add_argument_group("Ray (pip install 'convdr_pyserini[ray]'; docs/distributed.md)")
    group.add_argument("--ray", dest="address", nargs="?", const="", default=None, metavar="ADDRESS",
                       help=f"run {what} on Ray: without ADDRESS on a local Ray instance, with `auto`, HOST:PORT or "
                            "ray://HOST:PORT on that running cluster")
    group.add_argument("--ray-workers", dest="workers", type=positive_int, default=None, metavar="N",
                       help="Ray workers (default: as many as the cluster's CPUs and GPUs hold)")
    group.add_argument("--ray-cpus-per-worker", dest="cpus_per_worker", type=positive_float, default=None,
                       metavar="C", help="CPUs of each worker, also its torch threads (default 1)")
    group.add_argument("--ray-gpus-per-worker", dest="gpus_per_worker", type=finite_float(0.0, what="a number >= 0"),
                       default=None, metavar="G", help="GPUs of each worker (default: 1 with --device cuda, else 0)")
    return group


def ray_cluster(args: argparse.Namespace):
    """The `RayCluster` of the --ray options, or None without --ray (then the sizes are refused)."""
    from ._ray import RayCluster

    if args.address is None:
        given = [flag for flag, value in (("--ray-workers", args.workers), ("--ray-cpus-per-worker", args.cpus_per_worker),
                                          ("--ray-gpus-per-worker", args.gpus_per_worker)) if value is not None]
        if given:
            raise UserError(f"{given[0]} needs --ray")
        return None
    return RayCluster(address=args.address or None, workers=args.workers,
                      cpus_per_worker=1.0 if args.cpus_per_worker is None else args.cpus_per_worker,
                      gpus_per_worker=args.gpus_per_worker or 0.0)
