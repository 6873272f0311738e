"""The training job behind `train(config)`: inputs, teacher targets, folds, seeds, saving.

The teacher's embeddings (of the manual rewrites, and of the ranking passages) are computed once; each
fold (and each seed) then starts a fresh student from `student_init` and trains on the other folds' topics.
The fold rule is `convdr_pyserini.folds`, the one that ConvDR search uses to pick each topic's model.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io.atomic import OutputLock, atomic_directory, atomic_output, prepare_output
from . import data
from .config import TrainConfig
from .loop import Example, LossWeights, distributed, fit, mean_kd_loss

logger = logging.getLogger(__name__)
CV_SUMMARY = "cv.yaml"
LOSS_LOG = "losses.tsv"


def train(config: TrainConfig) -> dict:
    """Train as `config` says and save the model folder(s); returns a summary (queries, losses, seconds).

    Output: OUTPUT (one model), OUTPUT/fold-k (with `cv`), OUTPUT/seed-s/... (with `seeds`). Each model folder
    is a Hugging Face folder with an `encoder.yaml` card recording the data, loss, folds, seed and metrics.
    """
    trainer = Trainer(config)
    if config.seeds is None:
        return trainer.run(config)
    summaries = {}
    prepare_output(config.output, trainer.inputs(), config.overwrite, directory=True)
    for seed in config.seeds:
        summaries[f"seed-{seed}"] = trainer.run(config.for_seed(seed))
    return {"seeds": summaries}


class Trainer:
    """Builds the examples once, then trains one model, or one per cross-validation fold, per seed."""

    def __init__(self, config: TrainConfig):
        from ..encode import load_encoder
        from ..index.dense import resolve_device
        from ..resolve import load_topics

        self.config = config
        self.device = resolve_device(config.device, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
        self.topics = load_topics(config.topics)
        if config.topic_numbers is not None:
            from ..folds import only_topics

            self.topics = only_topics(self.topics, config.topic_numbers)
        self.records = list(self.topics)
        if config.uses_kd:
            data.check_manual_rewrites(self.topics.source, self.records)
        self.folds = self._folds() if config.cv else None
        self.train_folds = self._training_folds()
        self.teacher = load_encoder(config.teacher_spec, device=self.device)
        self.student = load_encoder(config.student_spec, device=self.device)
        if self.teacher.dim != self.student.dim:
            raise UserError(f"teacher {config.teacher_spec} gives {self.teacher.dim}-dimensional embeddings but the "
                            f"student {config.student_spec} {self.student.dim}-dimensional ones; they must match")
        card = self.student.card
        self.weights = LossWeights(**config.loss_weights(card))
        self.max_concat_length = min(config.max_concat_length or card.max_concat_length, self.student.max_tokens - 2)
        self.max_response_length = config.max_response_length or card.max_response_length
        self.truncate = config.truncate or card.truncate
        self.passages = None
        self.topic = {record.query_id: data.topic_of(record) for record in self.records}
        self.examples = self._examples()

    def inputs(self) -> list:
        """Files and folders training reads: the output must be none of them."""
        return training_inputs(self.config, self.topics)

    # -- inputs ------------------------------------------------------------------------------------------
    def _folds(self) -> dict:
        return fold_of_topic(self.topics, self.config.cv)

    def _training_folds(self) -> dict | None:
        """{topic: fold} deciding which topics train each fold's model: the evaluation folds, unless `fold_map`
        names another map; then one warning line says which held-out topics each model will have trained on."""
        from ..folds import seen_held_out_topics, training_folds

        if self.folds is None:
            return None
        chosen = training_folds(self.config.fold_map, self.topics.dataset_id, self.folds)
        seen = seen_held_out_topics(self.folds, chosen)
        if seen:
            logger.warning("fold map %s puts held-out topics into training: %s; their scores are not held out (as in "
                           "ConvDR's own multi-task CAsT-19 training)", self.config.fold_map,
                           "; ".join(f"fold {fold}'s model trains on {', '.join(map(str, topics))}"
                                     for fold, topics in sorted(seen.items())))
        return chosen

    def _examples(self) -> list[Example]:
        config = self.config
        records = self.records
        ranking_rows = {}
        if config.uses_ranking:
            records, ranking_rows = self._ranking(records)
        response_text = None
        if config.query in ("man_can", "auto_can") and not hasattr(records[0], "history_answers"):
            from ..resolve import response_lookup

            response_text = response_lookup(self.topics)
        examples = []
        for record in records:
            query = data.student_input(record, config.query, response_text)
            ids = self.student.query_token_ids(query, config.query, max_concat_length=self.max_concat_length,
                                              truncate=self.truncate, max_response_length=self.max_response_length)
            examples.append(Example(record.query_id, ids, passage_rows=ranking_rows.get(record.query_id)))
        if config.uses_kd or self.folds is not None:
            rewrites = [getattr(record, "manual_rewritten_utterance", None) for record in records]
            known = [i for i, text in enumerate(rewrites) if text]
            ids = [self.teacher.query_token_ids(rewrites[i], "manual") for i in known]
            targets = self.teacher.encode_ids(ids, tower="query", progress=True)
            for i, target in zip(known, targets):
                examples[i].target = target
        return examples

    def _ranking(self, records: list) -> tuple[list, dict[str, list[int]]]:
        """The records with ranking data, and their passage rows; encodes the passages with the teacher."""
        config = self.config
        examples = data.read_ranking_data(config.ranking_data)
        by_id = {record.query_id: record for record in records}
        examples = [example for example in examples if example.query_id in by_id]
        if not examples:
            raise UserError(f"ranking data {config.ranking_data} has none of the queries of {self.topics.source}")
        passages = data.ranking_passages(examples, config.collection or self.topics.source, config.ranking_data)
        doc_ids = sorted(passages)
        row = {doc_id: number for number, doc_id in enumerate(doc_ids)}
        self.passages = self.teacher.encode_passages([passages[doc_id].encoder_input() for doc_id in doc_ids],
                                                     progress=True)
        rows = {example.query_id: [row[example.positive]] + [row[doc_id] for doc_id in example.negatives]
                for example in examples}
        if len({len(value) for value in rows.values()}) > 1:
            raise UserError(f"ranking data {config.ranking_data}: every query needs the same number of negatives")
        return [by_id[example.query_id] for example in examples], rows

    # -- training ----------------------------------------------------------------------------------------
    def run(self, config: TrainConfig) -> dict:
        """Train and save one output (one seed): a model, or one per fold; returns its summary."""
        rank, _ = distributed()
        output = prepare_output(config.output, self.inputs(), config.overwrite, directory=True)
        started = time.time()
        lock = OutputLock(output) if rank == 0 else contextlib.nullcontext()
        with lock, (atomic_directory(output, inputs=self.inputs(), overwrite=config.overwrite) if rank == 0
                    else contextlib.nullcontext()) as folder:
            summaries = {model_name(fold): self.train_fold(config, fold, folder if rank == 0 else None)
                         for fold in fold_numbers(self.folds)}
            if rank == 0 and self.folds is not None:
                write_cv_summary(config, folder, summaries, self.topics.source, self.folds)
        return run_summary(output, len(self.examples), summaries, time.time() - started)

    def train_fold(self, config: TrainConfig, fold: int | None, folder: Path | None) -> dict:
        """Train a fresh student for one fold (None: on every query) and save it under `folder` (`fold-k`,
        or `folder` itself without cv; not saved when None); returns its metrics."""
        from ..encode import load_encoder

        self.student = load_encoder(config.student_spec, device=self.device)
        held_out = [] if fold is None else [e for e in self.examples if self.folds[self.topic[e.query_id]] == fold]
        train = [e for e in self.examples if fold is None or self.train_folds[self.topic[e.query_id]] != fold]
        what = "training" if fold is None else f"fold-{fold} ({fold + 1} of {len(set(self.folds.values()))})"
        result = self._train(config, train, held_out, f"seed {config.seed}, {what}")
        if folder is not None:
            self._save(config, folder if fold is None else folder / model_name(fold), result, fold)
        return result["metrics"]

    def _train(self, config: TrainConfig, train: list[Example], held_out: list[Example], description: str) -> dict:
        with_targets = [example for example in held_out if example.target is not None]
        before = mean_kd_loss(self.student, with_targets) if with_targets else None
        started = time.time()
        result = fit(self.student, train, epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
                     seed=config.seed, use_kd=config.uses_kd, use_ranking=config.uses_ranking,
                     passages=self.passages, weight_decay=config.weight_decay, weights=self.weights,
                     schedule=config.lr_schedule, description=description)
        metrics = {
            "train_queries": len(train),
            "heldout_queries": len(held_out),
            "steps": len(result.step_losses),
            "train_loss_first_epoch": round(result.epoch_losses[0], 8),
            "train_loss_last_epoch": round(result.epoch_losses[-1], 8),
            "seconds": round(time.time() - started, 1),
        }
        if with_targets:
            metrics["heldout_kd_mse_before"] = round(before, 8)
            metrics["heldout_kd_mse_after"] = round(mean_kd_loss(self.student, with_targets), 8)
        return {"metrics": metrics, "steps": result.step_losses, "train": train, "held_out": held_out}

    def _save(self, config: TrainConfig, folder: Path, result: dict, fold: int | None) -> None:
        topics = lambda examples: sorted({self.topic[e.query_id] for e in examples})  # noqa: E731
        loss = "+".join(name for name, used in (("kd", config.uses_kd), ("ranking", config.uses_ranking)) if used)
        training = {
            "method": "ConvDR few-shot (Yu et al., SIGIR 2021)",
            "topics": self.topics.source,
            "query": config.query,
            "loss": loss,
            "loss_weights": {"kd_weight": self.weights.kd_weight, "ranking_weight": self.weights.ranking_weight,
                             "temperature": self.weights.temperature},
            "teacher": str(config.teacher_spec),
            "student_init": str(config.student_spec),
            "ranking_data": config.ranking_data,
            "optimizer": {"name": "AdamW", "lr": config.lr, "weight_decay": config.weight_decay,
                          "max_grad_norm": 1.0, "schedule": config.lr_schedule},
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "seed": config.seed,
            "max_concat_length": self.max_concat_length,
            "max_response_length": self.max_response_length,
            "truncate": self.truncate,
            "fold": fold,
            **({} if self.config.fold_map == "convdr" else {"fold_map": self.config.fold_map}),
            "folds": None if self.folds is None else {
                f"fold-{number}": sorted(t for t, f in self.folds.items() if f == number)
                for number in sorted(set(self.folds.values()))},
            "train_topics": topics(result["train"]),
            "heldout_topics": topics(result["held_out"]),
            "metrics": result["metrics"],
            "command": config.command,
        }
        name = Path(config.output).name + ("" if fold is None else f"-fold-{fold}")
        description = (f"ConvDR {loss} student ({config.query}) trained on {self.topics.source}"
                       + ("" if fold is None else f", cross-validation fold {fold} held out"))
        self.student.save(folder, overwrite=True, name=name, description=description, training=training,
                          max_concat_length=self.max_concat_length, max_response_length=self.max_response_length,
                          truncate=self.truncate)
        with atomic_output(folder / LOSS_LOG, overwrite=True) as handle:
            handle.write("step\tloss\n")
            handle.writelines(f"{step}\t{loss:.8g}\n" for step, loss in enumerate(result["steps"], 1))



def training_inputs(config: TrainConfig, topics) -> list:
    """Files and folders a training run reads: its output must be none of them."""
    return [path for path in (config.teacher, config.student_init, config.ranking_data, config.collection,
                              topics.path) if path and Path(path).exists()]


def fold_of_topic(topics, cv: int) -> dict:
    """{topic: fold} from the shared fold rule; checks `cv` against the topics and the rule."""
    from ..folds import fold_assignment

    assignment = fold_assignment(topics)
    count = len(set(assignment.values()))
    if len(assignment) < cv:
        raise UserError(f"cv {cv}: {topics.source} has only {len(assignment)} topics, fewer than folds")
    if count != cv:
        raise UserError(f"cv {cv}: the fold rule for {topics.source} splits its {len(assignment)} "
                        f"topics into {count} folds (CAsT-19: 10 topics per fold; CAsT-20: (topic-81)//5)")
    return assignment


def fold_numbers(folds: dict | None) -> list:
    """The folds to train, in order: [None] (one model on every query) without cross-validation."""
    return [None] if folds is None else sorted(set(folds.values()))


def model_name(fold: int | None) -> str:
    return "model" if fold is None else f"fold-{fold}"


def run_summary(output, queries: int, summaries: dict, seconds: float) -> dict:
    """What `train` returns for one output (one seed)."""
    last = float(np.mean([metrics["train_loss_last_epoch"] for metrics in summaries.values()]))
    return {"output": str(output), "queries": queries, "models": len(summaries), "final_epoch_loss": last,
            "seconds": round(seconds, 1)}


def write_cv_summary(config: TrainConfig, folder: Path, summaries: dict, topics_source: str, folds: dict) -> None:
    """`cv.yaml`: the folds' metrics and topics, and how to search with them."""
    import yaml

    summary = {"topics": topics_source, "folds": summaries,
               "fold_topics": {f"fold-{n}": sorted(t for t, f in folds.items() if f == n)
                               for n in sorted(set(folds.values()))},
               "search": f"python -m convdr_pyserini.search --cv {config.output} --topics {topics_source} "
                         f"--query {config.query} --index <dense index of the teacher's passages> ..."}
    with atomic_output(folder / CV_SUMMARY, overwrite=True) as handle:
        yaml.safe_dump(summary, handle, sort_keys=False)
