"""Byte-level BPE tokenizer for the generative decoder (cased), trained with the `tokenizers` library.

>>> tok = train_tokenizer(["The cat sat.", "A dog ran."] * 50, vocab_size=300)
>>> tok.decode(tok.encode("The cat sat.").ids)
'The cat sat.'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from . import _atomic
from .errors import CorruptArtifact

__all__ = ["train_tokenizer", "load_tokenizer", "save_tokenizer", "SPECIAL_TOKENS"]

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>"]  # ids 0, 1, 2: ModelConfig.pad_id, bos_id, eos_id


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2):
    """Train a byte-level BPE on ``texts`` (any text encodes: unknown bytes fall back to byte tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def save_tokenizer(tokenizer, path: str | os.PathLike[str]) -> None:
    _atomic.write_text(path, tokenizer.to_str())


def load_tokenizer(path: str | os.PathLike[str]):
    from tokenizers import Tokenizer

    path = Path(path)
    try:
        tokenizer = Tokenizer.from_str(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - tokenizers raises its own exception types
        raise CorruptArtifact(f"{path}: not a readable tokenizer ({exc})") from None
    for i, token in enumerate(SPECIAL_TOKENS):
        if tokenizer.token_to_id(token) != i:
            raise CorruptArtifact(f"{path}: special token {token!r} should have id {i}")
    return tokenizer
