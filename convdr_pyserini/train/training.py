"""The training job behind `python -m convdr_pyserini.train`: inputs, teacher targets, folds, saving.

The teacher's embeddings (of the manual rewrites, and of the ranking passages) are computed once; each
fold then starts a fresh student from `--student-init` and trains on the other folds' topics. The fold
rule is `convdr_pyserini.folds`, the one that `search --cv` uses to pick each topic's model.
"""
from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import numpy as np

from .._cli import atomic_directory, atomic_output
from ..errors import UserError
from . import data
from .loop import Example, distributed, fit, mean_kd_loss

CV_SUMMARY = "cv.yaml"
LOSS_LOG = "losses.tsv"


class Trainer:
    """Builds the examples once and trains one model, or one per cross-validation fold."""

    def __init__(self, args: argparse.Namespace, use_kd: bool, use_ranking: bool):
        import os

        from ..datasets import load
        from ..encode import load_encoder
        from ..index.dense import resolve_device

        self.device = resolve_device(args.device, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
        self.args = args
        self.use_kd = use_kd
        self.use_ranking = use_ranking
        self.dataset = load(args.topics)
        self.records = list(self.dataset.queries_iter())
        if not self.records:
            raise UserError(f"{args.topics} has no queries")
        if use_kd:
            data.check_manual_rewrites(args.topics, self.records)
        self.folds = self._folds() if args.cv else None
        self.student_spec = args.student_init or args.teacher
        self.teacher_spec = args.teacher or args.student_init
        self.teacher = load_encoder(self.teacher_spec, device=self.device)
        self.student = load_encoder(self.student_spec, device=self.device)
        if self.teacher.dim != self.student.dim:
            raise UserError(f"teacher {self.teacher_spec} gives {self.teacher.dim}-dimensional embeddings but the "
                            f"student {self.student_spec} {self.student.dim}-dimensional ones; they must match")
        card = self.student.card
        self.max_concat_length = min(args.max_concat_length or card.max_concat_length, self.student.max_tokens - 2)
        self.truncate = args.truncate or card.truncate
        self.passages = None
        self.topic = {record.query_id: data.topic_of(record) for record in self.records}
        self.examples = self._examples()

    # -- inputs ------------------------------------------------------------------------------------------
    def _folds(self) -> dict:
        """{topic: fold} from the shared fold rule; checks --cv against the topics and the rule."""
        from ..folds import folds

        if getattr(self.records[0], "topic_number", None) is None:
            raise UserError(f"--cv splits by CAsT topic; {self.args.topics} has no topic numbers")
        topics = list(dict.fromkeys(record.topic_number for record in self.records))
        if len(topics) < self.args.cv:
            raise UserError(f"--cv {self.args.cv}: {self.args.topics} has only {len(topics)} topics, fewer than folds")
        assignment = folds(self.args.topics, topics)
        count = len(set(assignment.values()))
        if count != self.args.cv:
            raise UserError(f"--cv {self.args.cv}: the fold rule for {self.args.topics} splits its {len(topics)} "
                            f"topics into {count} folds (CAsT-19: 10 topics per fold; CAsT-20: (topic-81)//5)")
        return assignment

    def _examples(self) -> list[Example]:
        records = self.records
        ranking_rows = {}
        if self.use_ranking:
            records, ranking_rows = self._ranking(records)
        response_text = None
        if self.args.query in ("man_can", "auto_can") and not hasattr(records[0], "history_answers"):
            store = self.dataset.docs_store()
            response_text = lambda doc_id: store.get(doc_id).text  # noqa: E731
        examples = []
        for record in records:
            query = data.student_input(record, self.args.query, response_text)
            ids = self.student.query_token_ids(query, self.args.query, max_concat_length=self.max_concat_length,
                                              truncate=self.truncate)
            examples.append(Example(record.query_id, ids, passage_rows=ranking_rows.get(record.query_id)))
        if self.use_kd or self.folds is not None:
            rewrites = [getattr(record, "manual_rewritten_utterance", None) for record in records]
            known = [i for i, text in enumerate(rewrites) if text]
            ids = [self.teacher.query_token_ids(rewrites[i], "manual") for i in known]
            targets = self.teacher.encode_ids(ids, tower="query", progress=True)
            for i, target in zip(known, targets):
                examples[i].target = target
        return examples

    def _ranking(self, records: list) -> tuple[list, dict[str, list[int]]]:
        """The records with ranking data, and their passage rows; encodes the passages with the teacher."""
        examples = data.read_ranking_data(self.args.ranking_data)
        by_id = {record.query_id: record for record in records}
        examples = [example for example in examples if example.query_id in by_id]
        if not examples:
            raise UserError(f"ranking data {self.args.ranking_data} has none of the queries of {self.args.topics}")
        texts = data.ranking_passages(examples, self.args.collection or self.args.topics, self.args.ranking_data)
        doc_ids = sorted(texts)
        row = {doc_id: number for number, doc_id in enumerate(doc_ids)}
        self.passages = self.teacher.encode_passages([texts[doc_id] for doc_id in doc_ids], progress=True)
        rows = {example.query_id: [row[example.positive]] + [row[doc_id] for doc_id in example.negatives]
                for example in examples}
        if len({len(value) for value in rows.values()}) > 1:
            raise UserError(f"ranking data {self.args.ranking_data}: every query needs the same number of negatives")
        return [by_id[example.query_id] for example in examples], rows

    # -- training ----------------------------------------------------------------------------------------
    def run(self, output: Path) -> str:
        """Train and save; returns a one-line summary."""
        rank, _ = distributed()
        if self.folds is None:
            result = self._train(self.examples, [], "training")
            if rank == 0:
                with atomic_directory(output) as folder:
                    self._save(folder, result, fold=None)
            return f"{len(self.examples)} queries, final epoch loss {result['metrics']['train_loss_last_epoch']:.4g}"
        fold_numbers = sorted(set(self.folds.values()))
        summaries = {}
        with atomic_directory(output) if rank == 0 else contextlib.nullcontext() as folder:
            for fold in fold_numbers:
                if fold > 0:
                    from ..encode import load_encoder

                    self.student = load_encoder(self.student_spec, device=self.device)
                held_out = [e for e in self.examples if self.folds[self.topic[e.query_id]] == fold]
                train = [e for e in self.examples if self.folds[self.topic[e.query_id]] != fold]
                result = self._train(train, held_out, f"fold-{fold} ({fold + 1} of {len(fold_numbers)})")
                if rank == 0:
                    self._save(folder / f"fold-{fold}", result, fold=fold)
                summaries[f"fold-{fold}"] = result["metrics"]
            if rank == 0:
                self._write_cv_summary(folder, summaries)
        last = np.mean([metrics["train_loss_last_epoch"] for metrics in summaries.values()])
        return f"{len(fold_numbers)} folds of {len(self.examples)} queries, mean final epoch loss {last:.4g}"

    def _train(self, train: list[Example], held_out: list[Example], description: str) -> dict:
        args = self.args
        with_targets = [example for example in held_out if example.target is not None]
        before = mean_kd_loss(self.student, with_targets) if with_targets else None
        started = time.time()
        result = fit(self.student, train, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                     seed=args.seed, use_kd=self.use_kd, use_ranking=self.use_ranking, passages=self.passages,
                     weight_decay=args.weight_decay, description=description)
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

    def _save(self, folder: Path, result: dict, fold: int | None) -> None:
        args = self.args
        topics = lambda examples: sorted({self.topic[e.query_id] for e in examples})  # noqa: E731
        training = {
            "method": "ConvDR few-shot (Yu et al., SIGIR 2021)",
            "topics": args.topics,
            "query": args.query,
            "loss": "+".join(name for name, used in (("kd", self.use_kd), ("ranking", self.use_ranking)) if used),
            "teacher": str(self.teacher_spec),
            "student_init": str(self.student_spec),
            "ranking_data": args.ranking_data,
            "optimizer": {"name": "AdamW", "lr": args.lr, "weight_decay": args.weight_decay, "max_grad_norm": 1.0,
                          "schedule": "constant"},
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "max_concat_length": self.max_concat_length,
            "truncate": self.truncate,
            "fold": fold,
            "folds": None if self.folds is None else {
                f"fold-{number}": sorted(t for t, f in self.folds.items() if f == number)
                for number in sorted(set(self.folds.values()))},
            "train_topics": topics(result["train"]),
            "heldout_topics": topics(result["held_out"]),
            "metrics": result["metrics"],
        }
        name = Path(args.output).name + ("" if fold is None else f"-fold-{fold}")
        description = (f"ConvDR {training['loss']} student ({args.query}) trained on {args.topics}"
                       + ("" if fold is None else f", cross-validation fold {fold} held out"))
        self.student.save(folder, name=name, description=description, training=training,
                          max_concat_length=self.max_concat_length, truncate=self.truncate)
        with atomic_output(folder / LOSS_LOG) as handle:
            handle.write("step\tloss\n")
            handle.writelines(f"{step}\t{loss:.8g}\n" for step, loss in enumerate(result["steps"], 1))

    def _write_cv_summary(self, folder: Path, summaries: dict) -> None:
        import yaml

        summary = {"topics": self.args.topics, "folds": summaries,
                   "fold_topics": {f"fold-{n}": sorted(t for t, f in self.folds.items() if f == n)
                                   for n in sorted(set(self.folds.values()))},
                   "search": f"python -m convdr_pyserini.search --cv {self.args.output} --topics {self.args.topics} "
                             f"--query {self.args.query} --index <dense index of the teacher's passages> ..."}
        with atomic_output(folder / CV_SUMMARY) as handle:
            yaml.safe_dump(summary, handle, sort_keys=False)
