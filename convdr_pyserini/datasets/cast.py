"""TREC CAsT-19, CAsT-20 and CAsT-21 topics, rewrites and qrels as conversational query records."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Optional, get_type_hints

from ..errors import UserError
from ..io.text import read_json, required_field as field
from ..io.topics import read_tsv_pairs

# Topic numbers of each official topic file: a file from another year is refused.
TOPIC_RANGES = {"cast19-train": range(1, 31), "cast19": range(31, 81), "cast20": range(81, 106),
                "cast21": range(106, 132)}
OPTIONAL_TEXT_FIELDS = ("manual_rewritten_utterance", "automatic_rewritten_utterance", "manual_canonical_result_id",
                        "automatic_canonical_result_id", "canonical_result_id", "passage")


class Cast19Query(NamedTuple):
    """A CAsT-19 turn. `history` holds the previous raw utterances of the topic, oldest first."""

    query_id: str
    topic_number: int
    turn_number: int
    raw_utterance: str
    manual_rewritten_utterance: Optional[str]
    history: tuple[str, ...]

    def default_text(self) -> str:
        return self.raw_utterance


class Cast20Query(NamedTuple):
    """A CAsT-20 turn, with both rewrites and the canonical responses of this and previous turns."""

    query_id: str
    topic_number: int
    turn_number: int
    raw_utterance: str
    manual_rewritten_utterance: Optional[str]
    automatic_rewritten_utterance: Optional[str]
    history: tuple[str, ...]
    manual_canonical_result_id: Optional[str]
    automatic_canonical_result_id: Optional[str]
    history_manual_canonical_result_ids: Optional[tuple[str, ...]]
    history_automatic_canonical_result_ids: Optional[tuple[str, ...]]

    def default_text(self) -> str:
        return self.raw_utterance


_CAST21_PASSAGES = [("manual_canonical_passage", Optional[str]), ("automatic_canonical_passage", Optional[str]),
                    ("history_manual_canonical_passages", Optional[tuple[str, ...]]),
                    ("history_automatic_canonical_passages", Optional[tuple[str, ...]])]


class Cast21Query(NamedTuple("Cast21Fields", [*get_type_hints(Cast20Query).items(), *_CAST21_PASSAGES])):
    """A CAsT-21 turn: the CAsT-20 fields (canonical result ids are passage ids `<docid>-<n>`) plus the canonical
    passages' texts, which the 2021 topic files carry, for this turn and the previous ones."""

    __slots__ = ()

    def default_text(self) -> str:
        return self.raw_utterance


def _topics(path: Path, year: str | None) -> list[dict]:
    """The topics of a CAsT JSON file, checked (numbers, turns, strings); with `year`, its topic range too."""
    topics = read_json(path)
    if not isinstance(topics, list) or not topics:
        raise UserError(f"{path}: expected a non-empty JSON list of CAsT topics")
    allowed = TOPIC_RANGES[year] if year else None
    seen: set[str] = set()
    for index, topic in enumerate(topics):
        where = f"{path}: topic #{index + 1}"
        number = field(topic, "number", where, int)
        if allowed is not None and number not in allowed:
            raise UserError(
                f"{path}: topic {number} is not a {year} topic (expected {allowed.start}-{allowed.stop - 1}); "
                "wrong year's topic file?"
            )
        turns = field(topic, "turn", where, list)
        for turn in turns:
            query_id = f"{number}_{field(turn, 'number', f'{where} turn', int)}"
            if query_id in seen:
                raise UserError(f"{path}: duplicate query id {query_id}")
            seen.add(query_id)
            turn_where = f"{path}: turn {query_id}"
            field(turn, "raw_utterance", turn_where, str)
            for name in OPTIONAL_TEXT_FIELDS:
                if name in turn:
                    field(turn, name, turn_where, str)
    return topics


