"""lightweight_decoder: sentence embeddings back to text, on a CPU.

Module 1 (``TextEncoder``) turns text into a vector; Module 3 decoders turn vectors back into text.

>>> from lightweight_decoder import TextEncoder   # doctest: +SKIP
>>> TextEncoder().encode("The cat sat on the mat.").shape  # doctest: +SKIP
(768,)
"""

from __future__ import annotations

__version__ = "0.1.0"

from .config import EncoderConfig, PhraseBankConfig, PhraseDecoderConfig
from .errors import (
    ConfigError,
    CorruptArtifact,
    DecoderError,
    EmptyBank,
    IncompatibleArtifact,
    InvalidEmbedding,
    InvalidInput,
    InvalidText,
    ModelNotFound,
)


def __getattr__(name: str):  # lazy: importing the package must not load torch
    if name == "TextEncoder":
        from .encoder import TextEncoder

        return TextEncoder
    if name in ("EmbeddingCache", "prepare_corpus", "split_sentences"):
        from . import data

        return getattr(data, name)
    raise AttributeError(f"module 'lightweight_decoder' has no attribute {name!r}")


__all__ = [
    "__version__",
    "TextEncoder",
    "EmbeddingCache",
    "prepare_corpus",
    "split_sentences",
    "EncoderConfig",
    "PhraseBankConfig",
    "PhraseDecoderConfig",
    "DecoderError",
    "InvalidInput",
    "InvalidEmbedding",
    "InvalidText",
    "ConfigError",
    "ModelNotFound",
    "CorruptArtifact",
    "IncompatibleArtifact",
    "EmptyBank",
]
