"""Cross-encoder checkpoints: Hugging Face sequence-classification folders and OpenMatch's BERT reranker.

* Hugging Face (`*ForSequenceClassification`, e.g. BERT, RoBERTa, MiniLM cross-encoders): a folder with
  `config.json`, weights and tokenizer. A 1-logit head scores a pair by its logit (sentence-transformers'
  MS MARCO cross-encoders); a 2-logit head (monoBERT) by the log-probability of the relevant class (index 1).
* OpenMatch (`OpenMatch/models/bert.py`, the reranker ConvDR's README hands its runs to): a `torch.save`d
  state dict of a module holding `_model` (the transformer) and `_dense` (a linear layer on the [CLS] vector:
  1 output for the `ranking` task, 2 for `classification`), saved without the pretrained model's config. Give
  the state-dict file placed in (or beside) a folder with that model's `config.json` and tokenizer.

A dense encoder (bi-encoder) checkpoint has no head to score a pair and is refused, saying so.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from ..encode.cards import CARD_FILE, WEIGHT_FILES
from ..encode.models import read_state_dict
from ..errors import UserError

TRAINING_RECORD = "reranker.json"  # written by `rerank train` beside each model it saves

OPENMATCH_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
BI_ENCODER_FILES = (CARD_FILE, "modules.json")  # an encoder card; a sentence-transformers bi-encoder


class OpenMatchBert(nn.Module):
    """OpenMatch's `Bert` in `cls` mode: transformer -> [CLS] vector -> `_dense` (1 or 2 outputs)."""

    def __init__(self, config, outputs: int):
        from transformers import AutoModel

        super().__init__()
        self._model = AutoModel.from_config(config)
        self._dense = nn.Linear(config.hidden_size, outputs)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, output_hidden_states=False):
        hidden = self._model(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state
        return self._dense(hidden[:, 0]), hidden[:, 0]


class CrossEncoder:
    """A loaded cross-encoder: tokenizer, model, and how its logits become one relevance score per pair."""

    def __init__(self, model: nn.Module, tokenizer, checkpoint_format: str, labels: int, source: str,
                 device: str = "cpu", trained_max_length: int | None = None):
        from ..encode.models import _max_tokens

        self.model = model
        self.trained_max_length = trained_max_length  # tokens per pair it was trained on (`rerank train` models)
        self.tokenizer = tokenizer
        self.format = checkpoint_format
        self.labels = labels
        self.source = source
        self.device = torch.device(device)
        self.config = model._model.config if checkpoint_format == "openmatch" else model.config
        self.max_tokens = _max_tokens(self.config)
        self.uses_token_types = self.config.type_vocab_size > 1 if hasattr(self.config, "type_vocab_size") else False
        model.to(self.device)
        model.eval()

    def forward(self, input_ids, attention_mask, token_type_ids=None, with_cls: bool = True):
        """(logits `(n, labels)`, [CLS] vectors `(n, hidden)` of the last layer or None), with gradients."""
        if not self.uses_token_types:
            token_type_ids = None
        if self.format == "openmatch":
            return self.model(input_ids, attention_mask, token_type_ids)
        output = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            output_hidden_states=with_cls)
        return output.logits, output.hidden_states[-1][:, 0] if with_cls else None

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """One score per pair: the logit (1-logit head), else the log-probability of the relevant class."""
        if self.labels == 1:
            return logits[:, 0]
        return torch.log_softmax(logits.float(), dim=-1)[:, 1]

    def describe(self) -> dict:
        scoring = "logit" if self.labels == 1 else "log-probability of class 1"
        return {"model": self.source, "format": self.format, "labels": self.labels, "scoring": scoring,
                "model_type": self.config.model_type}

    def save(self, folder: str | os.PathLike, overwrite: bool = False, extra: dict | None = None) -> Path:
        """Write a Hugging Face sequence-classification folder (OpenMatch models are converted), atomically;
        `extra` goes to `reranker.json` beside it (how it was trained)."""
        from .._progress import library_bars_on_terminal_only
        from ..io.atomic import atomic_directory

        if self.format != "huggingface":
            raise UserError(f"{self.source}: only Hugging Face cross-encoders are saved (this one is {self.format})")
        folder = Path(folder)
        model = self.model
        with atomic_directory(folder, overwrite=overwrite) as tmp, library_bars_on_terminal_only():
            model.save_pretrained(str(tmp), safe_serialization=True)
            self.tokenizer.save_pretrained(str(tmp))
            if extra is not None:
                (tmp / TRAINING_RECORD).write_text(json.dumps(extra, indent=2, sort_keys=True, default=str) + "\n",
                                                   encoding="utf-8")
        return folder


