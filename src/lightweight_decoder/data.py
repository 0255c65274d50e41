"""Corpora: reading, sentence splitting, cleaning, and the resumable embedding cache.

>>> split_sentences("Dr. Smith arrived. He sat down!")
['Dr. Smith arrived.', 'He sat down!']
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import numpy as np

from . import _atomic
from .errors import CorruptArtifact, IncompatibleArtifact, InvalidInput

if TYPE_CHECKING:  # pragma: no cover
    from .encoder import TextEncoder

__all__ = [
    "read_lines",
    "iter_json_lines",
    "split_sentences",
    "normalize_whitespace",
    "prepare_corpus",
    "EmbeddingCache",
    "default_cache_dir",
]

logger = logging.getLogger(__name__)

_WS = re.compile(r"\s+")
# A sentence ends at . ! or ? (optionally followed by a closing quote or bracket) before a space
# and an upper-case letter, digit or opening quote.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "e.g", "i.e", "no", "vol",
    "fig", "inc", "ltd", "co", "corp", "gen", "col", "lt", "sgt", "capt", "rev", "approx", "jan", "feb",
    "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "u.k", "ca",
}


def normalize_whitespace(text: str) -> str:
    """Collapse runs of whitespace to one space and strip the ends."""
    return _WS.sub(" ", text).strip()


def split_sentences(paragraph: str) -> list[str]:
    """Split a paragraph into sentences, keeping abbreviations (``Dr.``, ``e.g.``) and initials intact."""
    text = normalize_whitespace(paragraph)
    if not text:
        return []
    pieces: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        candidate = text[start:match.start() + len(match.group(0).rstrip())]
        last_word = candidate.rstrip("\"')]").rstrip(".!?").rsplit(" ", 1)[-1].lower()
        if candidate.rstrip("\"')]").endswith(".") and (last_word in _ABBREVIATIONS or len(last_word) == 1):
            continue  # "Dr. Smith", "J. R. R. Tolkien"
        pieces.append(candidate.strip())
        start = match.end()
    pieces.append(text[start:].strip())
    return [p for p in pieces if p]


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")  # type: ignore[return-value]
    return open(path, encoding="utf-8")


def iter_json_lines(lines: Iterable[str], source: str) -> Iterator[tuple[int, object]]:
    """Parse JSON lines, skipping blank ones; a bad line raises :class:`CorruptArtifact` naming ``source:line``."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorruptArtifact(f"{source}:{lineno}: not valid JSON ({exc.msg})") from exc


def read_lines(paths: Iterable[str | os.PathLike[str]]) -> Iterator[str]:
    """Yield the raw texts of ``.txt``, ``.txt.gz``, ``.jsonl`` or ``.jsonl.gz`` files.

    A JSON line is an object with a ``"text"`` field, or a bare string.
    """
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InvalidInput(f"corpus file not found: {path}")
        try:
            with _open_text(path) as fh:
                if not path.name.endswith((".jsonl", ".jsonl.gz")):
                    yield from (line for line in fh if line.strip())
                    continue
                for lineno, obj in iter_json_lines(fh, str(path)):
                    text = obj.get("text") if isinstance(obj, dict) else obj
                    if not isinstance(text, str):
                        raise CorruptArtifact(f"{path}:{lineno}: expected a string or an object with a 'text' field")
                    yield text
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise CorruptArtifact(f"{path}: cannot be read ({exc})") from exc


