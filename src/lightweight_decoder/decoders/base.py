"""What every Module 3 decoder shares: the result type, the protocol, monitoring and input checks."""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Candidate", "DecodeResult", "Decoder", "TextDecoder", "PerformanceMonitor", "LRUCache"]


@dataclasses.dataclass
class Candidate:
    """A text the decoder considered, its cosine to the target, and where it came from."""

    text: str
    score: float
    source: str = "bank"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class DecodeResult:
    """The outcome of one decode.

    ``score`` is the cosine between the target and the output's vector (exact when the decoder could
    compute it). ``fallback_used`` is true when the input was rejected in non-strict mode and ``text``
    is empty; ``error`` then says why.
    """

    text: str
    score: float
    method: str
    candidates: list[Candidate] = dataclasses.field(default_factory=list)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    fallback_used: bool = False
    error: str | None = None
    token_ids: list[int] | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["candidates"] = [c.to_dict() for c in self.candidates]
        return out


@runtime_checkable
class Decoder(Protocol):
    """Module 3: an embedding in, text out."""

    embedding_dim: int

    def decode(self, vectors: np.ndarray) -> str | list[str]: ...

    def generate(self, vectors: np.ndarray, **kwargs: Any) -> DecodeResult | list[DecodeResult]: ...


class TextDecoder:
    """Shared ``decode``: what :meth:`generate` returns, reduced to its text (a list for a matrix)."""

    def generate(self, vectors: np.ndarray, **kwargs: Any) -> "DecodeResult | list[DecodeResult]":  # pragma: no cover
        raise NotImplementedError

    def decode(self, vectors: np.ndarray, **kwargs: Any) -> str | list[str]:
        """A vector ``[D]`` -> text; a matrix ``[N, D]`` -> list of texts. ``kwargs`` go to ``generate``."""
        result = self.generate(vectors, **kwargs)
        return [r.text for r in result] if isinstance(result, list) else result.text


class PerformanceMonitor:
    """Latency percentiles, throughput and cache hit rate over the recent decodes (thread-safe)."""

    def __init__(self, window: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._latencies: collections.deque[float] = collections.deque(maxlen=window)
        self.count = 0
        self.errors = 0
        self.fallbacks = 0
        self._busy = 0.0

    def record(self, seconds: float, *, n: int = 1, error: bool = False, fallbacks: int = 0) -> None:
        with self._lock:
            per_item = seconds / max(n, 1)
            self._latencies.extend([per_item] * n)
            self.count += n
            self._busy += seconds
            self.errors += int(error)
            self.fallbacks += fallbacks

    def stats(self, cache: "LRUCache | None" = None) -> dict[str, float]:
        with self._lock:
            lat = np.array(self._latencies) * 1000.0 if self._latencies else np.zeros(1)
            out = {
                "decodes": self.count,
                "errors": self.errors,
                "fallbacks": self.fallbacks,
                "p50_ms": float(np.percentile(lat, 50)),
                "p95_ms": float(np.percentile(lat, 95)),
                "mean_ms": float(lat.mean()),
                "throughput_per_s": float(self.count / self._busy) if self._busy > 0 else 0.0,
            }
        if cache is not None:
            out.update(cache.stats())
        return out


class LRUCache:
    """A small thread-safe LRU map with hit/miss counters."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Any) -> Any | None:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return None

    def put(self, key: Any, value: Any) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def stats(self) -> dict[str, float]:
        total = self.hits + self.misses
        return {"cache_hits": self.hits, "cache_misses": self.misses, "cache_hit_rate": self.hits / total if total else 0.0}


def timed() -> "_Timer":
    return _Timer()


class _Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: dict[str, float] = {}
        self._last = self.start

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.marks[f"{name}_ms"] = (now - self._last) * 1000.0
        self._last = now

    def done(self) -> dict[str, float]:
        self.marks["total_ms"] = (time.perf_counter() - self.start) * 1000.0
        return dict(self.marks)

