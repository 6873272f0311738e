"""ConvDR's few-shot paradigm for a cross-encoder reranker (the ConvDR authors' description, never released).

A query input is paired with the positive and sampled negative passages of its turn. The frozen teacher reads
(manual rewrite, passage); the student reads (conversational input, passage) and learns to reproduce the
teacher's last-layer [CLS] embedding of the same passage (KD: MSE), optionally with a ranking loss
(cross-entropy over the positive's and negatives' scores); the loss is `kd_weight * KD + ranking_weight *
ranking`. The student starts from the teacher's weights, as ConvDR's query encoder does.

Teacher: a given cross-encoder (e.g. an MS MARCO reranker), a cross-validated teacher folder (`fold-k`, e.g.
the `teacher/` of an earlier run: each fold's student learns from the teacher that did not see the fold), or,
when none is given, one trained here inside each cross-validation fold with the ranking loss on the training
topics' manual rewrites, initialised from an encoder's weights (`minilm`: all-MiniLM-L6-v2) with a fresh head;
`teacher_only` stops there (OUTPUT/teacher/fold-k, no student), so several students can share one teacher.
The optimisation is the query-encoder training's (`convdr_pyserini.train.loop.fit`: AdamW, clipping, its
default schedule, seeded order); negatives are drawn as `train negatives` draws them
(`convdr_pyserini.train.data.mine_negatives`), from the first-stage run.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..train.config import LossChoice
from ..train.data import NEGATIVE_POOL, NEGATIVES, mine_negatives, topic_of

logger = logging.getLogger(__name__)
LOSSES = ("kd", "ranking", "kd+ranking")
TEACHER_FOLDER = "teacher"


@dataclass
class RerankTrainConfig(LossChoice):
    """A few-shot reranker training run (see the module docstring); OUTPUT[/seed-s]/fold-k with `cv`."""

    topics: str
    run: str
    output: str
    collection: str | None = None
    teacher: str | None = None
    init: str = "minilm"
    query: str = "no_res"
    loss: str = "kd+ranking"
    kd_weight: float = 1.0
    ranking_weight: float = 1.0
    negatives: int = NEGATIVES
    pool: int = NEGATIVE_POOL
    epochs: int = 1
    teacher_epochs: int = 1
    lr: float = 2e-5
    batch_size: int = 4
    max_length: int = 256
    pairs_per_forward: int = 4
    cv: int | None = None
    seed: int = 42
    seeds: list[int] | None = None
    device: str = "cpu"
    teacher_only: bool = False
    overwrite: bool = False
    command: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.teacher_only and self.teacher is not None:
            raise UserError("{teacher_only} trains the teacher: give no {teacher}", "teacher_only", "teacher")
        if self.loss not in LOSSES:
            raise UserError(f"{{loss}} {self.loss!r} is not one of {', '.join(LOSSES)}", "loss")
        for name in ("negatives", "pool", "epochs", "teacher_epochs", "batch_size", "max_length",
                     "pairs_per_forward"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"{{{name}}} must be a positive integer, got {value!r}", name)
        for name in ("kd_weight", "ranking_weight", "lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise UserError(f"{{{name}}} must be a finite number >= 0, got {value!r}", name)
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise UserError("{seeds}: give distinct seeds", "seeds")


@dataclass
class PairExample:
    """A training turn: its student pairs and teacher pairs (positive first), and the teacher's [CLS] targets."""

    query_id: str
    pairs: list
    teacher_pairs: list
    target: np.ndarray | None = None


def pair_loss(reranker, examples, normaliser: int, kd_weight: float, ranking_weight: float,
              teacher_side: bool = False, pairs_per_forward: int = 4):
    """The weighted KD (MSE to the targets) + ranking (cross-entropy, positive first) loss of a batch, its
    pairs run through the model in length-sorted groups of `pairs_per_forward` (less padding, same loss)."""
    import torch

    pairs = [pair for example in examples for pair in (example.teacher_pairs if teacher_side else example.pairs)]
    logits, cls = reranker.forward_pairs(pairs, pairs_per_forward)
    loss = cls.new_zeros(())
    if kd_weight:
        targets = torch.as_tensor(np.concatenate([example.target for example in examples]), device=cls.device)
        per_pair = ((cls.float() - targets) ** 2).mean(dim=1).view(len(examples), -1)
        loss = loss + kd_weight * per_pair.mean(dim=1).sum()
    if ranking_weight:
        scores = reranker.encoder.scores(logits).float().view(len(examples), -1)
        positives = torch.zeros(len(examples), dtype=torch.long, device=cls.device)
        loss = loss + ranking_weight * torch.nn.functional.cross_entropy(scores, positives, reduction="sum")
    return loss / normaliser


