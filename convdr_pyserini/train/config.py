"""`TrainConfig`: everything a ConvDR training run depends on, checked before any work.

The loss is `kd_weight * KD + ranking_weight * ranking`, with the ranking cross-entropy over inner products
divided by `temperature`. Unset, they come from the student's encoder card (`training_defaults`), else from
ConvDR (temperature 1, ranking weight 1), which is right for ConvDR's unnormalised ANCE embeddings; an unset
KD weight is 1 / temperature**2 when the ranking term is used (ConvDR's MSE + CE applied to the embedding the
scores are computed from, q / temperature; exactly ConvDR's loss at temperature 1), and 1 for KD alone.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

LOSSES = ("kd", "ranking", "kd+ranking")
QUERY_MODES = ("no_res", "man_can", "auto_can")
TRUNCATIONS = ("convdr", "keep-current")
LR_SCHEDULES = ("linear", "constant")  # ConvDR: linear decay to 0, no warm-up
CONVDR_LOSS_DEFAULTS = {"ranking_weight": 1.0, "temperature": 1.0}


class LossChoice:
    """What a config's `loss` ("kd", "ranking", "kd+ranking", ...) asks for."""

    loss: str

    @property
    def uses_kd(self) -> bool:
        return "kd" in self.loss

    @property
    def uses_ranking(self) -> bool:
        return "ranking" in self.loss


@dataclass
class TrainConfig(LossChoice):
    """A ConvDR few-shot training run (see `convdr_pyserini.train.train`).

    `topics` are the training topics (an ir_datasets id or a topics file with manual rewrites); `teacher` is
    the frozen model whose embeddings of the manual rewrites are the KD targets (and which embeds the ranking
    passages); `student_init` the student's initial weights (default: the teacher). With `cv` K, one model per
    fold is trained on the other folds' topics (OUTPUT/fold-0 ... fold-{K-1}). With `seeds`, the whole run is
    repeated once per seed into OUTPUT/seed-<s>.
    """

    topics: str
    output: str
    teacher: str | None = None
    student_init: str | None = None
    query: str = "no_res"
    loss: str = "kd"
    ranking_data: str | None = None
    collection: str | None = None
    epochs: int = 1
    lr: float = 1e-5
    lr_schedule: str = "linear"
    weight_decay: float = 0.0
    batch_size: int = 4
    max_concat_length: int | None = None
    max_response_length: int | None = None
    truncate: str | None = None
    cv: int | None = None
    fold_map: str = "convdr"  # which topics train each fold's model (convdr_pyserini.folds.FOLD_MAPS)
    topic_numbers: list[int] | None = None
    seed: int = 42
    seeds: list[int] | None = None
    kd_weight: float | None = None
    ranking_weight: float | None = None
    temperature: float | None = None
    device: str = "cpu"
    overwrite: bool = False
    command: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.topics, self.output = str(self.topics), str(self.output)
        if self.loss not in LOSSES:
            raise UserError(f"loss {self.loss!r} is not one of {', '.join(LOSSES)}")
        if self.query not in QUERY_MODES:
            raise UserError(f"query {self.query!r} is not one of {', '.join(QUERY_MODES)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"lr_schedule {self.lr_schedule!r} is not one of {', '.join(LR_SCHEDULES)}")
        if self.truncate is not None and self.truncate not in TRUNCATIONS:
            raise UserError(f"truncate {self.truncate!r} is not one of {', '.join(TRUNCATIONS)}")
        _positive_int(self, "epochs", "batch_size")
        _positive_int(self, *(name for name in ("max_concat_length", "max_response_length", "cv")
                              if getattr(self, name) is not None))
        _finite(self, "lr", positive=True)
        _finite(self, "weight_decay", minimum=0.0)
        for name in ("kd_weight", "ranking_weight"):
            if getattr(self, name) is not None:
                _finite(self, name, minimum=0.0)
        if self.temperature is not None:
            _finite(self, "temperature", positive=True)
        if self.seeds is not None:
            if not self.seeds:
                raise UserError("seeds: give at least one seed")
            if len(set(self.seeds)) != len(self.seeds):
                repeated = sorted({seed for seed in self.seeds if self.seeds.count(seed) > 1})
                raise UserError(f"seeds: {repeated[0]} is given more than once")
            for seed in self.seeds:
                if not isinstance(seed, int) or isinstance(seed, bool):
                    raise UserError(f"seeds: {seed!r} is not an integer")
        if self.topic_numbers is not None and (not self.topic_numbers or not all(
                isinstance(topic, int) and not isinstance(topic, bool) for topic in self.topic_numbers)):
            raise UserError(f"topic_numbers must be a non-empty list of topic numbers, got {self.topic_numbers!r}")
        from ..folds import FOLD_MAPS

        if self.fold_map not in FOLD_MAPS:
            raise UserError(f"fold_map {self.fold_map!r} is not one of {', '.join(FOLD_MAPS)}")
        if self.fold_map != "convdr" and not self.cv:
            raise UserError(f"fold_map {self.fold_map} applies to cross-validation; give cv")
        if "ranking" in self.loss and not self.ranking_data:
            raise UserError(f"loss {self.loss} needs ranking data (write it with `train negatives`)")
        if not (self.teacher or self.student_init):
            raise UserError("give a teacher (and optionally the student's initial weights)")

    @property
    def student_spec(self) -> str:
        return self.student_init or self.teacher

    @property
    def teacher_spec(self) -> str:
        return self.teacher or self.student_init

    def loss_weights(self, card) -> dict[str, float]:
        """kd_weight, ranking_weight and temperature: given, else the card's `training_defaults`, else the rule
        in this module's docstring (ConvDR's values for unnormalised encoders)."""
        defaults = {**CONVDR_LOSS_DEFAULTS, **(getattr(card, "training_defaults", None) or {})}
        chosen = {name: float(getattr(self, name) if getattr(self, name) is not None else defaults[name])
                  for name in CONVDR_LOSS_DEFAULTS}
        if self.kd_weight is not None:
            chosen["kd_weight"] = float(self.kd_weight)
        elif "kd_weight" in defaults:
            chosen["kd_weight"] = float(defaults["kd_weight"])
        else:
            chosen["kd_weight"] = round(1.0 / chosen["temperature"] ** 2, 9) if self.uses_ranking else 1.0
        return chosen

    def for_seed(self, seed: int) -> "TrainConfig":
        """This config for one seed, writing OUTPUT/seed-<seed>."""
        return dataclasses.replace(self, seed=seed, seeds=None, output=str(Path(self.output) / f"seed-{seed}"))

    def to_mapping(self) -> dict:
        """The settings, as training records compare them. A setting added after models were recorded is left out at
        its default, so that those records still match."""
        return {key: value for key, value in dataclasses.asdict(self).items() if key not in ("command", "overwrite")
                and not (key in ADDED_LATER and value == ADDED_LATER[key])}


ADDED_LATER = {"fold_map": "convdr"}


def _positive_int(config: TrainConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"{name} must be a positive integer, got {value!r}")


def _finite(config: TrainConfig, name: str, positive: bool = False, minimum: float | None = None) -> None:
    value = getattr(config, name)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise UserError(f"{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise UserError(f"{name} must be positive, got {value!r}")
    if minimum is not None and value < minimum:
        raise UserError(f"{name} must be >= {minimum:g}, got {value!r}")
