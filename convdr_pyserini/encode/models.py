"""Our own dense encoder models and their loaders (transformers 5; imported only when encoding).

* `rdot_nll` (ANCE, ConvDR's `RobertaDot_NLL_LN`): RoBERTa, first token, `Linear`, `LayerNorm`; one tower.
* `dpr` (ConvDR's `BiEncoder` on OR-QuAC): BERT `[CLS]`, separate question and context towers.
* `mean`: mean pooling over the attention mask, sentence-transformers style, optionally L2-normalised.

Checkpoints: Hugging Face folders (`model.safetensors` or `pytorch_model.bin` + `config.json`), the original
ANCE/ConvDR transformers 2.x folders (`roberta.*`, `embeddingHead.*`, `norm.*`, unused `classifier.*`,
ConvDR's added `<response>` token with resized embeddings), and ConvDR's OR-QuAC `.cp` files (a DPR
`CheckpointState` whose `model_dict` holds `question_model.*` and `ctx_model.*`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .cards import CARD_FILE, WEIGHT_FILES, EncoderCard, is_sentence_transformer, resolve_card, \
    sentence_transformer_modules
from .inputs import CONVERSATIONAL_MODES, SINGLE_MODES, InputBuilder, query_parts

TRUST_ENV = "CONVDR_PYSERINI_TRUST_CHECKPOINTS"  # allow full unpickling of .bin/.cp files
# checkpoint keys that are known and deliberately unused
UNUSED_KEYS = {
    "rdot_nll": re.compile(r"^(classifier\.|roberta\.pooler\.|.*position_ids$)"),
    "dpr": re.compile(r"^.*position_ids$"),
    "mean": re.compile(r"^(pooler\.|.*position_ids$)"),
}


class AnceModel(nn.Module):
    """ConvDR's `RobertaDot_NLL_LN`: RoBERTa -> first token -> Linear -> LayerNorm."""

    def __init__(self, config, dimension: int = 768):
        from transformers import RobertaModel

        super().__init__()
        self.roberta = RobertaModel(config, add_pooling_layer=False)
        self.embeddingHead = nn.Linear(config.hidden_size, dimension)  # noqa: N815  (checkpoint key names)
        self.norm = nn.LayerNorm(dimension)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.roberta(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.norm(self.embeddingHead(hidden[:, 0]))


class DprModel(nn.Module):
    """ConvDR's `BiEncoder`: a question BERT and a context BERT (the state dict's two halves)."""

    def __init__(self, config):
        from transformers import BertModel

        super().__init__()
        self.question_model = BertModel(config)
        self.ctx_model = BertModel(config)


class PooledTower(nn.Module):
    """A transformer backbone followed by `[CLS]` or masked-mean pooling, optionally L2-normalised."""

    def __init__(self, backbone: nn.Module, pooling: str, normalize: bool = False):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.normalize = normalize

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, p=2, dim=-1) if self.normalize else pooled