def prepare_corpus(
    paths: Sequence[str | os.PathLike[str]],
    *,
    split: bool = False,
    min_words: int = 1,
    max_words: int = 64,
    dedupe: bool = True,
    seed: int | None = 0,
    limit: int | None = None,
    offset: int = 0,
) -> list[str]:
    """Read, (optionally) sentence-split, normalise, length-filter, deduplicate and shuffle texts.

    The order is a seeded shuffle, so a larger ``limit`` extends a smaller one: an embedding cache
    built for the first 100k texts is reused when asking for 300k. ``offset`` skips the first texts of
    that order (say, the ones a bank already holds) and ``limit`` counts from there.
    """
    if min_words < 1 or max_words < min_words:
        raise InvalidInput(f"need 1 <= min_words <= max_words, got {min_words}, {max_words}")
    if offset < 0:
        raise InvalidInput(f"offset must be >= 0, got {offset}")
    seen: set[str] = set()
    texts: list[str] = []
    for raw in read_lines(paths):
        for text in (split_sentences(raw) if split else [normalize_whitespace(raw)]):
            n_words = text.count(" ") + 1
            if not text or n_words < min_words or n_words > max_words:
                continue
            if dedupe:
                if text in seen:
                    continue
                seen.add(text)
            texts.append(text)
    if seed is not None:
        random.Random(seed).shuffle(texts)
    return texts[offset:offset + limit] if limit is not None else texts[offset:]


def default_cache_dir(
    paths: Sequence[str | os.PathLike[str]], encoder_name: str, precision: str, **options: object
) -> Path:
    """Where the embeddings of this corpus selection live under the cache home (``auto`` precision resolved)."""
    from .encoder import cache_home, resolve_precision

    precision = resolve_precision(precision)
    key = hashlib.sha1()
    for p in paths:
        path = Path(p)
        key.update(f"{path.name}:{path.stat().st_size}\n".encode())
    key.update(json.dumps(options, sort_keys=True).encode())
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_name)
    return cache_home() / "embeddings" / f"{safe}-{precision}-{key.hexdigest()[:12]}"


