"""Variant 1: nearest-neighbour decoding over a PhraseBank, with four assembly methods.

>>> decoder = PhraseBankDecoder(PhraseBank.load("models/default/bank"), encoder=encoder)  # doctest: +SKIP
>>> decoder.decode(encoder.encode("The cat sat on the mat."))                            # doctest: +SKIP
'The cat sat on the mat.'
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import ASSEMBLY_METHODS, PhraseDecoderConfig
from ..errors import ConfigError, DecoderError, EmptyBank, InvalidInput
from ..phrasebank import Hit, PhraseBank, as_query_matrix
from ..postprocess import join_pieces
from .base import Candidate, DecodeResult, TextDecoder, LRUCache, PerformanceMonitor, timed

if TYPE_CHECKING:  # pragma: no cover
    from ..encoder import TextEncoder

__all__ = ["PhraseBankDecoder"]

logger = logging.getLogger(__name__)

_CLAUSE_SPLIT = re.compile(r",\s+|;\s+|\s+(?=(?:and|but|which|who|while|after|because)\s)")
_DUPLICATE_COS = 0.95


class _Session:
    def __init__(self, window: int) -> None:
        self.history: collections.deque[tuple[str, np.ndarray]] = collections.deque(maxlen=window)
        self.last_used = time.monotonic()


class PhraseBankDecoder(TextDecoder):
    """Decode embeddings by searching a phrase bank.

    ``encoder`` is optional for ``greedy``, ``weighted`` and ``context_aware``; ``beam_search`` needs it
    to re-encode the texts it composes. With an encoder attached, banks whose index scores are
    approximate (PQ or SQ codes, no vectors kept) are re-ranked by re-encoding their top hits, so reported
    scores are exact cosines.
    """

    def __init__(self, bank: PhraseBank, config: PhraseDecoderConfig | None = None, *, encoder: "TextEncoder | None" = None) -> None:
        self.bank = bank
        self.config = config or PhraseDecoderConfig()
        self.encoder = encoder
        if encoder is not None:
            bank.check_encoder(encoder)
        if self.config.method == "beam_search" and encoder is None:
            raise ConfigError("method 'beam_search' re-encodes the texts it composes: pass encoder=")
        self.embedding_dim = bank.dimension
        self.monitor = PerformanceMonitor()
        self.cache = LRUCache(self.config.cache_size)
        self._sessions: dict[str, _Session] = {}
        self._sessions_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PhraseBankDecoder(bank={len(self.bank)} entries, method={self.config.method!r})"

    # ---- sessions -----------------------------------------------------------------------------
    def start_session(self, session_id: str | None = None) -> str:
        """Open a session whose recent outputs steer ``context_aware`` decoding. Returns its id."""
        session_id = session_id or uuid.uuid4().hex
        with self._sessions_lock:
            self._expire_sessions()
            self._sessions[session_id] = _Session(self.config.context_window)
        return session_id

    def reset_session(self, session_id: str) -> None:
        """Forget a session's history but keep it open."""
        with self._sessions_lock:
            self._session(session_id).history.clear()

    def end_session(self, session_id: str) -> None:
        with self._sessions_lock:
            self._sessions.pop(session_id, None)

    def session_history(self, session_id: str) -> list[str]:
        with self._sessions_lock:
            return [text for text, _ in self._session(session_id).history]

    def _expire_sessions(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if now - s.last_used > self.config.session_ttl]:
            del self._sessions[key]

    def _session(self, session_id: str) -> _Session:
        self._expire_sessions()
        session = self._sessions.get(session_id)
        if session is None:
            raise InvalidInput(f"unknown or expired session {session_id!r}; call start_session() first")
        session.last_used = time.monotonic()
        return session

    # ---- public decoding ----------------------------------------------------------------------

    def generate(
        self,
        vectors: np.ndarray,
        *,
        method: str | None = None,
        top_k: int | None = None,
        session_id: str | None = None,
    ) -> DecodeResult | list[DecodeResult]:
        """Decode with full detail: text, cosine score, candidates, method, timings, fallback flag."""
        method = method or self.config.method
        if method not in ASSEMBLY_METHODS:
            raise ConfigError(f"method must be one of {ASSEMBLY_METHODS}, got {method!r}")
        if method == "beam_search" and self.encoder is None:
            raise ConfigError("method 'beam_search' needs an encoder: PhraseBankDecoder(bank, encoder=...)")
        top_k = top_k or self.config.top_k
        start = time.perf_counter()
        try:
            queries, single, bad = self._checked(vectors)
        except DecoderError:
            self.monitor.record(time.perf_counter() - start, error=True)
            raise
        results: list[DecodeResult | None] = [None] * queries.shape[0]
        for row, message in bad.items():
            results[row] = DecodeResult(text="", score=0.0, method=method, fallback_used=True, error=message)
        todo = [i for i in range(queries.shape[0]) if results[i] is None]
        if todo and len(self.bank) == 0:
            if self.config.strict:
                raise EmptyBank("the phrase bank is empty; build it from a corpus first")
            for i in todo:
                results[i] = DecodeResult(text="", score=0.0, method=method, fallback_used=True, error="empty bank")
            todo = []
        use_cache = method != "context_aware"
        keys = {i: self._cache_key(queries[i], method, top_k) for i in todo} if use_cache else {}
        misses = []
        for i in todo:
            cached = self.cache.get(keys[i]) if use_cache else None
            if cached is not None:
                results[i] = DecodeResult(**{**cached.__dict__, "candidates": list(cached.candidates), "timings": {"total_ms": 0.0},
                                             "details": {**cached.details, "cached": True}})
            else:
                misses.append(i)
        if misses:
            t_search = time.perf_counter()
            hits = self.bank.search(queries[misses], k=top_k)
            search_ms = (time.perf_counter() - t_search) * 1000.0 / len(misses)
            for i, row_hits in zip(misses, hits):
                timer = timed()
                row_hits = self._rerank(queries[i], row_hits)
                timer.mark("rerank")
                result = self._assemble(method, queries[i], row_hits, session_id)
                timings = {"search_ms": search_ms, **timer.done()}
                timings["total_ms"] += search_ms
                result.timings = timings
                results[i] = result
                if use_cache:
                    self.cache.put(keys[i], result)
        if session_id is not None:
            with self._sessions_lock:
                session = self._session(session_id)
                for i, r in enumerate(results):
                    if r is not None and not r.fallback_used:
                        session.history.append((r.text, queries[i]))
        final = [r for r in results if r is not None]
        self.monitor.record(time.perf_counter() - start, n=len(final), fallbacks=sum(r.fallback_used for r in final))
        return final[0] if single else final

    def health(self) -> dict[str, Any]:
        """Status and live statistics: bank size, p50/p95 latency, throughput, cache hit rate."""
        return {
            "status": "ok" if len(self.bank) else "empty_bank",
            "decoder": "phrase",
            "bank_size": len(self.bank),
            "encoder": self.bank.encoder_name,
            "dimension": self.bank.dimension,
            "index": self.bank.config.index_factory,
            "method": self.config.method,
            "sessions": len(self._sessions),
            **self.monitor.stats(self.cache),
        }

    # ---- internals ----------------------------------------------------------------------------
    def _checked(self, vectors: np.ndarray) -> tuple[np.ndarray, bool, dict[int, str]]:
        """Validate queries; in non-strict mode bad rows become fallbacks instead of errors."""
        try:
            queries, single = as_query_matrix(vectors, self.embedding_dim)
            return queries, single, {}
        except DecoderError as exc:
            if self.config.strict:
                raise
            arr = np.asarray(vectors, dtype=np.float32) if _numeric(vectors) else None
            if arr is None or arr.ndim not in (1, 2) or arr.shape[-1] != self.embedding_dim:
                n = 1 if arr is None or arr.ndim != 2 else arr.shape[0]
                return np.zeros((n, self.embedding_dim), np.float32), arr is None or arr.ndim != 2, {i: str(exc) for i in range(n)}
            single = arr.ndim == 1
            arr = arr.reshape(-1, self.embedding_dim)
            out = np.zeros_like(arr)
            bad: dict[int, str] = {}
            for i, row in enumerate(arr):
                try:
                    out[i] = as_query_matrix(row, self.embedding_dim)[0][0]
                except DecoderError as row_exc:
                    bad[i] = str(row_exc).replace("vector 0", f"vector {i}")
            return out, single, bad

    def _cache_key(self, query: np.ndarray, method: str, top_k: int) -> tuple:
        quantised = np.round(query * 10**self.config.cache_decimals).astype(np.int32)
        return (method, top_k, quantised.tobytes())

    def _rerank(self, query: np.ndarray, hits: list[Hit]) -> list[Hit]:
        """Exact cosines for banks whose index scores are approximate (PQ, SQ codes), by re-encoding the hits near the top.

        Only hits within ``rerank_margin`` of the best approximate score can overtake it, so only
        those are re-encoded: a clear winner costs no encoder call.
        """
        if self.bank.vectors_exact or self.encoder is None or not self.config.rerank or len(hits) < 2:
            return hits
        close = [h for h in hits if h.score >= hits[0].score - self.config.rerank_margin]
        if len(close) < 2:
            return hits
        scores = self._encode([h.text for h in close]) @ query
        rescored = sorted((Hit(h.text, float(s), h.id) for h, s in zip(close, scores)), key=lambda h: -h.score)
        return rescored + hits[len(close):]

    def _encode(self, texts: list[str]) -> np.ndarray:
        assert self.encoder is not None  # callers check
        return self.encoder.encode(texts, precision=self.config.encode_precision)

    def _vectors_of(self, hits: list[Hit]) -> np.ndarray:
        if not self.bank.vectors_exact and self.encoder is not None:  # codes only approximate them: encode
            return self._encode([h.text for h in hits])
        return self.bank.vector([h.id for h in hits])

    def _assemble(self, method: str, query: np.ndarray, hits: list[Hit], session_id: str | None) -> DecodeResult:
        candidates = [Candidate(h.text, h.score, "bank") for h in hits]
        if method == "greedy" or len(hits) == 1:
            best = hits[0]
            return DecodeResult(best.text, best.score, method, candidates, details={"id": best.id})
        if method == "weighted":
            return self._weighted(query, hits, candidates)
        if method == "context_aware":
            return self._context_aware(query, hits, candidates, session_id)
        return self._beam_search(query, hits, candidates)

    def _weighted(self, query: np.ndarray, hits: list[Hit], candidates: list[Candidate]) -> DecodeResult:
        """Consensus: similarity to the target plus agreement with the other (score-weighted) hits."""
        scores = np.array([h.score for h in hits], dtype=np.float32)
        vecs = self._vectors_of(hits)
        agreement = vecs @ vecs.T
        weights = np.clip(scores, 0.0, None)  # each other hit votes in proportion to its similarity
        np.fill_diagonal(agreement, 0.0)
        others = weights[None, :].repeat(len(hits), 0)
        np.fill_diagonal(others, 0.0)
        consensus = (agreement * others).sum(1) / np.maximum(others.sum(1), 1e-9)
        w = self.config.consensus_weight
        combined = (1 - w) * scores + w * consensus
        best = int(np.argmax(combined))
        for c, value in zip(candidates, combined):
            c.source = f"bank (combined {value:.3f})"
        return DecodeResult(hits[best].text, hits[best].score, "weighted", candidates, details={"id": hits[best].id, "consensus": float(consensus[best])})

    def _context_aware(self, query: np.ndarray, hits: list[Hit], candidates: list[Candidate], session_id: str | None) -> DecodeResult:
        """Prefer hits coherent with the session's recent outputs; penalise repeating them."""
        history: list[tuple[str, np.ndarray]] = []
        if session_id is not None:
            with self._sessions_lock:
                history = list(self._session(session_id).history)
        scores = np.array([h.score for h in hits], dtype=np.float32)
        if not history:
            best = int(np.argmax(scores))
            return DecodeResult(hits[best].text, hits[best].score, "context_aware", candidates, details={"id": hits[best].id, "context": 0})
        vecs = self._vectors_of(hits)
        past_texts = {t for t, _ in history}
        past = np.stack([v for _, v in history])
        sims = vecs @ past.T  # (k, H)
        repeated = np.array([h.text in past_texts for h in hits]) | (sims.max(1) >= _DUPLICATE_COS)
        combined = scores - self.config.repeat_penalty * repeated + self.config.coherence_weight * sims.mean(1)
        best = int(np.argmax(combined))
        return DecodeResult(
            hits[best].text, hits[best].score, "context_aware", candidates,
            details={"id": hits[best].id, "context": len(history), "repeats_penalised": int(repeated.sum())},
        )

    def _beam_search(self, query: np.ndarray, hits: list[Hit], candidates: list[Candidate]) -> DecodeResult:
        """Compose text from several entries; each composition is re-encoded and scored by cosine."""
        assert self.encoder is not None  # checked in generate()
        best_single = hits[0]
        pieces = self._pieces(query, hits)
        width = self.config.beam_width
        beam: list[tuple[tuple[str, ...], float]] = [((h.text,), h.score) for h in hits[:width]]
        seen = {b[0] for b in beam}
        encoder_calls = 0
        for _ in range(self.config.max_parts - 1):
            expansions = []
            for parts, _score in beam:
                for piece in pieces:
                    if piece in parts:
                        continue
                    new = parts + (piece,)
                    if new not in seen:
                        seen.add(new)
                        expansions.append(new)
            if not expansions:
                break
            texts = [join_pieces(list(p)) for p in expansions]
            scores = self._encode(texts) @ query
            encoder_calls += 1
            scored = [(p, float(s)) for p, s in zip(expansions, scores)]
            candidates.extend(Candidate(t, s, "composition") for t, (_, s) in zip(texts, scored))
            beam = sorted(beam + scored, key=lambda b: -b[1])[:width]
        parts, score = beam[0]
        if len(parts) == 1 or score <= best_single.score:
            return DecodeResult(best_single.text, best_single.score, "beam_search", candidates,
                                details={"id": best_single.id, "parts": 1, "encoder_calls": encoder_calls})
        candidates.sort(key=lambda c: -c.score)
        return DecodeResult(join_pieces(list(parts)), score, "beam_search", candidates,
                            details={"parts": len(parts), "pieces": list(parts), "encoder_calls": encoder_calls})

    def _pieces(self, query: np.ndarray, hits: list[Hit]) -> list[str]:
        """Material for compositions: the hits, their clauses, and hits for what the best one misses."""
        pieces: list[str] = [h.text for h in hits[: self.config.beam_width * 2]]
        for h in hits[:3]:
            for clause in _CLAUSE_SPLIT.split(h.text):
                if len(clause.split()) >= 3:
                    pieces.append(clause.strip())
        best_vec = self._vectors_of(hits[:1])[0]
        residual = query - (query @ best_vec) * best_vec  # the part of the target the best hit misses
        if np.linalg.norm(residual) > 1e-6:
            for h in self.bank.search(residual, k=self.config.beam_width)[0]:
                pieces.append(h.text)
        return list(dict.fromkeys(pieces))[:16]


def _numeric(values: Any) -> bool:
    try:
        np.asarray(values, dtype=np.float32)
        return True
    except (TypeError, ValueError):
        return False

