"""One dataclass per component. Each validates itself and round-trips through JSON.

>>> cfg = PhraseDecoderConfig(method="weighted", top_k=8)
>>> PhraseDecoderConfig.from_dict(cfg.to_dict()) == cfg
True
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from . import _atomic
from .errors import ConfigError, CorruptArtifact

__all__ = [
    "BaseConfig",
    "EncoderConfig",
    "PhraseBankConfig",
    "PhraseDecoderConfig",
    "ScreenTrainConfig",
    "ModelConfig",
    "GenerationConfig",
    "PRESETS",
    "ASSEMBLY_METHODS",
    "PRECISIONS",
    "QUANTIZATION_SCHEMES",
    "RUNTIMES",
    "WEIGHT_FORMATS",
]

T = TypeVar("T", bound="BaseConfig")

PRECISIONS = ("auto", "fp32", "bf16")  # auto: bf16 only where the CPU has bf16 instructions
ASSEMBLY_METHODS = ("greedy", "weighted", "beam_search", "context_aware")
VECTOR_DTYPES = ("float16", "float32", "none")
# weight formats a loaded generative decoder can be converted to for inference (GenerativeDecoder.quantize)
QUANTIZATION_SCHEMES = ("fp16", "int8")
# what computes a loaded generative decoder: torch (every strategy) or NumPy alone (greedy; GenerativeDecoder.load)
RUNTIMES = ("torch", "numpy")
# how a generative decoder's float weights are stored on disk (GenerativeDecoder.save); loaded, they are fp32 again
WEIGHT_FORMATS = ("fp32", "fp16")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def check_weight_format(weights: str) -> str:
    """``weights`` if it is one of :data:`WEIGHT_FORMATS`, else a ConfigError that lists them."""
    _check(weights in WEIGHT_FORMATS, f"unknown weight format {weights!r}; choose one of {list(WEIGHT_FORMATS)}")
    return weights


@dataclasses.dataclass
class BaseConfig:
    """Shared behaviour: ``validate()``, ``to_dict()``/``from_dict()``, ``save()``/``load()``."""

    kind: ClassVar[str] = "base"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first field that is out of range."""

    def _check_ints(self, *names: str, minimum: int) -> None:
        """Each named field must be an int >= ``minimum`` (bools are not ints here)."""
        for name in names:
            value = getattr(self, name)
            _check(_is_int(value) and value >= minimum, f"{name} must be an int >= {minimum}, got {value!r}")

    def _check_fractions(self, *names: str) -> None:
        """Each named field must be a number in [0, 1]."""
        for name in names:
            value = getattr(self, name)
            _check(_is_number(value) and 0.0 <= value <= 1.0, f"{name} must be a number in [0, 1], got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Build from a dict; unknown keys raise :class:`ConfigError` listing the valid ones."""
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} expects a JSON object, got {type(data).__name__}")
        valid = cls.field_names()
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} key(s) {unknown}; valid keys are: {', '.join(valid)}"
            )
        try:
            return cls(**data)
        except TypeError as exc:  # wrong types that dataclasses cannot coerce
            raise ConfigError(f"{cls.__name__}: {exc}") from exc

    def replace(self: T, **changes: Any) -> T:
        """A copy with some fields changed (validated)."""
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise ConfigError(
                f"unknown {type(self).__name__} key(s) {unknown}; "
                f"valid keys are: {', '.join(self.field_names())}"
            )
        return dataclasses.replace(self, **changes)

    def save(self, path: str | os.PathLike[str]) -> None:
        _atomic.write_json(path, self.to_dict())

    @classmethod
    def load(cls: type[T], path: str | os.PathLike[str]) -> T:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptArtifact(f"{path}: not a readable JSON config ({exc})") from exc
        return cls.from_dict(data)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass
