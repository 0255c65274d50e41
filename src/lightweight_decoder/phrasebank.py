"""PhraseBank: texts + vectors + a faiss index, saved as a folder.

Vectors are L2-normalised float32 and compared by inner product (= cosine). The index is described by
a faiss factory string kept in the config (``"Flat"``, ``"HNSW32"``, ``"IVF1024,SQ8"``, ``"IVF4096,PQ64"``).
When the bank keeps its vectors, approximate hits are re-scored exactly, so scores are true cosines.

>>> bank = PhraseBank.build(["A cat sat.", "Stocks fell."], encoder)     # doctest: +SKIP
>>> bank.search(encoder.encode("a cat"), k=1)[0][0].text                 # doctest: +SKIP
'A cat sat.'
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Sequence

import numpy as np

from . import _atomic
from .artifacts import read_artifact_config
from .config import PhraseBankConfig
from .errors import ConfigError, CorruptArtifact, EmptyBank, IncompatibleArtifact, InvalidEmbedding, InvalidInput

if TYPE_CHECKING:  # pragma: no cover
    import faiss

    from .encoder import TextEncoder

__all__ = ["PhraseBank", "Hit", "as_query_matrix"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_TEXTS = "phrases.jsonl.gz"
_VECTORS = "vectors.npy"
_INDEX = "index.faiss"
_MAX_TRAIN = 200_000


class Hit(NamedTuple):
    """One search result: the entry's text, its cosine to the query, and its row id."""

    text: str
    score: float
    id: int


def as_query_matrix(vectors: object, dimension: int) -> tuple[np.ndarray, bool]:
    """Check and L2-normalise query vectors. Returns ``(matrix [N, D] float32, was_single)``.

    Raises :class:`InvalidEmbedding` naming the problem: wrong shape or dimension, NaN/inf, zero vector.
    """
    try:
        arr = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidEmbedding(f"vectors must be numeric arrays: {exc}") from None
    single = arr.ndim == 1
    if single:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InvalidEmbedding(f"expected a vector [D] or a matrix [N, D], got an array of shape {arr.shape}")
    if arr.shape[1] != dimension:
        raise InvalidEmbedding(f"expected {dimension}-D vectors, got {arr.shape[1]}-D")
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        kind = "NaN" if np.isnan(arr[row]).any() else "inf"
        raise InvalidEmbedding(f"vector {row} contains {kind}")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if (norms <= 1e-12).any():
        raise InvalidEmbedding(f"vector {int(np.argmin(norms[:, 0]))} is all zeros")
    return np.ascontiguousarray(arr / norms, dtype=np.float32), single