def load_cross_encoder(location: str | os.PathLike, device: str = "cpu") -> CrossEncoder:
    """A cross-encoder from a Hugging Face folder or an OpenMatch state-dict file (or folder holding one)."""
    from ..encode.models import check_device

    check_device(device)
    path = Path(location)
    if not path.exists():
        raise UserError(f"reranker model {location} does not exist (give a model folder or an OpenMatch checkpoint)")
    folder = path if path.is_dir() else path.parent
    _refuse_bi_encoder(folder, path)
    if path.is_file() or _openmatch_file(folder) is not None:
        return _load_openmatch(path if path.is_file() else _openmatch_file(folder), folder, device)
    return _load_huggingface(folder, device)


def _refuse_bi_encoder(folder: Path, path: Path) -> None:
    for name in BI_ENCODER_FILES:
        if (folder / name).is_file() and not _classifier_config(folder):
            raise UserError(f"reranker model {path} is a bi-encoder (dense encoder: {folder / name}): it embeds queries "
                            "and passages apart and has no classification head to score a query-passage pair; give a "
                            "cross-encoder (a sequence-classification model folder or an OpenMatch reranker)")


def _classifier_config(folder: Path) -> bool:
    config = folder / "config.json"
    if not config.is_file():
        return False
    architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    return any(name.endswith("ForSequenceClassification") for name in architectures)


def _openmatch_file(folder: Path) -> Path | None:
    found = sorted(p for p in folder.iterdir() if p.suffix in OPENMATCH_SUFFIXES and p.name not in WEIGHT_FILES)
    return found[0] if len(found) == 1 and not _classifier_config(folder) else None


def _load_huggingface(folder: Path, device: str) -> CrossEncoder:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if not (folder / "config.json").is_file():
        raise UserError(f"reranker model {folder} has no config.json (a Hugging Face folder) nor an OpenMatch "
                        f"checkpoint ({', '.join('*' + s for s in OPENMATCH_SUFFIXES)})")
    if not _classifier_config(folder):
        raise UserError(f"reranker model {folder} has no classification head (config.json names no "
                        "*ForSequenceClassification architecture); a cross-encoder scores a pair with one")
    config = AutoConfig.from_pretrained(str(folder))
    if config.num_labels not in (1, 2):
        raise UserError(f"reranker model {folder} has a {config.num_labels}-label head; a reranker has 1 (a score) "
                        "or 2 (not relevant, relevant)")
    state = read_state_dict(folder)
    if not any(key.startswith(("classifier.", "score.")) for key in state):
        raise UserError(f"reranker model {folder}: its weights hold no classification head (classifier.*)")
    model = AutoModelForSequenceClassification.from_config(config)
    expected = model.state_dict()
    missing = sorted(key for key in expected if key not in state and not key.endswith("position_ids"))
    if missing:
        raise UserError(f"reranker model {folder}: its weights lack {', '.join(missing[:3])} (not a "
                        f"{type(model).__name__} checkpoint)")
    model.load_state_dict({key: value.float() for key, value in state.items() if key in expected}, strict=False)
    return CrossEncoder(model, _tokenizer(folder), "huggingface", config.num_labels, str(folder), device,
                        _trained_max_length(folder))