def cast19_queries(topics_path: Path, rewrites_path: Path | None, year: str = "cast19") -> list[Cast19Query]:
    """Parse a CAsT-19 topic JSON and (optionally) its manual-rewrite TSV (CRLF and non-ASCII tolerated)."""
    rewrites = read_tsv_pairs(rewrites_path) if rewrites_path is not None else {}
    queries = []
    for topic in _topics(topics_path, year):
        history: list[str] = []
        for turn in topic["turn"]:
            query_id = f"{topic['number']}_{turn['number']}"
            raw = turn["raw_utterance"].strip()
            queries.append(
                Cast19Query(query_id, topic["number"], turn["number"], raw, rewrites.get(query_id), tuple(history))
            )
            history.append(raw)
    if year == "cast19":
        unknown = sorted(set(rewrites) - {query.query_id for query in queries})
        if unknown:
            raise UserError(f"{rewrites_path}: rewrites for unknown query ids, e.g. {', '.join(unknown[:3])}")
        missing = [query.query_id for query in queries if query.manual_rewritten_utterance is None]
        if missing:
            raise UserError(f"{rewrites_path}: no manual rewrite for {len(missing)} turns, e.g. {missing[0]}")
    return queries


def cast20_queries(manual_path: Path, automatic_path: Path) -> list[Cast20Query]:
    """Join the CAsT-20 manual and automatic topic files into one record per turn."""
    automatic = {}
    for topic in _topics(automatic_path, "cast20"):
        for turn in topic["turn"]:
            where = f"{automatic_path}: turn {topic['number']}_{turn['number']}"
            automatic[f"{topic['number']}_{turn['number']}"] = (
                field(turn, "automatic_rewritten_utterance", where).strip(),
                field(turn, "automatic_canonical_result_id", where),
            )
    queries = []
    for topic in _topics(manual_path, "cast20"):
        history: list[str] = []
        manual_ids: list[str] = []
        automatic_ids: list[str] = []
        for turn in topic["turn"]:
            query_id = f"{topic['number']}_{turn['number']}"
            where = f"{manual_path}: turn {query_id}"
            if query_id not in automatic:
                raise UserError(f"{automatic_path}: no turn {query_id}, which {manual_path} has")
            automatic_text, automatic_id = automatic[query_id]
            manual_id = field(turn, "manual_canonical_result_id", where)
            raw = turn["raw_utterance"].strip()
            queries.append(
                Cast20Query(
                    query_id,
                    topic["number"],
                    turn["number"],
                    raw,
                    field(turn, "manual_rewritten_utterance", where).strip(),
                    automatic_text,
                    tuple(history),
                    manual_id,
                    automatic_id,
                    tuple(manual_ids),
                    tuple(automatic_ids),
                )
            )
            history.append(raw)
            manual_ids.append(manual_id)
            automatic_ids.append(automatic_id)
    return queries


def _canonical_2021(turn: dict, where: str) -> tuple[str, str]:
    """(passage id `<docid>-<n>`, passage text) of a 2021 turn's canonical result."""
    doc_id = field(turn, "canonical_result_id", where, str)
    return f"{doc_id}-{field(turn, 'passage_id', where, int)}", field(turn, "passage", where, str)


