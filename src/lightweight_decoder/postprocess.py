"""Cleaning up composed text: spacing, capitalisation, punctuation, repeated words.

>>> clean_text("the cat  sat , on the the mat")
'The cat sat, on the mat.'
"""

from __future__ import annotations

import re

__all__ = ["clean_text", "join_pieces"]

_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?%)\]])")
_SPACE_AFTER_OPEN = re.compile(r"([(\[])\s+")
_REPEATED_WORD = re.compile(r"\b(\w+)(\s+\1\b)+", re.IGNORECASE)
_REPEATED_PUNCT = re.compile(r"([,;:])\s*[,;:.]+")
_WS = re.compile(r"\s+")


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
    first = text.split(" ", 1)[0]
    if first[0].islower() and first[1:] == first[1:].lower():  # "the" -> "The", but keep "iPhone"
        text = text[0].upper() + text[1:]
    if end_punctuation and text[-1] not in ".!?\"')":
        text += "."
    return text


def join_pieces(pieces: list[str]) -> str:
    """Join sentence pieces into one sentence: inner end punctuation becomes a comma."""
    parts = []
    for i, piece in enumerate(pieces):
        piece = piece.strip()
        if i < len(pieces) - 1:
            piece = piece.rstrip(".!?")
        if i > 0 and piece:
            first = piece.split(" ", 1)[0]
            if first[:1].isupper() and first[1:] == first[1:].lower() and first.lower() in _FUNCTION_WORDS:
                piece = piece[0].lower() + piece[1:]  # "The" inside a sentence -> "the"
        parts.append(piece)
    return clean_text(", ".join(p for p in parts if p))


_FUNCTION_WORDS = {
    "the", "a", "an", "it", "he", "she", "they", "we", "this", "that", "these", "those", "there", "in",
    "on", "at", "for", "with", "and", "but", "or", "so", "which", "who", "after", "before", "when", "while",
}
