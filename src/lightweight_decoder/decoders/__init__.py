"""Module 3: embedding -> text."""

from .base import Candidate, DecodeResult, Decoder
from .phrase import PhraseBankDecoder

__all__ = ["Candidate", "DecodeResult", "Decoder", "PhraseBankDecoder"]