class EmbeddingCache:
    """Vectors of a text list, written in shards so that an interrupted run resumes where it stopped.

    Each shard is ``shard-NNNNN.txt`` (its texts) and ``shard-NNNNN.npy`` (float16 vectors), each
    written atomically; a shard counts once its ``.npy`` exists. ``config.json`` records the encoder,
    dimension and precision, and the cache refuses to mix them.

    >>> cache = EmbeddingCache("emb", encoder_name="all-mpnet-base-v2", dimension=768, precision="bf16")  # doctest: +SKIP
    >>> cache.build(texts, encoder)      # doctest: +SKIP
    >>> texts, vectors = cache.load()    # doctest: +SKIP
    """

    FORMAT_VERSION = 1

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        encoder_name: str,
        dimension: int,
        precision: str = "auto",
        shard_size: int = 4096,
    ) -> None:
        from .encoder import resolve_precision

        self.path = Path(path)
        precision = resolve_precision(precision)  # a cache records the precision its vectors were made in
        wanted = {
            "type": "embedding_cache",
            "format_version": self.FORMAT_VERSION,
            "encoder": encoder_name,
            "dimension": int(dimension),
            "precision": precision,
            "shard_size": int(shard_size),
        }
        config_path = self.path / "config.json"
        if config_path.exists():
            found = self._read_config(config_path)
            diffs = [f"{k}: cache has {found.get(k)!r}, this run uses {v!r}" for k, v in wanted.items() if found.get(k) != v]
            if diffs:
                raise IncompatibleArtifact(
                    f"embedding cache {self.path} was built differently ({'; '.join(diffs)}); "
                    f"use another cache folder"
                )
        else:
            _atomic.write_json(config_path, wanted)
        self.config = wanted

    @staticmethod
    def _read_config(path: Path) -> dict:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CorruptArtifact(f"{path}: not a readable cache config ({exc})") from exc

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> "EmbeddingCache":
        """Open an existing cache, taking its settings from its config.json."""
        config_path = Path(path) / "config.json"
        if not config_path.exists():
            raise InvalidInput(f"{path} is not an embedding cache (no config.json)")
        cfg = cls._read_config(config_path)
        if cfg.get("type") != "embedding_cache" or cfg.get("format_version") != cls.FORMAT_VERSION:
            raise IncompatibleArtifact(f"{config_path}: not an embedding cache of format {cls.FORMAT_VERSION}")
        return cls(path, encoder_name=cfg["encoder"], dimension=cfg["dimension"], precision=cfg["precision"], shard_size=cfg["shard_size"])

    @property
    def shard_size(self) -> int:
        return int(self.config["shard_size"])

    def _shard(self, index: int) -> tuple[Path, Path]:
        return self.path / f"shard-{index:05d}.txt", self.path / f"shard-{index:05d}.npy"

    def _shard_texts(self, index: int) -> list[str] | None:
        txt, npy = self._shard(index)
        if not (txt.exists() and npy.exists()):
            return None
        return txt.read_text(encoding="utf-8").split("\n")

    def _load_vectors(self, index: int, rows: int) -> np.ndarray:
        _, npy = self._shard(index)
        try:
            vectors = np.load(npy, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise CorruptArtifact(f"{npy}: damaged shard ({exc}); delete it and run again to re-embed") from exc
        if vectors.shape != (rows, self.config["dimension"]):
            raise CorruptArtifact(f"{npy}: shape {vectors.shape}, expected ({rows}, {self.config['dimension']})")
        return vectors

    def count(self) -> int:
        """How many texts have vectors so far (complete shards, in order)."""
        total, index = 0, 0
        while (texts := self._shard_texts(index)) is not None:
            total += len(texts)
            index += 1
        return total

    def build(
        self,
        texts: Sequence[str],
        encoder: "TextEncoder",
        *,
        batch_size: int = 64,
        show_progress_bar: bool = True,
    ) -> None:
        """Embed ``texts`` shard by shard, skipping shards already done for the same texts."""
        from tqdm.auto import tqdm

        if encoder.name != self.config["encoder"] or encoder.dimension != self.config["dimension"]:
            raise IncompatibleArtifact(
                f"embedding cache {self.path} holds {self.config['encoder']} ({self.config['dimension']}-D) "
                f"vectors; the encoder given is {encoder.name} ({encoder.dimension}-D)"
            )
        if any("\n" in t for t in texts):
            raise InvalidInput("texts in an embedding cache must not contain newlines; normalise them first")
        n_shards = (len(texts) + self.shard_size - 1) // self.shard_size
        bar = tqdm(total=len(texts), desc="embedding", unit="sent", disable=not show_progress_bar, smoothing=0.05)
        try:
            for index in range(n_shards):
                chunk = list(texts[index * self.shard_size:(index + 1) * self.shard_size])
                existing = self._shard_texts(index)
                if existing is not None and existing[: len(chunk)] == chunk:  # done (maybe for a longer list)
                    bar.update(len(chunk))
                    continue
                if existing is not None and chunk[: len(existing)] != existing:
                    raise IncompatibleArtifact(
                        f"shard {index} of {self.path} was built from other texts; "
                        f"a cache holds one text list (same corpus, options and seed)"
                    )
                vectors = encoder.encode(
                    chunk, batch_size=batch_size, precision=self.config["precision"], show_progress_bar=False
                )
                txt, npy = self._shard(index)
                npy.unlink(missing_ok=True)  # a replaced (partial) shard is not complete until both are written
                _atomic.write_text(txt, "\n".join(chunk))
                with _atomic.atomic_path(npy) as tmp:
                    with open(tmp, "wb") as fh:
                        np.save(fh, vectors.astype(np.float16), allow_pickle=False)
                bar.update(len(chunk))
        finally:
            bar.close()

    def load(self, limit: int | None = None) -> tuple[list[str], np.ndarray]:
        """Texts and float16 vectors of the complete shards, in order (at most ``limit``)."""
        texts: list[str] = []
        parts: list[np.ndarray] = []
        index = 0
        while (limit is None or len(texts) < limit) and (shard := self._shard_texts(index)) is not None:
            parts.append(self._load_vectors(index, len(shard)))
            texts.extend(shard)
            index += 1
        vectors = np.concatenate(parts) if parts else np.zeros((0, self.config["dimension"]), np.float16)
        if limit is not None:
            texts, vectors = texts[:limit], vectors[:limit]
        return texts, vectors
