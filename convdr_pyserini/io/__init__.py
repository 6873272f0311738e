"""The one I/O layer: strict readers and atomic, input-guarded writers for every file format the package uses.

- `text`: UTF-8 text, JSON, YAML, JSON lines (a BOM, binary data or bad UTF-8 is one clear error);
- `atomic`: atomic files and folders, the output-is-not-an-input guard, per-output locks, stale temporaries;
- `runs`: `Run` (trec, msmarco, openmatch) and its sidecar; `qrels`: `Qrels`;
- `topics`: `Topics`, the topics TSV reader and `Rewrites`;
- `passages`: the one rule for a passage's text.
"""
from .atomic import OutputLock, atomic_directory, atomic_output, prepare_output, write_text
from .passages import Passage
from .qrels import Qrels
from .runs import FORMATS, Run, read_runs, sidecar_path
from .topics import Rewrites, TopicQuery, Topics, load_rewrites

__all__ = [
    "FORMATS", "OutputLock", "Passage", "Qrels", "Rewrites", "Run", "TopicQuery", "Topics", "atomic_directory",
    "atomic_output", "load_rewrites", "prepare_output", "read_runs", "sidecar_path", "write_text",
]
