"""One rule for a passage's text, used by collection preparation, index building, training and docstores.

The text is ConvDR's own (thunlp/ConvDR `data/preprocess_cast19.py`, `preprocess_cast20.py`,
`preprocess_orquac.py`, `tokenizing.py`):

- MS MARCO: the `collection.tsv` text as it is, stripped at both ends;
- TREC CAR: every tab, newline and carriage return becomes one space; runs of spaces are kept (in RoBERTa's
  byte-level BPE a double space is a token of its own);
- OR-QuAC: title and text stay apart and are encoded as a pair (`[CLS] title [SEP] text [SEP]`); newlines
  and tabs become spaces.

Whatever Lucene needs, its analyzer does. In a Pyserini JsonCollection a titled passage's `contents` is
`title + "\\n" + text` (Pyserini's own convention for `--fields title text`), and the collection's
`collection.yaml` says so with `fields: [title, text]`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TEXT_FIELDS = ("text",)
TITLE_TEXT_FIELDS = ("title", "text")
COLLECTION_SUMMARY = "collection.yaml"
_FLATTEN = str.maketrans({"\t": " ", "\n": " ", "\r": " "})


def marco_text(raw: str) -> str:
    """An MS MARCO passage as ConvDR reads it: stripped, inner whitespace kept."""
    return raw.strip()


def flat_text(raw: str) -> str:
    """Tabs, newlines and CRs each become one space (ConvDR's TREC CAR and OR-QuAC rule), then stripped."""
    return raw.translate(_FLATTEN).strip()


def source_text(doc_id: str, raw: str) -> str:
    """ConvDR's text of a CAsT passage given by its official id (`MARCO_...` or `CAR_...`)."""
    return marco_text(raw) if doc_id.startswith("MARCO_") else flat_text(raw)


@dataclass(frozen=True)
class Passage:
    """A passage: its id, its text and, for OR-QuAC-style collections, its title."""

    doc_id: str
    text: str
    title: str | None = None

    @classmethod
    def from_contents(cls, doc_id: str, contents: str, fields: tuple[str, ...] = TEXT_FIELDS) -> "Passage":
        """A passage from a JsonCollection `contents` string laid out as `fields`."""
        if tuple(fields) == TITLE_TEXT_FIELDS:
            title, _, text = contents.partition("\n")
            return cls(doc_id, text, title)
        return cls(doc_id, contents)

    @classmethod
    def from_doc(cls, doc) -> "Passage":
        """A passage from an ir_datasets doc (`doc_id`, `text`, and `title` when it has one)."""
        title = getattr(doc, "title", None)
        return cls(doc.doc_id, doc.text, title if title else None)

    @property
    def fields(self) -> tuple[str, ...]:
        return TEXT_FIELDS if self.title is None else TITLE_TEXT_FIELDS

    def contents(self) -> str:
        """The JsonCollection `contents`: the text, or title, a newline, then the text."""
        return self.text if self.title is None else f"{self.title}\n{self.text}"

    def encoder_input(self) -> str | tuple[str, str]:
        """What a dense encoder takes: the text, or the `(title, text)` pair."""
        return self.text if self.title is None else (self.title, self.text)


def collection_fields(folder: str | os.PathLike) -> tuple[str, ...]:
    """The `fields` a JsonCollection folder's `collection.yaml` declares (default: text only)."""
    summary = Path(folder) / COLLECTION_SUMMARY
    if not Path(folder).is_dir() or not summary.is_file():
        return TEXT_FIELDS
    from .text import read_yaml

    declared = (read_yaml(summary) or {}).get("fields")
    return tuple(declared) if declared else TEXT_FIELDS
