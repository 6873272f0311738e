"""Topics and rewrites: the `Topics` type, the Pyserini topics TSV and rewrites TSV readers.

- `Topics`: the queries of a topic set and where they came from; `convdr_pyserini.resolve.load_topics` makes them
  from a dataset id, a topics TSV or a CAsT JSON file.
- `tsv_topic_queries(path)`: a Pyserini topics TSV (`qid<TAB>text`). Query ids of the CAsT form `<topic>_<turn>`
  give turn numbers and each turn's history: the earlier texts of its topic, in file order.
- `load_rewrites(path)`: query id -> rewritten text, from `qid<TAB>text` lines or the header-ed TSV of
  published rewrite collections (`conversation_id  turn_id  id  query  ...`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, NamedTuple, Optional

from ..errors import UserError
from .atomic import PathLike
from .text import COMPRESSED_SUFFIXES, plain_name, read_lines, visible

CAST_QUERY_ID = re.compile(r"^(\d+)_(\d+)$")
TOPIC_FILE_SUFFIXES = tuple(base + compressed for base in (".tsv", ".txt", ".json", ".jsonl", ".queries")
                            for compressed in ("", *COMPRESSED_SUFFIXES))
REWRITE_HEADER = ("id", "query")


class TopicQuery(NamedTuple):
    """A query read from a topics TSV: its text is the raw utterance; CAsT-style ids give topic and turn."""

    query_id: str
    topic_number: Optional[int]
    turn_number: Optional[int]
    raw_utterance: str
    history: tuple[str, ...]

    def default_text(self) -> str:
        return self.raw_utterance


def read_tsv_pairs(path: PathLike, what: str = "query") -> dict[str, str]:
    """`id<TAB>text` lines (LF or CRLF, UTF-8, blank lines skipped), texts stripped; a duplicate id is an error."""
    pairs: dict[str, str] = {}
    for number, line in read_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise UserError(f"{path}:{number}: expected 2 tab-separated columns ({what} id, text), got {len(parts)}")
        _add(pairs, parts[0], parts[1], f"{path}:{number}", what)
    if not pairs:
        raise UserError(f"{path}: no {what} lines (expected id<TAB>text)")
    return pairs


def _add(texts: dict[str, str], key: str, text: str, where: str, what: str) -> None:
    """Record `texts[key] = text` (both stripped); an empty id, one with whitespace, or a repeated one is an error."""
    if not key.strip() or any(ch.isspace() for ch in key.strip()):
        raise UserError(f"{where}: {what} id {visible(key)} is empty or contains whitespace")
    if key.strip() in texts:
        raise UserError(f"{where}: duplicate {what} id {key.strip()}")
    texts[key.strip()] = text.strip()


def tsv_topic_queries(path: PathLike) -> list[TopicQuery]:
    """The queries of a Pyserini topics TSV (`qid<TAB>text`)."""
    queries, history = [], {}
    for query_id, text in read_tsv_pairs(path).items():
        match = CAST_QUERY_ID.match(query_id)
        topic, turn = (int(match.group(1)), int(match.group(2))) if match else (None, None)
        earlier = history.setdefault(topic, []) if topic is not None else []
        queries.append(TopicQuery(query_id, topic, turn, text, tuple(earlier)))
        if topic is not None:
            earlier.append(text)
    return queries


@dataclass
class Topics:
    """The queries of a topic set, in order, and where they came from (a dataset id or a file)."""

    queries: list
    source: str
    path: Path | None = None
    dataset_id: str | None = None
    _by_id: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {query.query_id: query for query in self.queries}

    def __iter__(self) -> Iterator:
        return iter(self.queries)

    def __len__(self) -> int:
        return len(self.queries)

    def __getitem__(self, query_id: str):
        return self._by_id[query_id]

    def __contains__(self, query_id: object) -> bool:
        return query_id in self._by_id

    def ids(self) -> list[str]:
        return [query.query_id for query in self.queries]

    def turn_of(self, query_id: str) -> int | None:
        query = self._by_id.get(query_id)
        return None if query is None else getattr(query, "turn_number", None)

    def describe(self) -> dict:
        """What the sidecar records about the topics."""
        record = {"source": self.source, "queries": len(self.queries)}
        if self.path is not None:
            from ..files import sha256_of

            record["sha256"] = sha256_of(self.path)
        return record


def looks_like_file(source: str) -> bool:
    """True for a name that can only be a file (a known suffix), not a dataset id."""
    return source.endswith(TOPIC_FILE_SUFFIXES)


@dataclass(frozen=True)
class Rewrites(Mapping[str, str]):
    """Rewritten query texts by query id, with the file they came from and its sha256."""

    texts: dict[str, str]
    path: Path
    sha256: str

    def __getitem__(self, query_id: str) -> str:
        return self.texts[query_id]

    def __iter__(self):
        return iter(self.texts)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def name(self) -> str:
        return Path(plain_name(self.path)).stem

    def describe(self) -> dict:
        return {"file": str(self.path), "name": self.path.name, "sha256": self.sha256, "rewrites": len(self.texts)}


def load_rewrites(path: PathLike) -> Rewrites:
    """Rewrites from `qid<TAB>text` lines or a header-ed TSV with `id` and `query` columns (a path, or the name
    of a declared data file such as `cast-20/rewrites-grill-qr-eval/11_Human.tsv`)."""
    from ..files import local_path, sha256_of

    path = local_path(path) or Path(path)
    lines = [(number, line) for number, line in read_lines(path) if line.strip()]
    if not lines:
        raise UserError(f"{path}: no rewrites (expected qid<TAB>text lines or a TSV with id and query columns)")
    header = lines[0][1].split("\t")
    names = [name.strip() for name in header]
    if all(name in names for name in REWRITE_HEADER):
        texts = _headered_rewrites(path, names, lines[1:])
    else:
        texts = read_tsv_pairs(path, what="query")
    return Rewrites(texts, path, sha256_of(path))


def _headered_rewrites(path: Path, names: list[str], lines: list[tuple[int, str]]) -> dict[str, str]:
    """The id and query columns; a field may be CSV-quoted as pandas writes it (doubled quotes inside quotes)."""
    import csv

    id_column, text_column = names.index("id"), names.index("query")
    texts: dict[str, str] = {}
    for number, line in lines:
        try:
            values = next(csv.reader([line], delimiter="\t", strict=True))
        except csv.Error as error:
            raise UserError(f"{path}:{number}: malformed quoting ({error})") from None
        while len(values) > len(names) and not values[-1].strip():
            values.pop()  # trailing empty columns (a tab before the line end)
        if len(values) != len(names):
            raise UserError(f"{path}:{number}: {len(values)} tab-separated columns, the header has {len(names)}")
        _add(texts, values[id_column], values[text_column], f"{path}:{number}", "query")
    if not texts:
        raise UserError(f"{path}: a header but no rewrites")
    return texts
