"""`compare()`: the runs, topics, qrels and passage texts gathered into an `Explorer`, the plain data of one page.

Every number comes from `convdr_pyserini.evaluate`: the per-turn values are the `Report`'s per-query values (same
measures, same averaging, unjudged turns left out, never 0), the tests are its paired tests (on turns, or on each
conversation's mean over its judged turns), corrected across runs with Holm's method; the means by turn depth are
`evaluate.by_turn`. What evaluation has no notion of (RBO, overlap@k, shared hits) is computed here on the docids.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import InvalidInput, UserError
from ..io.qrels import Qrels
from ..io.runs import Run
from ..io.topics import Topics
from .overlap import RBO_P, overlap_at, rbo

logger = logging.getLogger(__name__)
MAX_RUNS = 8
DEFAULT_DEPTH = 10
RELEVANT_GRADE = 2  # "relevant passages (grade >= 2) that no shown run retrieved"
RunInput = "Run | str | os.PathLike"


@dataclass
class Explorer:
    """The explorer's data: `data` is plain JSON-ready data (what the page embeds), `turns` its per-turn records.

    `write(path)` writes the page; `html()` returns it. `topic_order(run, measure)` is the order of the
    conversations by mean delta against the baseline (worst first), as the page sorts them."""

    data: dict
    inputs: list[str] = field(default_factory=list)

    @property
    def turns(self) -> list[dict]:
        """One record per turn, in topic order: texts, each run's hits (docid, score, grade), values and deltas."""
        return self.data["turns"]

    @property
    def runs(self) -> list[str]:
        return self.data["runs"]

    def turn(self, query_id: str) -> dict:
        for record in self.turns:
            if record["id"] == query_id:
                return record
        raise KeyError(query_id)

    def topic_order(self, run: str | None = None, measure: str | None = None) -> list[str]:
        """Topic ids by mean delta of `run` against the baseline on `measure` (default: the focus run and the first
        measure), worst first; topics without a delta last; ties by topic id as a number, then as text."""
        run = run or self.data["focus"]
        measure = measure or self.data["measures"][0]
        deltas = [(topic["id"], (topic["delta"].get(run) or {}).get(measure)) for topic in self.data["topics"]]
        return [topic for topic, _ in sorted(deltas, key=lambda item: (item[1] is None, item[1] or 0.0,
                                                                         _number(item[0]), item[0]))]

    def html(self) -> str:
        from .page import render_page

        return render_page(self.data)

    def write(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the page atomically; an existing file is replaced only with `overwrite`, an input never."""
        from ..io.atomic import write_text

        return write_text(path, self.html(), inputs=self.inputs, overwrite=overwrite)


def _number(text: str) -> float:
    match = re.match(r"\d+", text)
    return float(match.group()) if match else float("inf")


def run_names(paths: Sequence[str]) -> dict[str, str]:
    """`NAME=PATH` or `PATH` (named by its file stem) -> {name: path}; a name given twice is refused."""
    named: dict[str, str] = {}
    problems = []
    for given in paths:
        name, separator, path = str(given).partition("=")
        if not separator or not name or os.path.exists(given):
            name, path = Path(given).stem, str(given)
        if name in named:
            problems.append(f"two runs are named {name!r} ({named[name]} and {path}); name them NAME=PATH")
        named[name] = path
    if problems:
        raise InvalidInput(problems, "runs")
    return named


def compare(
    topics: "Topics | str | os.PathLike",
    runs: "Mapping[str, RunInput] | Sequence[RunInput]",
    qrels: "Qrels | str | os.PathLike | None" = None,
    texts: str | os.PathLike | None = None,
    baseline: str | None = None,
    measures: str | None = None,
    depth: int = DEFAULT_DEPTH,
    aggregate: str | None = None,
    title: str | None = None,
    timestamp: bool = False,
    focus: str | None = None,
) -> Explorer:
    """Gather what every run did to every turn of every conversation.

    `topics`: a dataset id or a topics file; `runs`: {name: run file or `Run`} or a list of run files (named by
    file stem, or `NAME=PATH`), 1 to 8 of them; `qrels` (optional): a dataset id, a qrels file or `Qrels`;
    `texts` (optional): a dataset id with docs, a Lucene index with stored raw documents or a JsonCollection;
    `baseline`: one of the runs' names; `measures`: an ir_measures string (default: the dataset's preset);
    `depth`: hits shown per turn; `aggregate`: a passage run's documents against document qrels (`maxp`, ...), each
    shown with its best passage; `focus`: the run the conversations are first sorted and coloured by (default: the
    last run other than the baseline; the page lets the reader pick another). Bad input is one `InvalidInput`
    listing every problem."""
    from ..evaluate.inputs import read_runs
    from ..resolve import load_topics

    named = dict(runs) if isinstance(runs, Mapping) else run_names([str(run) for run in runs])
    problems = []
    if not 1 <= len(named) <= MAX_RUNS:
        problems.append(f"give 1 to {MAX_RUNS} runs, not {len(named)}")
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise TypeError(f"depth must be an integer, not {type(depth).__name__}")
    if depth < 1:
        problems.append(f"{{depth}} {depth} is below 1: give the number of hits to show per turn")
    for parameter, value in (("baseline", baseline), ("focus", focus)):
        if value is not None and value not in named:
            problems.append(f"{{{parameter}}} {value!r} is not one of the runs ({', '.join(named)})")
    if problems:
        raise InvalidInput(problems, "depth", "baseline", "focus", "runs")
    topics = load_topics(topics)
    loaded = {name: members[0] for name, members in read_runs(named, None).items()}
    _drop_unknown_queries(loaded, topics)
    qrels_obj = None
    if qrels is not None:
        from ..evaluate.inputs import convert_convdr_ids
        from ..resolve import load_qrels

        qrels_obj = load_qrels(qrels)
        for run in loaded.values():
            convert_convdr_ids(run, qrels_obj)
    shown = {name: _shown_hits(run, depth, aggregate) for name, run in loaded.items()}
    builder = _Builder(topics, loaded, shown, qrels_obj, baseline, depth, aggregate)
    builder.inputs = {name: encoder_inputs(run, topics) for name, run in loaded.items()}
    if qrels_obj is not None:
        builder.score(measures)
    data = builder.data(texts, title, timestamp, focus)
    inputs = [str(getattr(run, "path", None) or "") for run in loaded.values()]
    inputs += [str(path) for path in (getattr(topics, "path", None), getattr(qrels_obj, "path", None), texts)
               if path is not None]
    return Explorer(data, [path for path in inputs if path])


def _drop_unknown_queries(runs: dict[str, Run], topics: Topics) -> None:
    """Leave out the queries of each run that the topics lack, counted in one warning line."""
    dropped = {}
    for name, run in runs.items():
        stray = [qid for qid in run.hits if qid not in topics]
        if stray:
            dropped[name] = len(stray)
            run.hits = {qid: hits for qid, hits in run.hits.items() if qid in topics}
    if dropped:
        logger.warning("%d queries of the runs are not in the topics of %s and are left out (%s)",
                       sum(dropped.values()), topics.source,
                       ", ".join(f"{name}: {count}" for name, count in dropped.items()))


def _shown_hits(run: Run, depth: int, aggregate: str | None) -> dict[str, list[tuple[str, float, str | None]]]:
    """{qid: [(docid, score, best passage or None), ...]} of the top `depth`: a passage run's documents (by
    `aggregate`) with each document's best passage, or the run's own hits."""
    if aggregate is None:
        return {qid: [(docid, score, None) for docid, score in hits[:depth]] for qid, hits in run.items()}
    from ..io.passage_runs import split_passage_id

    documents = run.documents(aggregate)
    shown = {}
    for qid, hits in documents.items():
        best: dict[str, str] = {}
        for passage, _ in run[qid]:  # ranked by score then id: the first passage of a document is its best
            parts = split_passage_id(passage)
            if parts is not None:
                best.setdefault(parts[0], passage)
        shown[qid] = [(docid, score, best.get(docid)) for docid, score in hits[:depth]]
    return shown


class _Builder:
    """Builds the page data step by step (scores first, when there are qrels; then the records)."""

    def __init__(self, topics, runs, shown, qrels, baseline, depth, aggregate):
        self.topics, self.runs, self.shown, self.qrels = topics, runs, shown, qrels
        self.baseline, self.depth, self.aggregate = baseline, depth, aggregate
        self.names = list(runs)
        self.measures: list[str] = []
        self.values: dict[str, dict[str, dict[str, float]]] = {}  # run -> measure -> qid -> value
        self.overview: dict = {}
        self.settings: list[str] = []
        self.by_turn: dict | None = None
        self.judged_at: dict[str, float] = {}
        self.inputs: dict[str, tuple[dict[str, str], str | None]] = {}  # run -> ({qid: encoder input}, note)

    # -- scores, all through evaluate -----------------------------------------------------------------------
    def score(self, measures: str | None) -> None:
        from ..evaluate import evaluate, parse_measures
        from ..evaluate.by_turn import by_turn
        from ..evaluate.presets import preset_for_dataset

        preset = None
        if measures is None:
            for source in (self.qrels.source if self.qrels.path is None else None, self.topics.dataset_id):
                preset = preset_for_dataset(source) if source else None
                if preset is not None:
                    break
            if preset is None:
                raise UserError(f"give {{measures}}: neither {self.qrels.source} nor {self.topics.source} has a "
                                "preset", "measures")
            measures = preset.measures
        parsed, rejected = parse_measures(measures)
        if rejected:
            raise InvalidInput([f"{{measures}}: {problem}" for problem in rejected], "measures")
        self.measures = [str(measure) for measure in parsed]
        judged = f"Judged@{self.depth}"
        scored = " ".join(self.measures + ([judged] if judged not in self.measures else []))
        report = evaluate(self.qrels, dict(self.runs), scored, baseline=self.baseline, preset=preset,
                          aggregate=self.aggregate)
        self.settings = [line for line in report.settings() if not line.startswith("measures (ir_measures)")]
        self.settings.insert(1 if preset is None else 2, f"measures (ir_measures): {' '.join(self.measures)}")
        self.values = {scores.name: {m: scores.per_query[m] for m in self.measures} for scores in report.runs}
        self.judged_at = {scores.name: scores.aggregate[judged] for scores in report.runs}
        table = by_turn(report)
        self.by_turn = {"turns": table.turns, "queries": {str(turn): n for turn, n in table.queries.items()},
                        "means": {run: {m: {str(t): v for t, v in means[m].items()} for m in self.measures}
                                  for run, means in table.means.items()}}
        self.overview = {"turn": self._overview(report, "turn"), "conversation": self._overview(report, "conversation")}

    def _unit_values(self, run: str, measure: str, unit: str) -> dict[str, float]:
        values = self.values[run][measure]
        if unit == "turn":
            return values
        grouped: dict[str, list[float]] = {}
        for qid, value in values.items():
            grouped.setdefault(self._topic_of(qid), []).append(value)
        return {topic: sum(found) / len(found) for topic, found in sorted(grouped.items())}

    def _overview(self, report, unit: str) -> dict:
        """{run: {measure: {mean, n, and against the baseline: delta, win/tie/loss, both p-values and Holm's}}}."""
        from ..evaluate import significance

        rows: dict[str, dict[str, dict]] = {name: {} for name in self.names}
        for measure in self.measures:
            for name in self.names:
                values = self._unit_values(name, measure, unit)
                mean = report.scores_of(name).aggregate[measure] if unit == "turn" else \
                    (sum(values.values()) / len(values) if values else None)
                rows[name][measure] = {"mean": mean, "n": len(values)}
            if self.baseline is None:
                continue
            reference = self._unit_values(self.baseline, measure, unit)
            others = [name for name in self.names if name != self.baseline]
            tests = []
            for name in others:
                values = self._unit_values(name, measure, unit)
                tested = report.comparison(name, measure) if unit == "turn" else \
                    significance.compare(measure, name, self.baseline, values, reference)
                common = sorted(set(values) & set(reference))
                differences = [values[key] - reference[key] for key in common]
                rows[name][measure].update({
                    "delta": tested.mean_difference, "paired": tested.queries,
                    "t_p": tested.t_test_p, "rand_p": tested.randomization_p,
                    "win": sum(d > 0 for d in differences), "tie": sum(d == 0 for d in differences),
                    "loss": sum(d < 0 for d in differences)})
                tests.append(tested)
            for key, adjusted in (("t_p_holm", significance.holm([t.t_test_p for t in tests])),
                                  ("rand_p_holm", significance.holm([t.randomization_p for t in tests]))):
                for name, value in zip(others, adjusted):
                    rows[name][measure][key] = value
        return rows

    # -- the records ----------------------------------------------------------------------------------------
    def _topic_of(self, qid: str) -> str:
        query = self.topics[qid] if qid in self.topics else None
        number = getattr(query, "topic_number", None)
        if number is not None:
            return str(number)
        return qid.rsplit("_", 1)[0] if "_" in qid else qid

    def data(self, texts, title: str | None, timestamp: bool, focus: str | None) -> dict:
        judgments = self.qrels.judgments if self.qrels is not None else {}
        turns, topics = [], {}
        previous_hits: dict[str, list[str]] = {}
        previous_topic = None
        for query in self.topics:
            qid = query.query_id
            topic = self._topic_of(qid)
            if topic != previous_topic:
                previous_hits, previous_topic = {}, topic
            record = self._turn(query, topic, judgments.get(qid), previous_hits)
            turns.append(record)
            topics.setdefault(topic, []).append(record)
            previous_hits = {name: [hit[0] for hit in self.shown[name].get(qid, [])] for name in self.names}
        needed = sorted({hit[3] or hit[0] for record in turns for run in record["runs"].values() for hit in run["hits"]}
                        | {docid for record in turns for docid, _ in record["missed"]}
                        | {entry["docid"] for record in turns for entry in record["previous"]})
        text_of, text_note = _lookup_texts(texts, needed)
        focus = focus or next((name for name in reversed(self.names) if name != self.baseline), self.names[0])
        data = {
            "title": title or f"{self.topics.source}: {len(self.names)} run{'s' * (len(self.names) > 1)}",
            "topics_source": self.topics.source,
            "qrels_source": None if self.qrels is None else self.qrels.source,
            "texts_source": None if texts is None else str(texts),
            "texts_note": text_note,
            "runs": self.names,
            "baseline": self.baseline,
            "focus": focus,
            "measures": self.measures,
            "depth": self.depth,
            "aggregate": self.aggregate,
            "rbo_p": RBO_P,
            "relevant_grade": RELEVANT_GRADE,
            "settings": self.settings,
            "overview": self.overview,
            "judged_at": self.judged_at,
            "by_turn": self.by_turn,
            "unjudged": [record["id"] for record in turns if not record["judged"]] if self.qrels is not None else [],
            "topics": [self._topic(topic, records) for topic, records in topics.items()],
            "turns": turns,
            "texts": text_of,
            "input_notes": {name: note for name, (_, note) in self.inputs.items() if note},
        }
        if timestamp:
            import datetime

            data["generated"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return data

    def _turn(self, query, topic: str, judged: dict | None, previous_hits: dict[str, list[str]]) -> dict:
        qid = query.query_id
        grade = (lambda docid: judged.get(docid)) if judged is not None else (lambda docid: None)
        runs = {}
        for name in self.names:
            hits = self.shown[name].get(qid)
            values = {m: self.values[name][m].get(qid) for m in self.measures} if self.values else {}
            entry = {"hits": [] if hits is None else [[docid, score, grade(docid), passage]
                                                      for docid, score, passage in hits],
                     "missing": hits is None, "values": values}
            seen = self.inputs.get(name, ({}, None))[0].get(qid)
            if seen is not None:
                entry["input"] = seen
            if self.baseline is not None and self.values:
                base = {m: self.values[self.baseline][m].get(qid) for m in self.measures}
                entry["delta"] = {m: None if values[m] is None or base[m] is None else values[m] - base[m]
                                  for m in self.measures}
            runs[name] = entry
        ranked = {name: [hit[0] for hit in runs[name]["hits"]] for name in self.names}
        pairs = [[a, b, rbo(ranked[a], ranked[b]), overlap_at(ranked[a], ranked[b], self.depth)]
                 for i, a in enumerate(self.names) for b in self.names[i + 1:]]
        previous = {name: [rbo(ranked[name], previous_hits[name]), overlap_at(ranked[name], previous_hits[name],
                                                                              self.depth)]
                    for name in self.names if previous_hits.get(name)}
        retrieved = {docid for docids in ranked.values() for docid in docids}
        missed = sorted(((docid, g) for docid, g in (judged or {}).items()
                         if g >= RELEVANT_GRADE and docid not in retrieved), key=lambda item: (-item[1], item[0]))
        return {
            "id": qid, "topic": topic, "turn": getattr(query, "turn_number", None),
            "raw": getattr(query, "raw_utterance", None) or getattr(query, "text", None),
            "manual": getattr(query, "manual_rewritten_utterance", None),
            "automatic": getattr(query, "automatic_rewritten_utterance", None),
            "previous": _previous_responses(query),
            "judged": judged is not None, "relevant": sum(g >= RELEVANT_GRADE for g in (judged or {}).values()),
            "runs": runs, "overlap": {"pairs": pairs, "previous": previous}, "missed": [list(m) for m in missed],
        }

    def _topic(self, topic: str, records: list[dict]) -> dict:
        delta: dict[str, dict[str, float | None]] = {}
        for name in self.names if self.baseline is not None and self.values else []:
            delta[name] = {}
            for measure in self.measures:
                found = [record["runs"][name]["delta"][measure] for record in records
                         if record["runs"][name]["delta"][measure] is not None]
                delta[name][measure] = sum(found) / len(found) if found else None
        return {"id": topic, "label": records[0]["raw"] or records[0]["id"], "turns": [r["id"] for r in records],
                "delta": delta}


def _previous_responses(query) -> list[dict]:
    """The previous turn's canonical responses where the dataset has them (manual and automatic; CAsT-20/21), with
    their text where the topics carry it (CAsT-21)."""
    found = []
    for kind in ("manual", "automatic"):
        ids = getattr(query, f"history_{kind}_canonical_result_ids", None)
        if not ids:
            continue
        entry = next((e for e in found if e["docid"] == ids[-1]), None)
        if entry is None:
            entry = {"docid": ids[-1], "kinds": []}
            texts = getattr(query, f"history_{kind}_canonical_passages", None)
            if texts:
                entry["text"] = texts[-1]
            found.append(entry)
        entry["kinds"].append(kind)
    return found


def _lookup_texts(texts, docids: list[str]) -> tuple[dict[str, str], str | None]:
    """{docid: text} of the docids the collection holds, and a note on those it lacks."""
    if texts is None:
        return {}, None
    from ..rerank.passages import passage_lookup

    found = passage_lookup(str(texts))(docids)
    text_of = {docid: (passage.text if passage.title is None else f"{passage.title}\n{passage.text}")
               for docid, passage in sorted(found.items())}
    missing = len(docids) - len(text_of)
    note = (f"{missing} of the {len(docids)} passages on the page (hits, relevant passages no run retrieved, previous "
            f"canonical responses) are not in {texts}: shown by id only") if missing else None
    if note:
        logger.info(note)
    return text_of, note


def encoder_inputs(run: Run, topics: Topics) -> tuple[dict[str, str], str | None]:
    """What a dense run's encoder saw for each query, when its sidecar records a conversational query mode
    (`no_res`, `man_can`, `auto_can`): the input ids, truncated as the search truncated them, decoded back to
    text by the model's tokenizer (as the search recorded them; for a run written before searches recorded them,
    computed again with its models); and a note saying so (or why it could not be shown). ({}, None) otherwise."""
    from ..encode.inputs import CONVERSATIONAL_MODES
    from ..io.runs import sidecar_path
    from ..io.text import read_json

    sidecar = None if run.path is None else sidecar_path(run.path)
    if sidecar is None or not sidecar.is_file():
        return {}, None
    record = read_json(sidecar) or {}
    search = record.get("search") or {}
    mode = search.get("query")
    if search.get("retriever") not in ("dense", "convdr") or mode not in CONVERSATIONAL_MODES:
        return {}, None
    recorded = record.get("encoder_input") or {}
    texts = recorded.get("texts") or {}
    if all(query.query_id in texts for query in topics):  # what the search recorded: no model to load
        return ({query.query_id: texts[query.query_id] for query in topics},
                _seen_note(mode, recorded.get("max_concat_length"), recorded.get("truncate")))
    from ..encode import load_encoder
    from ..search.queries import dense_inputs

    models = _models_by_query(search, topics)
    given, _, _, _ = dense_inputs(topics, mode)
    encoders: dict[str, object] = {}  # by `_tokenizing`: folds that tokenize alike share one loaded model
    keys = {model: _tokenizing(model) for model in set(models.values())}
    seen = {}
    for qid, model in models.items():
        key = keys[model]
        if key not in encoders:
            try:
                encoders[key] = load_encoder(model)
            except UserError as error:
                logger.warning("%s: its %s input is not shown: %s", run.name, mode, error)
                return {}, f"the {mode} input is not shown: the model {model} named by {sidecar} cannot be loaded"
        encoder = encoders[key]
        ids = encoder.query_token_ids(given[qid], mode, max_concat_length=search.get("max_concat_length"),
                                      truncate=search.get("truncate"))
        seen[qid] = encoder.tokenizer.decode(ids)
    card = next(iter(encoders.values())).card if encoders else None
    limit = search.get("max_concat_length") or (card.max_concat_length if card else None)
    truncate = search.get("truncate") or (card.truncate if card else None)
    return seen, _seen_note(mode, limit, truncate)


def _seen_note(mode: str, limit, truncate) -> str:
    return (f"the {mode} input its encoder saw, as the search built it (at most {limit} tokens, "
            f"truncation {truncate}), decoded by the model's tokenizer")


def _tokenizing(model: str) -> str:
    """What decides a model folder's input ids: every file but its weights, card and loss log (the tokenizer, the
    model config), and the card's lengths, truncation and tokenizer settings. Equal for the folds of one training,
    so their inputs come from one loaded model. A card name (not a folder) is its own key."""
    import hashlib

    from ..encode.cards import CARD_FILE, WEIGHT_FILES, resolve_card

    folder = Path(model)
    if not folder.is_dir():
        return model
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name not in (*WEIGHT_FILES, CARD_FILE, "losses.tsv"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    card = resolve_card(folder).to_mapping()
    digest.update(repr((card["architecture"], card["max_length"], card["tokenizer"], card["truncate"])).encode())
    return digest.hexdigest()


def _models_by_query(search: dict, topics: Topics) -> dict[str, str]:
    """{qid: model folder or card} that encoded each query: a cross-validated run's fold model of the query's
    topic, else the run's one encoder."""
    if not search.get("cv"):
        return {query.query_id: str(search.get("encoder")) for query in topics}
    from ..folds import fold_assignment

    fold_of_topic = fold_assignment(topics)
    return {query.query_id: str(Path(search["cv"]) / f"fold-{fold_of_topic[query.topic_number]}") for query in topics}