class DenseEncoder:
    """A loaded encoder: tokenizer, query and passage towers, and batched encoding to float32 arrays."""

    def __init__(self, card: EncoderCard, model: nn.Module, tokenizer, device: str = "cpu", fp16: bool = False,
                 bf16: bool = False):
        self.card = card
        self.model = model  # the whole checkpoint (both towers for dpr); what `save` writes
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        if card.architecture == "rdot_nll":
            self.query_model = self.passage_model = model
            backbone = model.roberta
        elif card.architecture == "dpr":
            self.query_model = PooledTower(model.question_model, "cls")
            self.passage_model = PooledTower(model.ctx_model, "cls")
            backbone = model.question_model
        else:
            self.query_model = self.passage_model = PooledTower(model, "mean", card.normalize)
            backbone = model
        self.config = backbone.config
        self.inputs = InputBuilder(tokenizer, lowercase=card.lowercase, response_token=card.response_token)
        self.max_tokens = _max_tokens(self.config)
        model.to(self.device)
        if fp16:
            model.half()
        elif bf16:
            model.to(torch.bfloat16)
        model.eval()
        self.dim = int(self._probe_dimension())

    def _probe_dimension(self) -> int:
        ids = torch.tensor([[self.inputs.cls_id, self.inputs.sep_id]], device=self.device)
        with torch.inference_mode():
            return self.query_model(ids, torch.ones_like(ids)).shape[-1]

    # -- tokenization ------------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence, max_length: int) -> list[list[int]]:
        """Token ids of texts (or `(title, text)` pairs), with special tokens, cut to `max_length`."""
        max_length = min(max_length, self.max_tokens)
        if not texts:
            return []
        if isinstance(texts[0], (tuple, list)):
            firsts = [self._case(pair[0]) for pair in texts]
            seconds = [self._case(pair[1]) for pair in texts]
            encoded = self.tokenizer(firsts, seconds, truncation="longest_first", max_length=max_length)
        else:
            encoded = self.tokenizer([self._case(text) for text in texts], truncation=True, max_length=max_length)
        return encoded["input_ids"]

    def _case(self, text: str) -> str:
        """The text as the tokenizer gets it: stripped (as transformers 2.x did before tokenizing), lower-cased
        when the card says so."""
        text = text.strip()
        return text.lower() if self.card.lowercase else text

    def query_token_ids(self, query, mode: str, history: Sequence[str] | None = None,
                        responses: Sequence[str] | None = None, max_query_length: int | None = None,
                        max_concat_length: int | None = None, truncate: str | None = None,
                        max_response_length: int | None = None) -> list[int]:
        """ConvDR's input ids for a query (a string or `{query, history, responses}`) in `mode`.

        `raw`/`manual`/`automatic` use the utterance alone; `no_res` adds the history; `man_can`/`auto_can`
        also the previous turn's response (`responses[-1]`). The concatenation is capped, as in ConvDR, at the
        model's limit minus two. Unset lengths, the response cut and truncation come from the card.
        """
        text, history, responses = query_parts(query, history, responses)
        if mode in SINGLE_MODES:
            return self.inputs.single(text, max_query_length or self.card.max_query_length)
        if mode not in CONVERSATIONAL_MODES:
            raise UserError(f"query mode {mode!r} is not one of {', '.join(SINGLE_MODES + CONVERSATIONAL_MODES)}")
        response = responses[-1] if mode in ("man_can", "auto_can") and responses else None
        limit = min(max_concat_length or self.card.max_concat_length, self.max_tokens - 2)
        return self.inputs.conversation(text, history, response, limit, truncate or self.card.truncate,
                                        max_response_length or self.card.max_response_length)

    def pad(self, id_lists: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad token-id lists into `(input_ids, attention_mask)` tensors on the encoder's device."""
        width = max(len(ids) for ids in id_lists)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(id_lists), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(id_lists), width), dtype=torch.long)
        for row, ids in enumerate(id_lists):
            input_ids[row, : len(ids)] = torch.as_tensor(list(ids), dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        return input_ids.to(self.device), attention_mask.to(self.device)

    # -- differentiable embeddings (training) ------------------------------------------------------------
    def embed_queries(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Query-tower embeddings, with gradients (for training)."""
        return self.query_model(input_ids, attention_mask)

    def embed_passages(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Passage-tower embeddings, with gradients."""
        return self.passage_model(input_ids, attention_mask)

    # -- batched inference -------------------------------------------------------------------------------
    def encode_passages(self, texts: Sequence, batch_size: int = 64, max_length: int | None = None,
                        progress: bool = False) -> np.ndarray:
        """float32 `(n, dim)` passage embeddings; texts may be strings or `(title, text)` pairs."""
        ids = self.tokenize(texts, max_length or self.card.max_passage_length)
        return self.encode_ids(ids, tower="passage", batch_size=batch_size, progress=progress)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64, max_length: int | None = None,
                       progress: bool = False) -> np.ndarray:
        """float32 `(n, dim)` embeddings of single-utterance queries."""
        ids = self.tokenize(texts, max_length or self.card.max_query_length)
        return self.encode_ids(ids, tower="query", batch_size=batch_size, progress=progress)

    def encode_ids(self, id_lists: Sequence[Sequence[int]], tower: str = "query", batch_size: int = 64,
                   progress: bool = False) -> np.ndarray:
        """Embed ready token-id lists; batches are formed after sorting by length, output keeps input order."""
        from .._progress import progress_bar

        model = self.query_model if tower == "query" else self.passage_model
        output = np.zeros((len(id_lists), self.dim), dtype=np.float32)
        order = sorted(range(len(id_lists)), key=lambda i: -len(id_lists[i]))
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode(), progress_bar(total=len(order), unit=" " + tower + "s", enabled=progress,
                                                      desc=f"encoding {tower}s") as bar:
                for start in range(0, len(order), batch_size):
                    rows = order[start : start + batch_size]
                    embeddings = model(*self.pad([id_lists[i] for i in rows]))
                    output[rows] = embeddings.float().cpu().numpy()
                    bar.update(len(rows))
        finally:
            model.train(was_training)
        return output

    # -- saving --------------------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, overwrite: bool = False, **card_changes) -> Path:
        """Write a Hugging Face-style folder (config, safetensors, tokenizer) with its `encoder.yaml` card."""
        from safetensors.torch import save_file

        from ..io.atomic import atomic_directory

        folder = Path(folder)
        with atomic_directory(folder, overwrite=overwrite) as tmp:
            state = {key: value.detach().float().cpu().contiguous() for key, value in self.model.state_dict().items()}
            save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
            self.config.to_json_file(str(tmp / "config.json"))
            self.tokenizer.save_pretrained(str(tmp))
            card = dataclasses.replace(self.card, weights={"path": "."}, tokenizer=None, dimension=self.dim,
                                       source=None, **card_changes)
            card.save(tmp / CARD_FILE)
        return folder


def _max_tokens(config) -> int:
    """Longest input the position embeddings allow (RoBERTa reserves `pad_token_id + 1` positions)."""
    positions = int(getattr(config, "max_position_embeddings", 512))
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        positions -= int(config.pad_token_id or 1) + 1
    return positions


def check_device(device: str) -> str:
    """`device` if torch can use it; a UserError for `cuda` without a GPU."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"{{device}} {device}: no CUDA GPU is available to torch {torch.__version__}", "device")
    if not (device == "cpu" or device.startswith("cuda") or device == "mps"):
        raise UserError(f"{{device}} must be cpu or cuda[:N], not {device!r}", "device")
    return device


def load_encoder(card_or_path: str | os.PathLike | EncoderCard, device: str = "cpu", fp16: bool = False,
                 bf16: bool = False) -> DenseEncoder:
    """Load an encoder from a card name, card file, model folder or checkpoint file."""
    card = resolve_card(card_or_path)
    check_device(device)
    if fp16 and not device.startswith("cuda"):
        raise UserError("{fp16} needs {device} cuda", "fp16", "device")
    if fp16 and bf16:
        raise UserError("choose one of {fp16} and {bf16}", "fp16", "bf16")
    location = card.weights_location()
    state = read_state_dict(location)
    architecture = card.architecture or infer_architecture(state)
    if card.architecture is None:
        card = dataclasses.replace(card, architecture=architecture, lowercase=architecture == "rdot_nll",
                                   truncate="convdr")
    config = _backbone_config(architecture, location, state, card.name)
    model = _build_model(architecture, config, state)
    _load_checked(model, architecture, state, location)
    tokenizer = load_tokenizer(architecture, card.tokenizer_location(), card.name)
    vocab_size = config.vocab_size
    if len(tokenizer) > vocab_size:
        raise UserError(f"encoder {card.name}: the tokenizer has {len(tokenizer)} tokens but the checkpoint "
                        f"{location} only {vocab_size} embeddings; they do not belong together")
    encoder = DenseEncoder(card, model, tokenizer, device=device, fp16=fp16, bf16=bf16)
    if card.dimension is not None and card.dimension != encoder.dim:
        raise UserError(f"encoder card {card.name} says dimension {card.dimension}, "
                        f"but the checkpoint {location} gives {encoder.dim}")
    return encoder


def read_state_dict(location: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint folder or file, with DataParallel `module.` prefixes removed. A sentence-transformers
    folder with ANCE's Dense + LayerNorm head gives ANCE's key names (`roberta.*`, `embeddingHead.*`, `norm.*`)."""
    if location.is_dir() and is_sentence_transformer(location) and "Dense" in sentence_transformer_modules(location):
        return _ance_from_sentence_transformer(location)
    return _read_weights(_weights_file(location) if location.is_dir() else location)


def _weights_file(folder: Path) -> Path:
    found = [folder / name for name in WEIGHT_FILES if (folder / name).is_file()]
    if not found:
        raise UserError(f"{folder} has no model weights ({', '.join(WEIGHT_FILES)})")
    return found[0]


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        trusted = os.environ.get(TRUST_ENV) == "1"
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=not trusted)
        except Exception as error:  # noqa: BLE001  (pickle errors come in many types)
            hint = "" if trusted else f"; if you trust this file, set {TRUST_ENV}=1 to unpickle it fully"
            raise UserError(f"cannot read checkpoint {path}: {str(error).splitlines()[0][:200]}{hint}") from None
        if isinstance(state, dict) and "model_dict" in state:  # DPR CheckpointState saved as a dict
            state = state["model_dict"]
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise UserError(f"checkpoint {path} does not hold a state dict of tensors")
    return {key[len("module."):] if key.startswith("module.") else key: value for key, value in state.items()}


