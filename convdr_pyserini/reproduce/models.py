"""Training a matrix's models, reusing a finished one when its card records the same complete configuration."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ..errors import UserError

logger = logging.getLogger(__name__)


def train_or_reuse(settings: dict, output: Path, seed: int, where: str) -> float:
    """Train `settings` (TrainConfig fields) for `seed` into `output`, unless the model there records the same
    complete configuration (defaults included, so a changed default retrains); returns its training seconds."""
    from ..train import TrainConfig, train

    try:
        config = TrainConfig(**settings, output=str(output), seed=seed, overwrite=True)
    except TypeError as error:
        raise UserError(f"{where}: {error}") from None
    config.command = json.dumps(config.to_mapping(), sort_keys=True)
    if _trained_with(output) != config.command:
        logger.info("[%s, seed %d] training into %s", where, seed, output)
        train(config)
    else:
        logger.info("[%s, seed %d] reusing %s", where, seed, output)
    return _training_seconds(output)


def _model_cards(folder: Path) -> list[Path]:
    return sorted(folder.glob("encoder.yaml")) + sorted(folder.glob("fold-*/encoder.yaml"))


def _trained_with(folder: Path) -> str | None:
    """The training record (`command`) of a finished model folder, or None."""
    import yaml

    cards = _model_cards(folder)
    if not cards:
        return None
    try:
        training = (yaml.safe_load(cards[0].read_text(encoding="utf-8")) or {}).get("training") or {}
    except (OSError, yaml.YAMLError):
        return None
    return training.get("command")


def _training_seconds(folder: Path) -> float:
    """Seconds spent training the models of a folder, as their cards record."""
    import yaml

    total = 0.0
    for card in _model_cards(folder):
        training = (yaml.safe_load(card.read_text(encoding="utf-8")) or {}).get("training") or {}
        total += float((training.get("metrics") or {}).get("seconds", 0.0))
    return total