def read_training_record(folder: Path) -> dict | None:
    """The `reranker.json` that `rerank train` saves beside a model (how it was trained), None when there is none."""
    from ..io.text import read_json

    record = folder / TRAINING_RECORD
    return read_json(record) if record.is_file() else None


def _trained_max_length(folder: Path) -> int | None:
    """The pair length a `rerank train` model was trained with (its `reranker.json`), None for other models."""
    record = read_training_record(folder)
    if record is None:
        return None
    try:
        value = record["config"]["max_length"]
    except (KeyError, TypeError):
        raise UserError(f"{folder / TRAINING_RECORD}: not a training record of `rerank train` (no config.max_length)") \
            from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{folder / TRAINING_RECORD}: config.max_length {value!r} is not a positive integer")
    return value


def _load_openmatch(file: Path, folder: Path, device: str) -> CrossEncoder:
    from transformers import AutoConfig

    state = read_state_dict(file)
    if not any(key.startswith("_model.") for key in state) or "_dense.weight" not in state:
        hint = " (a dense encoder's weights)" if any(key.startswith(("embeddingHead.", "question_model."))
                                                    for key in state) else ""
        raise UserError(f"reranker checkpoint {file} is not an OpenMatch reranker{hint}: it lacks the _model.* "
                        "transformer and the _dense classification head")
    if not (folder / "config.json").is_file():
        raise UserError(f"OpenMatch checkpoint {file}: put it in (or beside) a folder with the pretrained model's "
                        "config.json and tokenizer (OpenMatch's --pretrained)")
    config = AutoConfig.from_pretrained(str(folder))
    outputs = int(state["_dense.weight"].shape[0])
    if outputs not in (1, 2):
        raise UserError(f"OpenMatch checkpoint {file}: _dense has {outputs} outputs, expected 1 or 2")
    model = OpenMatchBert(config, outputs)
    expected = set(model.state_dict())
    unexpected = sorted(k for k in state if k not in expected and not k.endswith("position_ids"))
    missing = sorted(expected - set(state) - {k for k in expected if k.endswith("position_ids")})
    if unexpected or missing:
        raise UserError(f"OpenMatch checkpoint {file} does not fit the model of {folder / 'config.json'}: "
                        f"unexpected {unexpected[:3]}, missing {missing[:3]}")
    model.load_state_dict({k: v.float() for k, v in state.items() if k in expected}, strict=False)
    return CrossEncoder(model, _tokenizer(folder), "openmatch", outputs, str(file), device)


def _tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as error:
        raise UserError(f"reranker model {folder}: cannot load the tokenizer ({str(error).splitlines()[0][:160]})") \
            from None


def cross_encoder_from_encoder(location: str | os.PathLike, seed: int, device: str = "cpu") -> CrossEncoder:
    """A 1-logit cross-encoder initialised from a BERT-style encoder's weights (e.g. the `minilm` card's
    all-MiniLM-L6-v2 folder) with a fresh classification head drawn with `seed`."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from ..encode.cards import resolve_card

    folder = Path(resolve_card(str(location)).weights_location()) if not Path(location).is_dir() else Path(location)
    config = AutoConfig.from_pretrained(str(folder), num_labels=1)
    config.architectures = [f"{type(config).__name__.removesuffix('Config')}ForSequenceClassification"]
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    prefix = model.base_model_prefix
    state = {f"{prefix}.{key}": value.float() for key, value in read_state_dict(folder).items()}
    missing, _ = model.load_state_dict(state, strict=False)
    lacking = [key for key in missing if not key.startswith(("classifier.", "score.")) and "position_ids" not in key]
    if lacking:
        raise UserError(f"cannot initialise a cross-encoder from {folder}: its weights lack {', '.join(lacking[:3])}")
    return CrossEncoder(model, _tokenizer(folder), "huggingface", 1, str(folder), device)