def _ance_from_sentence_transformer(folder: Path) -> dict[str, torch.Tensor]:
    """ANCE's state dict from a sentence-transformers port: the transformer's weights under `roberta.`, the Dense
    module's `linear.*` as `embeddingHead.*`, the LayerNorm module's `norm.*` as `norm.*`."""
    modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    state = {key if key.startswith("roberta.") else f"roberta.{key}": value
             for key, value in _read_weights(_weights_file(folder)).items()}
    heads = {"Dense": ("linear.", "embeddingHead."), "LayerNorm": ("norm.", "norm.")}
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind in heads:
            prefix, renamed = heads[kind]
            for key, value in _read_weights(_weights_file(folder / module["path"])).items():
                if not key.startswith(prefix):
                    raise UserError(f"{folder / module['path']}: unexpected key {key} in a sentence-transformers {kind}")
                state[renamed + key[len(prefix):]] = value
    return state


def infer_architecture(state: dict) -> str:
    """`rdot_nll` for `embeddingHead.*` keys, `dpr` for `question_model.*`, otherwise `mean`."""
    if any(key.startswith("embeddingHead.") for key in state):
        return "rdot_nll"
    if any(key.startswith(("question_model.", "ctx_model.")) for key in state):
        return "dpr"
    return "mean"


