"""Module 3: embedding -> text. Variant 1 (phrase bank), 2 (generative), 3 (hybrid)."""

from .base import Candidate, DecodeResult, Decoder
from .phrase import PhraseBankDecoder


def __getattr__(name: str):  # the generative and hybrid decoders import torch: load them on first use
    if name in ("GenerativeDecoder", "average_decoders", "create_generative_decoder"):
        from . import generative

        return getattr(generative, name)
    if name in ("HybridDecoder", "HybridConfig"):
        from . import hybrid

        return getattr(hybrid, name)
    raise AttributeError(f"module 'lightweight_decoder.decoders' has no attribute {name!r}")


__all__ = ["Candidate", "DecodeResult", "Decoder", "PhraseBankDecoder", "GenerativeDecoder", "average_decoders",
           "create_generative_decoder", "HybridDecoder", "HybridConfig"]
