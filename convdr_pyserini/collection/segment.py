"""The CAsT-21 passage rule: how the organizers cut a document into passages `<docid>-<n>`.

It is the rule of grill-lab/trec-cast-tools of 2021-06-17 (`src/main/python/src/PassageChunker.py`,
`RegexPassageChunker`), the one the 2021 topics' canonical passages follow (docs/cast21.md says how that was
established): HTML tags `<...>` are removed; the text is split into sentences after `.`, `?` or `!` followed by
one whitespace character, except after an abbreviation like `e.g.` or `Mr.`; sentences are added to a passage
until it holds at least 0.67 x 250 = 167.5 words (`\\w+` runs), then a new passage starts. Passages are numbered
from 0, and every document gives at least one passage (an empty text gives one empty passage).

The organizers' own passages keep the document's whitespace; here each whitespace run becomes one space, as in
the passage texts the 2021 topics carry.
"""
from __future__ import annotations

import re

SENTENCE_END = re.compile(r"(?<!\w\.\w.)(?<![A-Z][a-z]\.)(?<=\.|\?|!)\s")
WORD = re.compile(r"\w+")
HTML_TAG = re.compile(r"<.*?>")
PASSAGE_WORDS = 250
CLOSE_AT = PASSAGE_WORDS * 0.67


def sentences(text: str) -> list[str]:
    """The sentences of a document as the 2021 rule splits them (HTML tags removed first)."""
    return SENTENCE_END.split(HTML_TAG.sub("", text))


def passages(text: str) -> list[str]:
    """The passages of a document text, in order (passage `n` of document `d` is `d-n`)."""
    parts = sentences(text)
    cut, start, words = [], 0, 0
    for index, sentence in enumerate(parts):
        if words >= CLOSE_AT:
            cut.append(parts[start:index])
            start, words = index, 0
        words += len(WORD.findall(sentence))
    cut.append(parts[start:])
    return [" ".join(" ".join(group).split()) for group in cut]


def passage_id(doc_id: str, number: int) -> str:
    return f"{doc_id}-{number}"
