"""Dense encoders (ANCE `rdot_nll`, DPR, mean pooling), encoder cards, and ConvDR as a Pyserini query encoder.

Importing this package imports neither torch nor pyserini; they load on first use:

    from convdr_pyserini.encode import load_encoder, ConvDRQueryEncoder
    encoder = load_encoder("minilm")                       # a card name, card file, model folder or checkpoint
    vectors = encoder.encode_passages(["a passage", ...])  # float32 (n, dim)
    query_encoder = ConvDRQueryEncoder(encoder, mode="no_res")
    query_encoder.encode({"query": "Why?", "history": ["What is throat cancer?"]})
"""
from .cards import EncoderCard, available_cards, cards_dir, resolve_card
from .inputs import CONVERSATIONAL_MODES, MODES, SINGLE_MODES, InputBuilder, conversational_input

__all__ = [
    "CONVERSATIONAL_MODES", "MODES", "SINGLE_MODES", "ConvDRQueryEncoder", "DenseEncoder", "EncoderCard",
    "InputBuilder", "PreEncodedQueries", "available_cards", "cards_dir", "check_device", "conversational_input",
    "load_encoder", "resolve_card",
]

_LAZY = {
    "load_encoder": "models", "DenseEncoder": "models", "check_device": "models",
    "ConvDRQueryEncoder": "query_encoder", "PreEncodedQueries": "query_encoder",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