def cls_targets(reranker, examples, batch_size: int = 32) -> None:
    """Fill each example's `target` with the frozen teacher's [CLS] vectors of its teacher pairs."""
    import torch

    model = reranker.encoder.model
    model.eval()
    with torch.inference_mode():
        for example in examples:
            vectors = []
            for start in range(0, len(example.teacher_pairs), batch_size):
                _, cls = reranker.encoder.forward(*reranker.tensors(example.teacher_pairs[start:start + batch_size]))
                vectors.append(cls.float().cpu().numpy())
            example.target = np.concatenate(vectors)


def train_reranker(config: RerankTrainConfig) -> dict:
    """Train as `config` says; writes OUTPUT (or OUTPUT/seed-s) with fold-k students and teacher/fold-k."""
    from ..io.atomic import prepare_output

    job = RerankTraining(config)
    if config.seeds is None:
        return job.run(config.seed, Path(config.output))
    prepare_output(config.output, job.inputs(), config.overwrite, directory=True)
    return {f"seed-{seed}": job.run(seed, Path(config.output) / f"seed-{seed}") for seed in config.seeds}


class RerankTraining:
    """The turns, their mined negatives and passages, built once; then one teacher and student per fold."""

    def __init__(self, config: RerankTrainConfig):
        from ..encode.inputs import conversational_input
        from ..resolve import load_topics, response_lookup, topics_qrels
        from ..train.data import check_manual_rewrites
        from .passages import passage_lookup, run_collection
        from .reranker import read_run

        self.config = config
        self.topics = load_topics(config.topics)
        qrels = topics_qrels(self.topics)
        if qrels is None:
            raise UserError(f"{self.topics.source} has no qrels to take positives from", "topics")
        check_manual_rewrites(self.topics.source, list(self.topics))
        first_stage = read_run(config.run, self.topics)
        self.collection = config.collection or run_collection(first_stage) or self.topics.source
        ranked = first_stage.ranked_docids()
        candidates = sorted({d for judged in qrels.judgments.values() for d in judged} | first_stage.docids())
        self.passages = passage_lookup(self.collection)(candidates)
        judgments = {query_id: {d: grade for d, grade in judged.items() if d in self.passages}
                     for query_id, judged in qrels.judgments.items()}
        turns = [query_id for query_id in self.topics.ids() if query_id in ranked]  # the run's turns only
        mined, _ = mine_negatives(turns, judgments, ranked, config.seed, config.negatives, config.pool)
        if not mined:
            raise UserError(f"no query of {self.topics.source} has a relevant passage in {self.collection} and "
                            f"{config.negatives} negatives in the run")
        self.mined = mined
        responses = response_lookup(self.topics) if config.query in ("man_can", "auto_can") else None
        self.student_inputs = {e.query_id: conversational_input(self.topics[e.query_id], config.query, responses)
                               for e in mined}
        self.manual = {e.query_id: self.topics[e.query_id].manual_rewritten_utterance for e in mined}
        self.topic = {e.query_id: topic_of(self.topics[e.query_id]) for e in mined}
        self.folds = None
        if config.cv:
            from ..folds import fold_assignment

            self.folds = fold_assignment(self.topics)
            if len(set(self.folds.values())) != config.cv:
                raise UserError(f"{{cv}} {config.cv}: the fold rule splits {self.topics.source} into "
                                f"{len(set(self.folds.values()))} folds", "cv")
        self.fold_teachers = self._fold_teachers()

    def _fold_teachers(self) -> dict[int, str] | None:
        """{fold: teacher folder} when the teacher is a cross-validated folder, checked against the folds."""
        from .reranker import fold_models

        teachers = fold_models(self.config.teacher) if self.config.teacher else None
        if teachers is None:
            return None
        wanted = set() if self.folds is None else set(self.folds.values())
        if self.folds is None or set(teachers) != wanted:
            raise UserError(f"{self.config.teacher} holds teachers for folds {sorted(teachers)}; a cross-validated "
                            f"teacher needs {{cv}} with the same folds"
                            + (f" ({sorted(wanted)})" if wanted else ""), "teacher")
        return teachers

    def inputs(self) -> list[Path]:
        paths = [self.config.run, self.config.teacher, self.config.collection]
        return [Path(p) for p in paths if p and Path(p).exists()]

    def examples(self, reranker, query_ids) -> list[PairExample]:
        """Pairs of each turn for one model's tokenizer: student input and manual rewrite, each passage."""
        from .passages import pair_text

        found = []
        by_id = {e.query_id: e for e in self.mined}
        for query_id in query_ids:
            doc_ids = [by_id[query_id].positive, *by_id[query_id].negatives]
            passage_ids = reranker.passage_ids([pair_text(self.passages[d]) for d in doc_ids])
            student = reranker.query_ids(self.student_inputs[query_id], self.config.query)
            teacher = reranker.query_ids(self.manual[query_id], "manual")
            found.append(PairExample(query_id, [reranker.pair(student, p) for p in passage_ids],
                                     [reranker.pair(teacher, p) for p in passage_ids]))
        return found

    def stamp(self, seed: int) -> dict:
        """What decides the models of one seed (settings, inputs as found on disk, version): a stopped training
        resumes from its finished folds only under the same stamp (`io.atomic.resumable_directory`)."""
        from .._version import __version__

        settings = {key: value for key, value in dataclasses.asdict(self.config).items()
                    if key not in ("output", "overwrite", "command", "seed", "seeds")}
        inputs = [*self.inputs(), *([Path(self.config.topics)] if Path(self.config.topics).exists() else [])]
        return {"version": __version__, "seed": seed, "settings": settings,
                "inputs": {str(path): _fingerprint(path) for path in inputs}}

    def run(self, seed: int, output: Path) -> dict:
        from ..io.atomic import resumable_directory

        started = time.time()
        folds = [None] if self.folds is None else sorted(set(self.folds.values()))
        summary = {}
        with resumable_directory(output, self.stamp(seed), inputs=self.inputs(),
                                 overwrite=self.config.overwrite) as folder:  # locks the output
            for fold in folds:
                train_ids = [e.query_id for e in self.mined
                             if fold is None or self.folds[self.topic[e.query_id]] != fold]
                name = "model" if fold is None else f"fold-{fold}"
                summary[name] = self._fold(seed, fold, train_ids, folder)
        return {"output": str(output), "folds": summary, "seconds": round(time.time() - started, 1)}

    def _fold(self, seed: int, fold: int | None, train_ids: list[str], folder: Path) -> dict:
        """Train (or load) the fold's teacher, then its student; save both; returns the metrics. A model already
        in `folder` (a resumed build) is not trained again."""
        started = time.time()
        from ..train.loop import fit
        from .models import cross_encoder_from_encoder, load_cross_encoder
        from .reranker import CrossEncoderReranker

        config = self.config
        where = "" if fold is None else f"fold-{fold}"
        options = dict(max_length=config.max_length, batch_size=32)
        metrics = {"train_queries": len(train_ids)}
        student_folder = folder / (where or "model")
        teacher_folder = folder / TEACHER_FOLDER / (where or "model")
        finished = _finished_metrics(teacher_folder if config.teacher_only else student_folder)
        if finished is not None:
            logger.info("seed %d %s: resuming with the model finished earlier in %s", seed, where or "all topics",
                        folder)
            return finished
        if config.teacher is not None:
            location = config.teacher if self.fold_teachers is None else self.fold_teachers[fold]
            teacher = CrossEncoderReranker(load_cross_encoder(location, config.device), **options)
        elif (trained := _finished_metrics(teacher_folder)) is not None:
            teacher = CrossEncoderReranker(load_cross_encoder(teacher_folder, config.device), **options)
            metrics = trained
            started -= trained.get("seconds", 0.0)
        else:
            teacher = CrossEncoderReranker(cross_encoder_from_encoder(config.init, seed, config.device), **options)
            examples = self.examples(teacher, train_ids)
            result = fit(teacher.encoder, examples, epochs=config.teacher_epochs, lr=config.lr,
                         batch_size=config.batch_size, seed=seed, use_kd=False, use_ranking=True,
                         description=f"seed {seed} {where or 'all topics'}: teacher (ranking, manual rewrites)",
                         loss_of=lambda batch, n: pair_loss(teacher, batch, n, 0.0, 1.0, teacher_side=True,
                                                            pairs_per_forward=config.pairs_per_forward))
            metrics["teacher_loss_last_epoch"] = round(result.epoch_losses[-1], 8)
            metrics["seconds"] = round(time.time() - started, 1)
            teacher.encoder.save(teacher_folder, overwrite=True,
                                 extra=self._record(seed, fold, train_ids, "teacher", metrics))
            if config.teacher_only:
                return metrics
        examples = self.examples(teacher, train_ids)
        cls_targets(teacher, examples)
        student = CrossEncoderReranker(copy.deepcopy(teacher.encoder), **options)
        kd, ranking = (config.kd_weight if config.uses_kd else 0.0), (config.ranking_weight if config.uses_ranking
                                                                      else 0.0)
        result = fit(student.encoder, examples, epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
                     seed=seed, use_kd=False, use_ranking=False, description=f"seed {seed} {where or 'all topics'}: student",
                     loss_of=lambda batch, n: pair_loss(student, batch, n, kd, ranking,
                                                        pairs_per_forward=config.pairs_per_forward))
        metrics["student_loss_first_epoch"] = round(result.epoch_losses[0], 8)
        metrics["student_loss_last_epoch"] = round(result.epoch_losses[-1], 8)
        metrics["seconds"] = round(time.time() - started, 1)
        student.encoder.save(student_folder, overwrite=True,
                             extra=self._record(seed, fold, train_ids, "student", metrics))
        return metrics

    def _record(self, seed, fold, train_ids, role, metrics) -> dict:
        config = dataclasses.asdict(self.config)
        config.pop("overwrite")
        topics = sorted({self.topic[q] for q in train_ids}, key=str)
        return {"method": "ConvDR few-shot reranker (teacher-student, Yu et al. SIGIR 2021)", "role": role,
                "seed": seed, "fold": fold, "train_topics": topics, "collection": self.collection,
                "config": config, "metrics": dict(metrics),
                "optimizer": {"name": "AdamW", "lr": self.config.lr, "max_grad_norm": 1.0,
                              "schedule": "the query-encoder training's default (train.loop.fit)"}}


