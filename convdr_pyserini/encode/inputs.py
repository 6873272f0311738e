"""Token ids of ConvDR's query inputs, built exactly as ConvDR's `ConvSearchDataset` builds them.

* `raw` / `manual` / `automatic` (ConvDR's `raw` / `target` / `output`): one utterance,
  `tokenizer.encode(text, max_length=max_query_length)`, i.e. `<s> tokens </s>` cut to fit, ending in `</s>`.
* `no_res`: the history then the current utterance. RoBERTa style `<s> q1 </s><s> q2 </s> ... <s> qn </s>`;
  BERT style (ConvDR's `dpr`) `[CLS] q1 [SEP] q2 [SEP] ... qn [SEP]`.
* `man_can` / `auto_can`: as `no_res`, with the previous turn's canonical response inserted just before the
  current utterance as `<s> <response> text </s>` (BERT style: `<response> text [SEP]`).

Truncation of conversational inputs: `convdr` keeps the first `max_concat_length` ids, as ConvDR's
`pad_input_ids_with_mask` does (so a long history can push the current utterance out, and the sequence
may end without `</s>`); `keep-current` drops the oldest segments first and, if the current utterance alone
is too long, cuts it while keeping its closing separator.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from ..errors import UserError

SINGLE_MODES = ("raw", "manual", "automatic")
CONVERSATIONAL_MODES = ("no_res", "man_can", "auto_can")
MODES = SINGLE_MODES + CONVERSATIONAL_MODES
TRUNCATIONS = ("convdr", "keep-current")  # ConvDR's cut of the concatenation, or oldest turns dropped first


class InputBuilder:
    """Turns texts and conversations into token-id lists for one tokenizer."""

    def __init__(self, tokenizer, lowercase: bool = False, response_token: str = "<response>"):
        self.tokenizer = tokenizer
        self.lowercase = lowercase
        self.bert_style = tokenizer.cls_token == "[CLS]"
        self.cls_id = tokenizer.cls_token_id
        self.sep_id = tokenizer.sep_token_id
        # ConvDR: tokenizer.convert_tokens_to_ids(["<response>"]); the unknown-token id if the vocabulary lacks it
        self.response_id = tokenizer.convert_tokens_to_ids([response_token])[0]

    def text_ids(self, text: str) -> list[int]:
        """Token ids of `text`, without special tokens (ConvDR: `convert_tokens_to_ids(tokenize(text))`).

        The text is stripped first, as transformers 2.3.0 (ConvDR's) did in `tokenize`: in RoBERTa's byte-level
        BPE a leading space would otherwise become part of the first token."""
        text = text.strip()
        if self.lowercase:
            text = text.lower()
        return self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(text))

    def single(self, text: str, max_length: int) -> list[int]:
        """`[CLS]/<s> text [SEP]/</s>` in at most `max_length` ids (transformers 2.x `encode(max_length=...)`)."""
        if max_length < 3:
            raise UserError(f"maximum length {max_length} is too small (at least 3)")
        return [self.cls_id] + self.text_ids(text)[: max_length - 2] + [self.sep_id]

    def conversation(
        self,
        query: str,
        history: Sequence[str] = (),
        response: str | None = None,
        max_length: int = 256,
        truncate: str = "convdr",
        max_response_length: int | None = None,
    ) -> list[int]:
        """ConvDR's concatenated input for the current `query` after `history` (oldest first); the response is
        cut to its first `max_response_length` tokens when given (ConvDR keeps it whole)."""
        prefix = [self.cls_id] if self.bert_style else []
        opener = [] if self.bert_style else [self.cls_id]
        segments = [opener + self.text_ids(turn) + [self.sep_id] for turn in history]
        if response is not None:
            response_ids = self.text_ids(response)[:max_response_length]
            segments.append(opener + [self.response_id] + response_ids + [self.sep_id])
        segments.append(opener + self.text_ids(query) + [self.sep_id])
        if truncate == "convdr":
            return (prefix + [token for segment in segments for token in segment])[:max_length]
        if truncate != "keep-current":
            raise UserError(f"truncate must be {' or '.join(TRUNCATIONS)}, not {truncate!r}")
        while len(segments) > 1 and len(prefix) + sum(map(len, segments)) > max_length:
            segments.pop(0)
        current = segments[-1]
        if len(prefix) + len(current) > max_length:
            segments[-1] = current[: max_length - len(prefix) - 1] + [self.sep_id]
        return prefix + [token for segment in segments for token in segment]


def query_parts(query: Any, history: Sequence[str] | None = None, responses: Sequence[str] | None = None):
    """Normalise an encoder input (a string, or a dict `{query, history, responses}`) to its three parts.

    `history` holds the previous utterances, oldest first; `responses` the previous turns' canonical responses,
    oldest first, of which only the last one (the previous turn's) is used.
    """
    if isinstance(query, dict):
        unknown = set(query) - {"query", "history", "responses"}
        if unknown or "query" not in query:
            raise UserError(f"a query dict needs the keys query[, history, responses]; got {sorted(query)}")
        return query_parts(query["query"], query.get("history"), query.get("responses"))
    if not isinstance(query, str):
        raise UserError(f"a query must be a string or a dict, not {type(query).__name__}")
    return query, tuple(history or ()), tuple(responses or ())


def conversational_input(record, mode: str, response_text: Callable[[str], str] | None = None) -> str | dict:
    """The encoder input of a dataset query record for `mode`.

    `raw`/`manual`/`automatic` give the utterance (a string); `no_res` gives `{query, history}`;
    `man_can`/`auto_can` add `responses` with the previous turn's canonical response, looked up with
    `response_text(doc_id)` (e.g. `lambda d: dataset.docs_store().get(d).text`).
    """
    if mode not in MODES:
        raise UserError(f"query mode {mode!r} is not one of {', '.join(MODES)}")
    if mode in SINGLE_MODES:
        field = {"raw": "raw_utterance", "manual": "manual_rewritten_utterance",
                 "automatic": "automatic_rewritten_utterance"}[mode]
        value = getattr(record, field, None)
        if value is None:
            raise UserError(f"query {record.query_id} has no {field}, needed for {{query}} {mode}", "query")
        return value
    history = list(getattr(record, "history", ()))
    result: dict = {"query": record.raw_utterance, "history": history}
    if mode == "no_res":
        return result
    field = "history_manual_canonical_result_ids" if mode == "man_can" else "history_automatic_canonical_result_ids"
    texts = getattr(record, field.replace("result_ids", "passages"), None)
    if texts is not None:  # CAsT-21 topics carry the canonical passages' texts themselves
        result["responses"] = [texts[-1]] if texts else []
        return result
    ids = getattr(record, field, None)
    if ids is None:
        raise UserError(f"query {record.query_id} has no {field} (canonical responses exist in CAsT-20 and -21 only), "
                        f"needed for {{query}} {mode}", "query")
    if response_text is None:
        raise UserError(f"{{query}} {mode} needs the collection to look up canonical responses", "query")
    result["responses"] = [response_text(ids[-1])] if ids else []
    return result