def _backbone_config(architecture: str, location: Path, state: dict, name: str):
    from transformers import AutoConfig, BertConfig, RobertaConfig

    folder = location if location.is_dir() else location.parent
    config_file = folder / "config.json"
    config_class = {"rdot_nll": RobertaConfig, "dpr": BertConfig}.get(architecture)
    if config_file.is_file():
        if config_class is None and "model_type" not in json.loads(config_file.read_text(encoding="utf-8")):
            raise UserError(f"encoder {name}: {config_file} has no model_type")
        config = (config_class or AutoConfig).from_pretrained(str(folder))
    elif architecture == "dpr":
        config = _bert_config_from_state(state, "question_model.")
    else:
        raise UserError(f"encoder {name}: no config.json beside {location}")
    prefix = {"rdot_nll": "roberta.", "dpr": "question_model."}.get(architecture, "")
    embeddings = state.get(f"{prefix}embeddings.word_embeddings.weight")
    if embeddings is not None:  # ConvDR resized the embeddings for `<response>`; trust the weights
        config.vocab_size = int(embeddings.shape[0])
    return config


def _bert_config_from_state(state: dict, prefix: str):
    """BertConfig of a DPR `.cp` state dict (bert-base: 12 heads of 64 dimensions)."""
    from transformers import BertConfig

    def shape(key):
        if prefix + key not in state:
            raise UserError(f"DPR checkpoint lacks {prefix + key}")
        return state[prefix + key].shape

    hidden = shape("embeddings.word_embeddings.weight")[1]
    layers = {int(match.group(1)) for key in state for match in [re.match(re.escape(prefix) + r"encoder\.layer\.(\d+)\.", key)]
              if match}
    return BertConfig(
        vocab_size=shape("embeddings.word_embeddings.weight")[0], hidden_size=hidden,
        num_hidden_layers=len(layers), num_attention_heads=max(1, hidden // 64),
        intermediate_size=shape("encoder.layer.0.intermediate.dense.weight")[0],
        max_position_embeddings=shape("embeddings.position_embeddings.weight")[0],
        type_vocab_size=shape("embeddings.token_type_embeddings.weight")[0],
    )


def _build_model(architecture: str, config, state: dict) -> nn.Module:
    if architecture == "rdot_nll":
        head = state.get("embeddingHead.weight")
        return AnceModel(config, int(head.shape[0]) if head is not None else 768)
    if architecture == "dpr":
        return DprModel(config)
    from transformers import AutoModel

    return AutoModel.from_config(config, add_pooling_layer=False) if config.model_type in ("bert", "roberta") \
        else AutoModel.from_config(config)


def _load_checked(model: nn.Module, architecture: str, state: dict, location: Path) -> None:
    """Load `state` into `model`; unexpected or missing keys are a UserError that names them."""
    if architecture == "mean":
        prefix = getattr(model, "base_model_prefix", "") + "."
        if prefix != "." and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix):]: value for key, value in state.items()}
    expected = set(model.state_dict())
    unused = UNUSED_KEYS[architecture]
    unexpected = sorted(key for key in state if key not in expected and not unused.match(key))
    missing = sorted(expected - set(state))
    if unexpected or missing:
        parts = []
        if unexpected:
            parts.append(f"unexpected keys {_some(unexpected)}")
        if missing:
            parts.append(f"missing keys {_some(missing)}")
        raise UserError(f"checkpoint {location} does not fit a {architecture} encoder: {'; '.join(parts)}")
    model.load_state_dict({key: value.float() for key, value in state.items() if key in expected})


def _some(keys: Iterable[str], limit: int = 5) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" (and {len(keys) - limit} more)" if len(keys) > limit else "")


def load_tokenizer(architecture: str, location: str, name: str):
    """RoBERTa tokenizer for `rdot_nll`, BERT for `dpr`, the folder's own for `mean`."""
    from transformers import AutoTokenizer, BertTokenizer, RobertaTokenizer

    tokenizer_class = {"rdot_nll": RobertaTokenizer, "dpr": BertTokenizer}.get(architecture, AutoTokenizer)
    try:
        return tokenizer_class.from_pretrained(location)
    except (OSError, ValueError) as error:
        raise UserError(f"encoder {name}: cannot load the tokenizer from {location} "
                        f"({str(error).splitlines()[0][:160]})") from None
