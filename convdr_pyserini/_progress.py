"""Progress bars that show only on a terminal (tqdm's `disable=None`), so logs and redirected output stay clean."""
from __future__ import annotations


def progress_bar(iterable=None, *, enabled: bool = True, **options):
    """A tqdm bar on stderr when it is a terminal and `enabled`; otherwise a silent pass-through."""
    from tqdm import tqdm

    options.setdefault("dynamic_ncols", True)
    return tqdm(iterable, disable=None if enabled else True, **options)