class PhraseBank:
    """An indexed bank of embedded texts. Build with :meth:`build`, query with :meth:`search`."""

    def __init__(
        self,
        texts: list[str],
        vectors: np.ndarray | None,
        index: "faiss.Index",
        *,
        encoder_name: str,
        dimension: int,
        config: PhraseBankConfig | None = None,
        metadata: dict | None = None,
    ) -> None:
        self.texts = texts
        self.vectors = vectors
        self.index = index
        self.encoder_name = encoder_name
        self.dimension = int(dimension)
        self.config = config or PhraseBankConfig()
        self.metadata = dict(metadata or {})
        self._apply_search_params()

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_vectors(
        cls,
        texts: Sequence[str],
        vectors: np.ndarray,
        *,
        encoder_name: str,
        config: PhraseBankConfig | None = None,
        metadata: dict | None = None,
    ) -> "PhraseBank":
        """Build from precomputed vectors ``[N, D]`` (normalised here)."""
        import faiss

        config = config or PhraseBankConfig()
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise InvalidEmbedding(f"vectors must be [N, D], got shape {vectors.shape}")
        if len(texts) != vectors.shape[0]:
            raise InvalidInput(f"{len(texts)} texts but {vectors.shape[0]} vectors")
        dimension = vectors.shape[1]
        unit = cls._normalise(vectors)
        try:
            index = faiss.index_factory(dimension, config.index_factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise ConfigError(f"faiss cannot build index {config.index_factory!r}: {str(exc).splitlines()[-1]}") from None
        bank = cls([], None, index, encoder_name=encoder_name, dimension=dimension, config=config, metadata=metadata)
        if not index.is_trained:
            bank._train(unit)
        bank._append(list(texts), unit)
        return bank

    @classmethod
    def build(
        cls,
        texts: Sequence[str],
        encoder: "TextEncoder",
        config: PhraseBankConfig | None = None,
        *,
        batch_size: int = 64,
        precision: str = "fp32",
        show_progress_bar: bool | None = None,
    ) -> "PhraseBank":
        """Encode ``texts`` with ``encoder`` and index them."""
        vectors = encoder.encode(list(texts), batch_size=batch_size, precision=precision, show_progress_bar=show_progress_bar)
        return cls.from_vectors(texts, vectors, encoder_name=encoder.name, config=config)

    @staticmethod
    def _normalise(vectors: np.ndarray) -> np.ndarray:
        out = np.asarray(vectors, dtype=np.float32)
        if not np.isfinite(out).all():
            raise InvalidEmbedding("bank vectors contain NaN or inf")
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.ascontiguousarray(out / np.maximum(norms, 1e-12))

    def _train(self, unit: np.ndarray) -> None:
        import faiss

        needed = 1
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            needed = max(needed, ivf.nlist)
        if unit.shape[0] < needed:
            raise ConfigError(
                f"index {self.config.index_factory!r} needs at least {needed} vectors to train, got {unit.shape[0]}; "
                f"use a smaller nlist or \"Flat\""
            )
        # k-means needs ~40-256 points per centroid; more only costs time
        cap = min(_MAX_TRAIN, max(20_000, 64 * needed))
        sample = unit
        if unit.shape[0] > cap:
            pick = np.random.default_rng(0).choice(unit.shape[0], cap, replace=False)
            sample = unit[np.sort(pick)]
        logger.info("training %s on %d vectors", self.config.index_factory, sample.shape[0])
        try:
            self.index.train(sample)
        except RuntimeError as exc:
            detail = str(exc).split("failed:")[-1].strip().splitlines()[0]
            raise ConfigError(f"index {self.config.index_factory!r} cannot be trained on {sample.shape[0]} vectors: {detail}") from None

    def _append(self, texts: list[str], unit: np.ndarray) -> None:
        if unit.shape[1] != self.dimension:
            raise InvalidEmbedding(f"expected {self.dimension}-D vectors, got {unit.shape[1]}-D")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise InvalidInput(f"bank entry {len(self.texts) + i} is empty or not a string")
        self.index.add(unit)
        self.texts.extend(texts)
        if self.config.vector_dtype != "none":
            stored = unit.astype(self.config.vector_dtype)
            self.vectors = stored if self.vectors is None else np.concatenate([self.vectors, stored])

    def add(self, texts: Sequence[str], vectors: np.ndarray | None = None, encoder: "TextEncoder | None" = None) -> None:
        """Add entries, with their vectors or an encoder to compute them."""
        if vectors is None:
            if encoder is None:
                raise InvalidInput("add() needs vectors or an encoder")
            self.check_encoder(encoder)
            vectors = encoder.encode(list(texts))
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise InvalidInput(f"{len(texts)} texts need vectors of shape [{len(texts)}, {self.dimension}], got {vectors.shape}")
        self._append(list(texts), self._normalise(vectors))

    def set_search(self, *, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Trade speed for recall without rebuilding: ``nprobe`` is how many IVF lists a search visits,
        ``ef_search`` how many candidates an HNSW search keeps. More of either finds the exact nearest
        neighbour more often and takes longer (``bench/nprobe.py`` measures nprobe at 1M entries). Kept by
        :meth:`save`."""
        changes = {name: value for name, value in (("nprobe", nprobe), ("ef_search", ef_search)) if value is not None}
        self.config = dataclasses.replace(self.config, **changes)  # validates
        self._apply_search_params()

    def _apply_search_params(self) -> None:
        import faiss

        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            ivf.nprobe = min(self.config.nprobe, ivf.nlist)
        hnsw = getattr(faiss.downcast_index(self.index), "hnsw", None)
        if hnsw is not None:
            hnsw.efSearch = self.config.ef_search

    def check_encoder(self, encoder: "TextEncoder") -> None:
        """Raise :class:`IncompatibleArtifact` unless ``encoder`` is the one the bank's vectors came from
        (same name and dimension): a query or a new entry from another encoder lives in another space."""
        self.check_space(encoder.name, encoder.dimension)

    def check_space(self, encoder_name: str, dimension: int) -> None:
        """:meth:`check_encoder` by the encoder's name and dimension, for callers that hold no encoder
        (a decoder reading this bank as its memory)."""
        if encoder_name != self.encoder_name or dimension != self.dimension:
            raise IncompatibleArtifact(
                f"bank was built with {self.encoder_name} ({self.dimension}-D); got {encoder_name} ({dimension}-D)"
            )

    # ---- queries ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.texts)

    @property
    def vectors_exact(self) -> bool:
        """Whether :meth:`vector` returns the vectors as added (kept, or an index that stores them whole:
        ``Flat``, ``HNSW32``, ``IVF...,Flat``) rather than an approximation decoded from codes (PQ, SQ)."""
        import faiss

        if self.vectors is not None:
            return True
        index = faiss.downcast_index(self.index)
        if isinstance(index, faiss.IndexHNSW):
            index = faiss.downcast_index(index.storage)
        return isinstance(index, (faiss.IndexFlat, faiss.IndexIVFFlat))

    def vector(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Unit vectors of entries (stored, else reconstructed from the index) ``[len(ids), D]``.

        >>> bank.vector([0, 5]).shape      # doctest: +SKIP
        (2, 768)
        """
        import faiss

        ids = np.asarray(ids, dtype=np.int64)
        if self.vectors is not None:
            return self.vectors[ids].astype(np.float32)
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None and ivf.direct_map.type == faiss.DirectMap.NoMap:
            ivf.make_direct_map()  # an inverted-list index finds an id's list through this map (8 bytes per entry)
        try:
            out = np.vstack([self.index.reconstruct(int(i)) for i in ids]) if len(ids) else np.zeros((0, self.dimension))
        except RuntimeError as exc:
            raise InvalidInput(f"index {self.config.index_factory!r} cannot return vectors; keep vectors in the bank") from exc
        return self._normalise(out)

    def search(self, vectors: np.ndarray, k: int = 10) -> list[list[Hit]]:
        """Per query vector, the ``k`` nearest entries as ``(text, score, id)``, best first."""
        if len(self.texts) == 0:
            raise EmptyBank("the phrase bank is empty; build it from a corpus first")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidInput(f"k must be an int >= 1, got {k!r}")
        queries, _ = as_query_matrix(vectors, self.dimension)
        k_eff = min(k, len(self.texts))
        scores, ids = self.index.search(queries, k_eff)
        results = []
        for q, row_scores, row_ids in zip(queries, scores, ids):
            keep = row_ids >= 0
            row_ids, row_scores = row_ids[keep], row_scores[keep]
            if self.vectors is not None and self.config.index_factory != "Flat":
                row_scores = self.vectors[row_ids].astype(np.float32) @ q  # exact cosine
                order = np.argsort(-row_scores, kind="stable")
                row_ids, row_scores = row_ids[order], row_scores[order]
            results.append([Hit(self.texts[i], min(float(s), 1.0), int(i)) for i, s in zip(row_ids, row_scores)])
        return results

    # ---- persistence --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the bank as a folder, atomically (a crash leaves the old folder or the new one). Saving over an
        existing bank keeps the files it does not write itself, such as a card."""
        import faiss

        with _atomic.atomic_dir(path, owned={_TEXTS, _VECTORS, _INDEX, "config.json"}) as tmp:
            with gzip.open(tmp / _TEXTS, "wt", encoding="utf-8", compresslevel=6) as fh:
                for text in self.texts:
                    fh.write(json.dumps(text, ensure_ascii=False) + "\n")
            if self.vectors is not None:
                np.save(tmp / _VECTORS, self.vectors, allow_pickle=False)
            faiss.write_index(self.index, str(tmp / _INDEX))
            files = {p.name: {"bytes": p.stat().st_size, "sha256": _atomic.sha256_file(p)} for p in sorted(tmp.iterdir())}
            meta = {
                "type": "phrase_bank",
                "format_version": FORMAT_VERSION,
                "encoder": self.encoder_name,
                "dimension": self.dimension,
                "size": len(self.texts),
                **self.config.to_dict(),
                "files": files,
                "metadata": self.metadata,
            }
            _atomic.write_json(tmp / "config.json", meta)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        encoder_name: str | None = None,
        dimension: int | None = None,
        verify: bool = True,
    ) -> "PhraseBank":
        """Load a bank folder. ``encoder_name``/``dimension``, when given, must match the bank's."""
        import faiss

        path = Path(path)
        meta = read_artifact_config(path, "phrase_bank", FORMAT_VERSION, "phrase bank")
        if (encoder_name is not None and encoder_name != meta["encoder"]) or (dimension is not None and dimension != meta["dimension"]):
            raise IncompatibleArtifact(
                f"bank {path} was built with {meta['encoder']} ({meta['dimension']}-D); "
                f"this run uses {encoder_name or meta['encoder']} ({dimension or meta['dimension']}-D)"
            )
        for name, expect in meta.get("files", {}).items():
            file = path / name
            if not file.exists():
                raise CorruptArtifact(f"{file}: missing from the bank folder")
            if file.stat().st_size != expect["bytes"]:
                raise CorruptArtifact(f"{file}: {file.stat().st_size} bytes, expected {expect['bytes']} (truncated?)")
            if verify and _atomic.sha256_file(file) != expect["sha256"]:
                raise CorruptArtifact(f"{file}: checksum mismatch (the file is damaged)")
        try:
            with gzip.open(path / _TEXTS, "rt", encoding="utf-8") as fh:
                texts = [json.loads(line) for line in fh]
        except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptArtifact(f"{path / _TEXTS}: cannot be read ({exc})") from exc
        vectors = None
        if (path / _VECTORS).exists():
            try:
                vectors = np.load(path / _VECTORS, allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:
                raise CorruptArtifact(f"{path / _VECTORS}: cannot be read ({exc})") from exc
        try:
            index = faiss.read_index(str(path / _INDEX))
        except RuntimeError as exc:
            raise CorruptArtifact(f"{path / _INDEX}: not a readable faiss index") from exc
        if index.ntotal != len(texts) or (vectors is not None and vectors.shape != (len(texts), meta["dimension"])):
            raise CorruptArtifact(f"{path}: {len(texts)} texts, index of {index.ntotal}, vectors {None if vectors is None else vectors.shape}")
        config = PhraseBankConfig.from_dict({k: meta[k] for k in PhraseBankConfig.field_names()})
        return cls(texts, vectors, index, encoder_name=meta["encoder"], dimension=meta["dimension"], config=config, metadata=meta.get("metadata"))

    def memory_bytes(self) -> int:
        """Approximate resident size of vectors + index + texts."""
        import faiss

        index_bytes = faiss.serialize_index(self.index).nbytes
        vec_bytes = 0 if self.vectors is None else self.vectors.nbytes
        text_bytes = sum(len(t) + 49 for t in self.texts) + 8 * len(self.texts)
        return int(index_bytes + vec_bytes + text_bytes)
