"""Cleaning up composed text: spacing, capitalisation, punctuation, repeated words.

>>> clean_text("the cat  sat , on the the mat")
'The cat sat, on the mat.'
"""

from __future__ import annotations

import re

__all__ = ["clean_text", "join_pieces", "fit_case", "repeated_neighbours", "closing_mark", "with_closing", "SENTENCE_END"]

_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?%)\]])")
_SPACE_AFTER_OPEN = re.compile(r"([(\[])\s+")
_REPEATED_WORD = re.compile(r"\b(\w+)(\s+\1\b)+", re.IGNORECASE)
_REPEATED_PUNCT = re.compile(r"([,;:])\s*[,;:.]+")
_WS = re.compile(r"\s+")
_WORD_KEY = re.compile(r"[^\w]")  # what is left of a word to compare: "The," and "the" are the same word
SENTENCE_END = ".!?"


def clean_text(text: str, *, end_punctuation: bool = True) -> str:
    """Normalise spacing, drop immediately repeated words, capitalise, end with punctuation."""
    text = _WS.sub(" ", text).strip()
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _SPACE_AFTER_OPEN.sub(r"\1", text)
    text = _REPEATED_WORD.sub(r"\1", text)
    text = _REPEATED_PUNCT.sub(r"\1", text)
    text = text.strip(" ,;:")
    if not text:
        return text
    first, space, rest = text.partition(" ")
    text = _capitalise_plain(first) + space + rest  # "the" -> "The", but keep "iPhone"
    if end_punctuation and text[-1] not in SENTENCE_END + "\"')":
        text += "."
    return text


def join_pieces(pieces: list[str]) -> str:
    """Join sentence pieces into one sentence: inner end punctuation becomes a comma."""
    parts = []
    for i, piece in enumerate(pieces):
        piece = piece.strip()
        if i < len(pieces) - 1:
            piece = piece.rstrip(SENTENCE_END)
        if i > 0 and piece:
            first = piece.split(" ", 1)[0]
            if _plain_capitalised(first) and first.lower() in _FUNCTION_WORDS:
                piece = piece[0].lower() + piece[1:]  # "The" inside a sentence -> "the"
        parts.append(piece)
    return clean_text(", ".join(p for p in parts if p))


def _plain_capitalised(word: str) -> bool:
    return word[:1].isupper() and word[1:] == word[1:].lower()  # "The", not "NASA" or "iPhone"


def _capitalise_plain(word: str) -> str:
    """"the" -> "The"; a word with capitals after its first letter ("iPhone") stays as it is."""
    return word[0].upper() + word[1:] if word[:1].islower() and word[1:] == word[1:].lower() else word


def fit_case(words: list[str], positions: set[int], *, capitalise_first: bool = True) -> list[str]:
    """Words moved by an edit, cased for where they now stand: a sentence's first word capitalised, a
    capitalised function word inside a sentence lowercased ("flooded The village" -> "flooded the village").
    ``capitalise_first=False`` is for text written in lower case: function words are lowercased at the start
    too. Other words, and words not at ``positions``, keep their case (names stay capitalised)."""
    out = list(words)
    for j in sorted(positions):
        if not 0 <= j < len(out) or not out[j]:
            continue
        word = out[j]
        starts = j == 0 or out[j - 1].endswith(tuple(SENTENCE_END))
        if starts and capitalise_first:
            out[j] = _capitalise_plain(word)
        elif _plain_capitalised(word) and _WORD_KEY.sub("", word).lower() in _FUNCTION_WORDS:  # "The" or "A."
            out[j] = word.lower()
    return out


def closing_mark(words: list[str]) -> str:
    """The sentence-end marks the last word carries: "village." -> "."; "" for none (or no words)."""
    last = words[-1] if words else ""
    return last[len(last.rstrip(SENTENCE_END)):]


def with_closing(words: list[str], end: str) -> list[str]:
    """``words`` with the closing mark of its last word replaced by ``end`` ("" removes it; a word that is
    only a mark goes)."""
    if not words:
        return words
    last = words[-1].rstrip(SENTENCE_END)
    return words[:-1] + [last + end] if last else words[:-1]


def repeated_neighbours(words: list[str]) -> int:
    """How many words repeat the word before them, ignoring case and punctuation ("the The" counts 1)."""
    keys = [_WORD_KEY.sub("", w).lower() for w in words]
    return sum(1 for a, b in zip(keys, keys[1:]) if a and a == b)

_FUNCTION_WORDS = {
    "the", "a", "an", "it", "he", "she", "they", "we", "this", "that", "these", "those", "there", "in",
    "on", "at", "for", "with", "and", "but", "or", "so", "which", "who", "after", "before", "when", "while",
}
