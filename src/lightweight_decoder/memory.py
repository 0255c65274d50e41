"""Retrieval memory for the generative decoder: the word pieces of a phrase bank's nearest texts.

An embedding alone tells a small model the topic of a sentence, but rarely which names and content words it
holds; the bank's nearest texts to the same embedding hold more of them (`python bench/memory.py` measures
both). A decoder whose model has ``memory_len > 0`` reads those token ids before its prefix, so it can copy a
word it sees instead of guessing it.

The memory of an embedding is built the same way at training time (from the training sentence's vector, its own
text excluded) and at decoding time: the bank's ``neighbours`` nearest texts in rank order, tokenized, each token
id kept once, frequent tokens (``skip_ids``: punctuation, "the", ...) left out, cut or padded to ``memory_len``.

>>> cfg = MemoryConfig(bank="default", neighbours=8)
>>> MemoryConfig.from_dict(cfg.to_dict()) == cfg
True
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .config import BaseConfig, _check, _is_int
from .errors import ModelNotFound

if TYPE_CHECKING:  # pragma: no cover
    from .phrasebank import PhraseBank

__all__ = ["MemoryConfig", "Retriever", "frequent_token_ids", "memory_ids"]


@dataclasses.dataclass
class MemoryConfig(BaseConfig):
    """Where a decoder's memory comes from: ``bank`` ("default": the shipped bank, or a bank folder), how many
    of its nearest texts are read, and the token ids left out (computed from the training texts when None)."""

    bank: str = "default"
    neighbours: int = 8
    skip_ids: list[int] | None = None

    def validate(self) -> None:
        _check(isinstance(self.bank, str) and bool(self.bank.strip()), f"memory bank must be 'default' or a folder, got {self.bank!r}")
        self._check_ints("neighbours", minimum=1)
        _check(self.skip_ids is None or (isinstance(self.skip_ids, list) and all(_is_int(i) and i >= 0 for i in self.skip_ids)),
               "skip_ids must be a list of token ids or null")

    def bank_path(self) -> Path:
        """The bank folder this config names."""
        from .paths import default_paths

        return default_paths()["bank"] if self.bank == "default" else Path(self.bank).expanduser()

    @staticmethod
    def bank_name(path: str | Path | None) -> str:
        """How a config names the bank folder ``path`` (None: the shipped one): "default" for the shipped bank, so
        that a decoder trained on it stays portable with the repository, else the absolute path."""
        from .paths import default_paths

        if path is None or Path(path).resolve() == default_paths()["bank"].resolve():
            return "default"
        return str(Path(path).resolve())


def frequent_token_ids(tokenizer: Any, texts: Sequence[str], share: float = 0.02, sample: int = 100_000) -> list[int]:
    """Token ids found in more than ``share`` of ``texts`` (the first ``sample``): punctuation, articles, frequent
    word pieces. They carry little of what a sentence says and would fill the memory's slots.

    >>> frequent_token_ids(tokenizer, ["the cat.", "the dog.", "a bird"], share=0.5)   # doctest: +SKIP
    [the-id, .-id]
    """
    texts = list(texts[:sample])
    counts: Counter = Counter()
    for enc in tokenizer.encode_batch(texts):
        counts.update(set(enc.ids))
    return sorted(t for t, c in counts.items() if c > share * len(texts))


def memory_ids(neighbour_texts: Sequence[Sequence[str]], token_ids: dict[str, list[int]], length: int, skip: set[int],
               pad_id: int) -> np.ndarray:
    """(B, ``length``) int64 memory rows: per row, the token ids of its texts in order, each once, ``skip`` left out,
    cut at ``length`` and padded with ``pad_id``. ``token_ids`` maps every text to its ids."""
    out = np.full((len(neighbour_texts), length), pad_id, dtype=np.int64)
    for row, texts in enumerate(neighbour_texts):
        seen: dict[int, None] = {}  # insertion-ordered set
        for text in texts:
            for tok in token_ids[text]:
                if tok not in skip and tok not in seen:
                    seen[tok] = None
            if len(seen) >= length:
                break
        ids = list(seen)[:length]
        out[row, :len(ids)] = ids
    return out


class Retriever:
    """Embeddings -> memory rows for a decoder: searches ``bank`` and tokenizes what it finds.

    >>> retriever = Retriever(bank, tokenizer, length=64, config=MemoryConfig(skip_ids=[...]), pad_id=0)   # doctest: +SKIP
    >>> retriever(vectors).shape
    (len(vectors), 64)
    """

    max_cached = 100_000  # texts whose token ids are kept between calls

    def __init__(self, bank: "PhraseBank", tokenizer: Any, *, length: int, config: MemoryConfig, pad_id: int) -> None:
        self.bank, self.tokenizer, self.length, self.config, self.pad_id = bank, tokenizer, length, config, pad_id
        self.skip = set(config.skip_ids or ())
        self._ids: dict[str, list[int]] = {}  # text -> token ids, filled as texts are first retrieved

    @classmethod
    def load(cls, config: MemoryConfig, tokenizer: Any, *, length: int, pad_id: int, encoder_name: str, dimension: int,
             bank: "PhraseBank | None" = None) -> "Retriever":
        """A retriever over ``bank``, or over the bank ``config`` names, which must be built for the decoder's encoder."""
        from .phrasebank import PhraseBank

        if bank is None:
            path = config.bank_path()
            if not (path / "config.json").exists():
                raise ModelNotFound(f"this decoder reads its memory from the phrase bank {path}, which is not there; "
                                    f"build it with `lightweight-decoder bank build` or pass another bank")
            bank = PhraseBank.load(path, encoder_name=encoder_name, dimension=dimension)
        else:
            bank.check_space(encoder_name, dimension)
        return cls(bank, tokenizer, length=length, config=config, pad_id=pad_id)

    def __call__(self, vectors: np.ndarray, exclude: Sequence[str] | None = None, batch_size: int = 4096,
                 show_progress_bar: bool = False) -> np.ndarray:
        """(N, length) memory rows for unit vectors (N, D). ``exclude[i]``, a text never put in row i's memory
        (training: the sentence itself, when the bank holds it)."""
        from tqdm.auto import tqdm

        k = self.config.neighbours + (exclude is not None)
        rows = []
        for start in tqdm(range(0, len(vectors), batch_size), desc="retrieving memory", unit="batch", disable=not show_progress_bar):
            hits = self.bank.search(np.asarray(vectors[start:start + batch_size], dtype=np.float32), k=k)
            texts = []
            for i, row in enumerate(hits):
                own = exclude[start + i] if exclude is not None else None
                texts.append([h.text for h in row if h.text != own][: self.config.neighbours])
            # this call's texts -> ids in a local map, so that another thread clearing the cache cannot take them away
            wanted = {t for row in texts for t in row}
            known = {t: ids for t in wanted if (ids := self._ids.get(t)) is not None}
            new = [t for t in wanted if t not in known]
            if len(self._ids) > self.max_cached:  # a long-running server would otherwise hold the whole bank's ids
                self._ids.clear()
            for text, enc in zip(new, self.tokenizer.encode_batch(new)):
                known[text] = self._ids[text] = enc.ids
            rows.append(memory_ids(texts, known, self.length, self.skip, self.pad_id))
        return np.concatenate(rows) if rows else np.full((0, self.length), self.pad_id, dtype=np.int64)