class EncoderConfig(BaseConfig):
    """Module 1. ``model`` is a known name (see ``lightweight-decoder info``) or a folder path."""

    model: str = "all-mpnet-base-v2"
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 64

    def validate(self) -> None:
        _check(isinstance(self.model, str) and self.model.strip() != "", "model must be a non-empty string")
        _check(isinstance(self.device, str) and self.device != "", "device must be a non-empty string")
        _check(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        _check(_is_int(self.batch_size) and self.batch_size >= 1, f"batch_size must be an int >= 1, got {self.batch_size!r}")


@dataclasses.dataclass
class PhraseBankConfig(BaseConfig):
    """How a bank stores and indexes its vectors.

    ``index_factory`` is a faiss factory string: ``"Flat"`` (exact), ``"HNSW32"``,
    ``"IVF1024,SQ8"``, ``"IVF4096,PQ64"``... Vectors are L2-normalised and compared by inner product.
    ``vector_dtype="none"`` keeps only the index (smallest on disk; scores are the index's own).
    """

    index_factory: str = "Flat"
    vector_dtype: str = "float16"
    nprobe: int = 16
    ef_search: int = 128

    def validate(self) -> None:
        _check(isinstance(self.index_factory, str) and self.index_factory.strip() != "", "index_factory must be a non-empty faiss factory string")
        _check(self.vector_dtype in VECTOR_DTYPES, f"vector_dtype must be one of {VECTOR_DTYPES}, got {self.vector_dtype!r}")
        _check(_is_int(self.nprobe) and self.nprobe >= 1, f"nprobe must be an int >= 1, got {self.nprobe!r}")
        _check(_is_int(self.ef_search) and self.ef_search >= 1, f"ef_search must be an int >= 1, got {self.ef_search!r}")


@dataclasses.dataclass
class PhraseDecoderConfig(BaseConfig):
    """How :class:`PhraseBankDecoder` turns bank hits into text.

    method: ``greedy`` (best hit), ``weighted`` (consensus of the top-k), ``beam_search``
    (compositions of entries scored by re-encoding), ``context_aware`` (uses the session history).
    rerank / rerank_margin: for banks whose scores are approximate (PQ or SQ codes, no vectors kept),
    hits whose approximate score is within ``rerank_margin`` of the best are re-encoded and ordered by
    exact cosine.
    encode_precision: precision of those re-encodings (and of ``beam_search``'s). ``auto`` picks bf16 on
    CPUs with bf16 instructions (~3x faster there, cosine ~1e-4 from fp32) and fp32 elsewhere, where
    bf16 autocast is emulated and several times slower.
    """

    method: str = "greedy"
    top_k: int = 10
    rerank: bool = True
    rerank_margin: float = 0.05
    encode_precision: str = "auto"
    strict: bool = True
    postprocess: bool = True
    cache_size: int = 1024
    cache_decimals: int = 3
    consensus_weight: float = 0.3
    beam_width: int = 4
    max_parts: int = 2
    context_window: int = 5
    repeat_penalty: float = 0.15
    coherence_weight: float = 0.1
    session_ttl: float = 1800.0

    def validate(self) -> None:
        _check(self.method in ASSEMBLY_METHODS, f"method must be one of {ASSEMBLY_METHODS}, got {self.method!r}")
        self._check_ints("top_k", "beam_width", "max_parts", "context_window", minimum=1)
        self._check_ints("cache_size", minimum=0)
        _check(_is_int(self.cache_decimals) and 1 <= self.cache_decimals <= 8, f"cache_decimals must be an int in [1, 8], got {self.cache_decimals!r}")
        self._check_fractions("consensus_weight", "repeat_penalty", "coherence_weight", "rerank_margin")
        _check(_is_number(self.session_ttl) and self.session_ttl > 0, f"session_ttl must be > 0 seconds, got {self.session_ttl!r}")
        _check(self.encode_precision in PRECISIONS, f"encode_precision must be one of {PRECISIONS}, got {self.encode_precision!r}")
        for name in ("rerank", "strict", "postprocess"):
            _check(isinstance(getattr(self, name), bool), f"{name} must be true or false")


@dataclasses.dataclass
class ScreenTrainConfig(BaseConfig):
    """How :func:`train_screen` fits a screen. ``rank`` is the size of a token vector (the map to the encoder's
    dimension is learned with them); ``dev_size`` texts (at most a tenth) are held out to measure the screen's cosine."""

    rank: int = 256
    epochs: int = 4
    batch_size: int = 512
    lr: float = 3e-3
    dev_size: int = 2048
    seed: int = 0

    def validate(self) -> None:
        self._check_ints("rank", "epochs", "batch_size", minimum=1)
        self._check_ints("dev_size", "seed", minimum=0)
        _check(_is_number(self.lr) and self.lr > 0, f"lr must be > 0, got {self.lr!r}")


# ---- the generative decoder: its transformer's shapes and its decoding settings ------------------
# (here rather than beside the torch code that uses them, so that reading a model folder does not import torch)

PRESETS: dict[str, dict[str, Any]] = {
    # the original design's budget: <= 1M parameters
    "tiny": dict(vocab_size=2048, d_model=128, n_layer=2, n_head=4, d_ff=344, prefix_len=2, prefix_hidden=192, cond_inject=True),
    "small": dict(vocab_size=8192, d_model=256, n_layer=4, n_head=4, d_ff=688, prefix_len=8, prefix_hidden=1024, cond_inject=True),
    # <= 30M parameters
    "base": dict(vocab_size=16384, d_model=384, n_layer=6, n_head=6, d_ff=1024, prefix_len=16, prefix_hidden=1536, cond_inject=True),
}


@dataclasses.dataclass
class ModelConfig(BaseConfig):
    """Shapes of :class:`PrefixLM`. ``embedding_dim`` comes from the encoder."""

    embedding_dim: int = 768
    vocab_size: int = 8192
    d_model: int = 256
    n_layer: int = 4
    n_head: int = 4
    d_ff: int = 688
    prefix_len: int = 8
    prefix_hidden: int = 1024
    max_len: int = 64
    dropout: float = 0.0
    rope_base: float = 10000.0
    # False by default so that configs saved before the field existed load as they were trained
    cond_inject: bool = False
    # per-layer scale/shift from the embedding (adaptive norm); zero-initialised like cond_inject
    cond_adaln: bool = False
    bow_loss_weight: float = 0.5
    # token slots before the prefix for retrieved candidate words (0: none)
    memory_len: int = 0
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    def validate(self) -> None:
        self._check_ints("embedding_dim", "vocab_size", "d_model", "n_layer", "n_head", "d_ff", "prefix_len", "prefix_hidden", "max_len",
                         minimum=1)
        self._check_ints("memory_len", minimum=0)
        _check(self.d_model % self.n_head == 0, f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")
        _check((self.d_model // self.n_head) % 2 == 0, "the head size must be even for rotary embeddings")
        _check(_is_number(self.dropout) and 0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout!r}")
        _check(_is_number(self.bow_loss_weight) and self.bow_loss_weight >= 0, "bow_loss_weight must be >= 0")
        _check(isinstance(self.cond_inject, bool), f"cond_inject must be true or false, got {self.cond_inject!r}")
        _check(isinstance(self.cond_adaln, bool), f"cond_adaln must be true or false, got {self.cond_adaln!r}")
        ids = (self.pad_id, self.bos_id, self.eos_id)
        _check(all(_is_int(i) and 0 <= i < self.vocab_size for i in ids) and len(set(ids)) == 3,
               f"pad/bos/eos ids must be distinct and < vocab_size, got {ids}")

    @property
    def context_len(self) -> int:
        """Positions before the text: the prefix vectors and the memory slots."""
        return self.prefix_len + self.memory_len

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "ModelConfig":
        """A named size: ``tiny`` (<= 1M parameters), ``small``, ``base`` (<= 30M)."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


@dataclasses.dataclass
class GenerationConfig(BaseConfig):
    """How to turn the model's next-token distributions into text."""

    max_new_tokens: int = 48
    num_beams: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    length_penalty: float = 1.0
    num_return_sequences: int = 1
    seed: int | None = None

    def validate(self) -> None:
        _check(_is_int(self.max_new_tokens) and self.max_new_tokens >= 1, f"max_new_tokens must be an int >= 1, got {self.max_new_tokens!r}")
        _check(_is_int(self.num_beams) and self.num_beams >= 1, f"num_beams must be an int >= 1, got {self.num_beams!r}")
        _check(isinstance(self.do_sample, bool), "do_sample must be true or false")
        _check(_is_number(self.temperature) and self.temperature > 0, f"temperature must be > 0, got {self.temperature!r}")
        _check(_is_int(self.top_k) and self.top_k >= 0, f"top_k must be an int >= 0 (0 disables it), got {self.top_k!r}")
        _check(_is_number(self.top_p) and 0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p!r}")
        _check(_is_number(self.repetition_penalty) and self.repetition_penalty > 0, f"repetition_penalty must be > 0, got {self.repetition_penalty!r}")
        _check(_is_int(self.no_repeat_ngram_size) and self.no_repeat_ngram_size >= 0, f"no_repeat_ngram_size must be an int >= 0, got {self.no_repeat_ngram_size!r}")
        _check(_is_number(self.length_penalty), f"length_penalty must be a number, got {self.length_penalty!r}")
        _check(_is_int(self.num_return_sequences) and self.num_return_sequences >= 1, f"num_return_sequences must be an int >= 1, got {self.num_return_sequences!r}")
        _check(self.seed is None or _is_int(self.seed), f"seed must be an int or null, got {self.seed!r}")
        if self.do_sample:
            _check(self.num_beams == 1, "do_sample with num_beams > 1 (beam sampling) is not supported; use one or the other")
        else:
            _check(self.num_return_sequences <= self.num_beams,
                   f"greedy/beam search returns at most num_beams sequences: num_return_sequences "
                   f"({self.num_return_sequences}) must be <= num_beams ({self.num_beams}), or set do_sample=True")

    def ignored_settings(self) -> list[str]:
        """Settings that have no effect with this strategy (each is warned about in :func:`generate`)."""
        default = GenerationConfig()
        ignored = []
        if not self.do_sample:
            ignored += [f"{k}={getattr(self, k)}" for k in ("temperature", "top_k", "top_p", "seed") if getattr(self, k) != getattr(default, k)]
        if self.num_beams == 1 and self.length_penalty != default.length_penalty:
            ignored.append(f"length_penalty={self.length_penalty}")
        return ignored