def _cast21_records(topics: list[dict], path: Path, automatic: dict[str, tuple] | None) -> list[Cast21Query]:
    """Cast21Query records of checked 2021 topics; `automatic` holds (rewrite, passage id, text) per turn, or None
    to take what the file itself gives (the manual file also holds the automatic rewrites)."""
    queries = []
    for topic in topics:
        history: list[str] = []
        earlier: dict[str, list] = {"manual_ids": [], "automatic_ids": [], "manual_texts": [], "automatic_texts": []}
        for turn in topic["turn"]:
            query_id = f"{topic['number']}_{turn['number']}"
            where = f"{path}: turn {query_id}"
            raw = turn["raw_utterance"].strip()
            canonical = _canonical_2021(turn, where)
            manual = _stripped(turn.get("manual_rewritten_utterance"))
            if automatic is None:
                automatic_text = _stripped(turn.get("automatic_rewritten_utterance"))
                manual_id, manual_passage = canonical if manual is not None else (None, None)
                automatic_id, automatic_passage = (None, None) if manual is not None else canonical
            else:
                if query_id not in automatic:
                    raise UserError(f"the automatic topics have no turn {query_id}, which {path} has")
                automatic_text, automatic_id, automatic_passage = automatic[query_id]
                manual_id, manual_passage = canonical
            queries.append(Cast21Query(
                query_id, topic["number"], turn["number"], raw, manual, automatic_text, tuple(history), manual_id,
                automatic_id, _known(earlier["manual_ids"]), _known(earlier["automatic_ids"]), manual_passage,
                automatic_passage, _known(earlier["manual_texts"]), _known(earlier["automatic_texts"])))
            history.append(raw)
            for key, value in (("manual_ids", manual_id), ("automatic_ids", automatic_id),
                               ("manual_texts", manual_passage), ("automatic_texts", automatic_passage)):
                earlier[key].append(value)
    return queries


def cast21_queries(manual_path: Path, automatic_path: Path) -> list[Cast21Query]:
    """Join the CAsT-21 manual and automatic topic files into one record per turn (239 turns)."""
    automatic = {}
    for topic in _topics(automatic_path, "cast21"):
        for turn in topic["turn"]:
            query_id = f"{topic['number']}_{turn['number']}"
            where = f"{automatic_path}: turn {query_id}"
            automatic[query_id] = (field(turn, "automatic_rewritten_utterance", where, str).strip(),
                                   *_canonical_2021(turn, where))
    return _cast21_records(_topics(manual_path, "cast21"), manual_path, automatic)


def cast_json_queries(path: Path) -> list[Cast19Query | Cast20Query | Cast21Query]:
    """The turns of one CAsT JSON topics file of any year and shape (2019 evaluation topics, 2020 manual or
    automatic): CAsT-20 records when the file names canonical responses, else CAsT-19 records. Fields the
    file lacks are None. History is the topic's earlier raw utterances, as for the dataset ids. A 2021 file
    (canonical passage ids and texts) gives CAsT-21 records: its canonical result is the manual one when the file
    has manual rewrites, else the automatic one."""
    topics = _topics(path, None)
    if any("canonical_result_id" in turn for topic in topics for turn in topic["turn"]):
        return _cast21_records(topics, path, None)
    canonical = any(name in turn for topic in topics for turn in topic["turn"]
                    for name in ("manual_canonical_result_id", "automatic_canonical_result_id"))
    queries: list = []
    for topic in topics:
        history: list[str] = []
        manual_ids: list = []
        automatic_ids: list = []
        for turn in topic["turn"]:
            query_id = f"{topic['number']}_{turn['number']}"
            raw = turn["raw_utterance"].strip()
            manual = _stripped(turn.get("manual_rewritten_utterance"))
            if canonical:
                automatic = _stripped(turn.get("automatic_rewritten_utterance"))
                manual_id, automatic_id = turn.get("manual_canonical_result_id"), turn.get("automatic_canonical_result_id")
                queries.append(Cast20Query(query_id, topic["number"], turn["number"], raw, manual, automatic,
                                           tuple(history), manual_id, automatic_id, _known(manual_ids),
                                           _known(automatic_ids)))
                manual_ids.append(manual_id)
                automatic_ids.append(automatic_id)
            else:
                queries.append(Cast19Query(query_id, topic["number"], turn["number"], raw, manual, tuple(history)))
            history.append(raw)
    return queries


def _stripped(text: str | None) -> str | None:
    return None if text is None else text.strip()


def _known(ids: list) -> tuple | None:
    """The earlier turns' canonical ids, or None when the file does not give them (not a partial list)."""
    return None if any(doc_id is None for doc_id in ids) else tuple(ids)
