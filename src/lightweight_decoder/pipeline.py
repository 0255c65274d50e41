"""Module 1 -> 2 -> 3: text -> embedding -> (cubic core) -> decoded text.

>>> pipe = Pipeline(encoder, decoder, core=CubicCore.load("my-core"))   # doctest: +SKIP
>>> pipe("Where is the nearest train station?").text                    # doctest: +SKIP
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .errors import IncompatibleArtifact

if TYPE_CHECKING:  # pragma: no cover
    from .cubic_core import CubicCore
    from .decoders.base import DecodeResult, Decoder
    from .encoder import TextEncoder

__all__ = ["Pipeline"]


class Pipeline:
    """Encode, optionally transform with a cubic core, decode. One text -> one result; a list -> a list."""

    def __init__(self, encoder: "TextEncoder", decoder: "Decoder", core: "CubicCore | None" = None) -> None:
        if decoder.embedding_dim != encoder.dimension:
            raise IncompatibleArtifact(f"decoder reads {decoder.embedding_dim}-D vectors; encoder {encoder.name} makes {encoder.dimension}-D")
        if core is not None and core.config.dimension != encoder.dimension:
            raise IncompatibleArtifact(f"core is {core.config.dimension}-D; encoder {encoder.name} makes {encoder.dimension}-D")
        self.encoder, self.decoder, self.core = encoder, decoder, core

    def vectors(self, texts: str | Sequence[str]) -> np.ndarray:
        """Modules 1 and 2 only: the vectors the decoder will read."""
        vectors = self.encoder.encode(texts if isinstance(texts, str) else list(texts))
        return self.core.transform(vectors) if self.core is not None else vectors

    def __call__(self, texts: str | Sequence[str], **decode_kwargs: Any) -> "DecodeResult | list[DecodeResult]":
        start = time.perf_counter()
        vectors = self.vectors(texts)
        encode_ms = (time.perf_counter() - start) * 1000.0
        results = self.decoder.generate(vectors, **decode_kwargs)
        for r in results if isinstance(results, list) else [results]:
            r.timings["pipeline_encode_ms"] = encode_ms
            r.details["core"] = self.core.config.mode if self.core is not None else None
        return results
