"""The exceptions the library raises. Every one derives from :class:`DecoderError`.

Errors caused by bad user input also derive from :class:`ValueError`, so callers that
already catch ``ValueError`` keep working.
"""

from __future__ import annotations

__all__ = [
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


class DecoderError(Exception):
    """Base class of every error raised by lightweight_decoder."""


class InvalidInput(DecoderError, ValueError):
    """The caller passed something the library cannot work with."""


class InvalidEmbedding(InvalidInput):
    """A vector has the wrong shape or dimension, or contains NaN, inf or only zeros."""


class InvalidText(InvalidInput):
    """A text is empty, not a string, or too long."""


class ConfigError(DecoderError, ValueError):
    """A configuration value is out of range, or a key is unknown."""


class ModelNotFound(DecoderError, LookupError):
    """A model name or path does not resolve to an installed model."""


class CorruptArtifact(DecoderError):
    """A file on disk is truncated, damaged or not what it claims to be."""


class IncompatibleArtifact(DecoderError):
    """An artifact was built for another encoder, dimension or format version."""


class EmptyBank(DecoderError):
    """A phrase bank has no entries to search."""