def _finished_metrics(model_folder: Path) -> dict | None:
    """The metrics recorded with a model saved by this training (None when it is not there)."""
    from .models import read_training_record

    record = read_training_record(model_folder)
    return None if record is None else record["metrics"]


def _fingerprint(path: Path) -> list:
    """(relative name, size, mtime) of a file or of every file under a folder: what a resumed build checks."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [[str(p.relative_to(path)) if path.is_dir() else p.name, p.stat().st_size, p.stat().st_mtime_ns]
            for p in files]


def _records(folder: Path) -> list[dict]:
    """The students' `reranker.json` records of a training output, or the teachers' when it trained no student."""
    from .models import TRAINING_RECORD, read_training_record

    folders = sorted(path.parent for path in folder.glob(f"*/{TRAINING_RECORD}")) or \
        sorted(path.parent for path in folder.glob(f"{TEACHER_FOLDER}/*/{TRAINING_RECORD}"))
    return [read_training_record(model_folder) for model_folder in folders]


def trained_command(folder: str | Path) -> str | None:
    """The `command` record of a finished training output (its students' `reranker.json`), or None."""
    records = _records(Path(folder))
    return records[0]["config"].get("command") if records else None


def training_seconds(folder: str | Path) -> float:
    """Seconds a training output took (a student's record includes its teacher's training), as its records say."""
    return sum(float(record["metrics"].get("seconds", 0.0)) for record in _records(Path(folder)))
