"""Progress bars that show only on a terminal (tqdm's `disable=None`), so logs and redirected output stay clean."""
from __future__ import annotations

import contextlib
import sys


def progress_bar(iterable=None, *, enabled: bool = True, **options):
    """A tqdm bar on stderr when it is a terminal and `enabled`; otherwise a silent pass-through."""
    from tqdm import tqdm

    options.setdefault("dynamic_ncols", True)
    return tqdm(iterable, disable=None if enabled else True, **options)


@contextlib.contextmanager
def library_bars_on_terminal_only():
    """Silence transformers' own progress bars (e.g. "Writing model shards") unless stderr is a terminal."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    if not sys.stderr.isatty():
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
