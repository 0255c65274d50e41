"""Variant 3: candidates from the phrase bank and the generator, judged by the encoder, then corrected.

1. The bank's top ``bank_k`` hits. A bank whose index scores are exact cosines (it keeps its vectors, or its
   index stores them whole) gives them without an encoder call. A compressed one (PQ, SQ) has only
   approximate scores: its best ``judge_k`` are re-encoded first, by the judge, when there is no generator or
   when the best approximate score comes within ``_APPROXIMATE_MARGIN`` of ``tau`` (a hit that may take the
   fast path); otherwise they wait for step 2's later candidates. Fast path: if the best exact cosine is >= ``tau``,
   return it.
2. Otherwise build a pool of candidates within the time budget, the generator's first: its greedy output and,
   if the time left pays for making and judging them, its beams, judged in one batch; then the bank's hits not
   judged yet and the generator's samples (these only if the time left pays for making them): without
   correction in a last batch, the screen choosing among them when the time left cannot judge them all; with
   it, in the first correction round's batch, where the screen weighs them against that round's edits (one
   call's fixed cost less, and the second goes to whichever the screen ranks closer: the bank's lower hits
   rarely win). Costs are measured in this call and the decoder's previous ones. Measured on held-out dev
   sentences, the generator's beams are the candidates the judge picks most and the bank's the least, so they
   come first (bench/README.md). No text is encoded twice. Keep the best candidate: the closest to the target,
   or, with a generator, the best by cosine + ``fluency_weight`` x the generator's mean token log-probability of
   the text given the target (judging by cosine alone lets edits buy cosine with broken text, which costs BLEU:
   see bench/README.md). (The encoder judges in ``judge_precision``: ``auto`` is bf16 where the CPU has bf16
   instructions, fp32 elsewhere; the two agree to a cosine of ~1e-4.)
3. Correction: up to ``num_steps`` rounds. Each round proposes edits of the current best (word and phrase
   substitutions, insertions and deletions, drawn from the pool) and, with a generator, a regeneration from
   the target pushed away from the current best's vector (``target + residual_alpha * (target - best)``),
   and re-encodes them in one batch; keep the best; stop when the best stops improving or the budget
   (``max_encoder_calls``, ``max_seconds``) is spent. A round judges only the proposals the time left pays for
   when they are judged (after the screen's ranking), at their real lengths, as :class:`JudgeCost` prices judging
   (a fixed cost per call plus a price per token of a padded batch, fitted to the decoder's own calls).
   With a screen (:class:`~lightweight_decoder.screen.EmbeddingScreen`,
   a bag-of-tokens stand-in for the encoder, ~250x cheaper), a round proposes ``screen_proposals`` edits, the
   screen ranks them, and the judge re-encodes the best ``edits_per_step`` of them instead of a random few; the
   screen also orders the pool's candidates when the budget cannot judge them all. The screen also suggests
   ``screen_words`` words per round for the edits to place besides the pool's: the words of the encoder's
   vocabulary whose addition brings the current best closest to the target by its measure (often a name or a
   topic word that no candidate holds; :meth:`~lightweight_decoder.screen.EmbeddingScreen.suggest_words`).

The time budget makes the output depend on the machine's speed at that moment (what fits into the second
differs from run to run). ``max_seconds=None`` removes it: the work is then bounded by ``max_encoder_calls``,
``num_steps`` and ``edits_per_step`` alone, and the same vector decodes to the same text on every run.

>>> hybrid = HybridDecoder(phrase_decoder, generative_decoder, encoder)   # doctest: +SKIP
>>> result = hybrid.generate(vector); result.details["route"]             # doctest: +SKIP
'corrected'
"""

from __future__ import annotations

import collections
import dataclasses
import re
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..config import PRECISIONS, BaseConfig, _check, _is_number
from ..errors import ConfigError, EmptyBank, IncompatibleArtifact
from ..phrasebank import Hit, as_query_matrix
from ..postprocess import closing_mark, fit_case, repeated_neighbours, with_closing
from .base import Candidate, DecodeResult, TextDecoder, PerformanceMonitor

if TYPE_CHECKING:  # pragma: no cover
    from ..encoder import TextEncoder
    from .generative import GenerativeDecoder
    from .phrase import PhraseBankDecoder
    from ..screen import EmbeddingScreen

__all__ = ["HybridConfig", "HybridDecoder", "JudgeCost", "propose_edits"]

_clock = time.perf_counter  # one name for the time source, so a test can run the budget on a fake clock
_CLAUSE = re.compile(r",\s+|;\s+|\s+(?=(?:and|but|which|who|while|after|because|in|of|with)\s)")


@dataclasses.dataclass
class HybridConfig(BaseConfig):
    """Routing, candidate and correction budget settings of :class:`HybridDecoder`."""

    tau: float = 0.97
    bank_k: int = 10
    judge_k: int = 3
    num_beams: int = 4
    num_samples: int = 4
    temperature: float = 0.8
    top_p: float = 0.95
    num_steps: int = 5
    edits_per_step: int = 48
    fluency_weight: float = 0.05  # x the generator's mean token log-probability (nats), added to the cosine; 0: cosine alone
    screen_proposals: int = 256  # edits proposed per round for a screen to rank; the judge takes its best (0: no screening)
    screen_words: int = 32  # words the screen suggests per round for edits to place (0, or no screening: pool words only)
    residual_alpha: float = 0.5
    max_encoder_calls: int = 40
    max_seconds: float | None = 1.0  # None: no time limit, reproducible output (see the module docstring)
    judge_precision: str = "auto"
    seed: int = 0

    def validate(self) -> None:
        _check(_is_number(self.tau) and -1 <= self.tau <= 1.01, f"tau must be a cosine in [-1, 1] (above 1 disables the fast path), got {self.tau!r}")
        self._check_ints("bank_k", "judge_k", "edits_per_step", "max_encoder_calls", minimum=1)
        self._check_ints("num_beams", "num_samples", "num_steps", "screen_proposals", "screen_words", "seed", minimum=0)
        _check(_is_number(self.temperature) and self.temperature > 0, f"temperature must be > 0, got {self.temperature!r}")
        _check(_is_number(self.top_p) and 0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p!r}")
        _check(_is_number(self.residual_alpha) and self.residual_alpha >= 0,
               f"residual_alpha must be >= 0 (0 turns regeneration from the residual off), got {self.residual_alpha!r}")
        _check(self.max_seconds is None or (_is_number(self.max_seconds) and self.max_seconds > 0),
               f"max_seconds must be > 0, or null for no time limit, got {self.max_seconds!r}")
        _check(_is_number(self.fluency_weight) and self.fluency_weight >= 0,
               f"fluency_weight must be >= 0 (0 judges by cosine alone), got {self.fluency_weight!r}")
        _check(self.judge_precision in PRECISIONS, f"judge_precision must be one of {PRECISIONS}, got {self.judge_precision!r}")


def propose_edits(text: str, pool: list[str], rng: np.random.Generator, n: int, suggested: list[str] | None = None) -> list[str]:
    """Up to ``n`` distinct edits of ``text``: substitute, insert or delete a word; replace a span with a
    phrase from ``pool``; append a phrase. Words and phrases are drawn from ``pool`` (candidate texts); given
    ``suggested`` words (the screen's), a substitution or insertion places one of them instead of a pool word
    half the time.

    Placed words are cased for their new place (:func:`fit_case`) and punctuated for it (the text keeps its
    one closing mark, at the end: a phrase is appended inside it), and an edit that puts a word twice in a
    row ("the the") is not proposed: the default encoder lowercases its input, so the judge cannot tell
    "flooded The village" from "flooded the village", and a repeated word can raise the cosine."""
    words = text.split()
    vocab = sorted({w for t in pool for w in t.split()})
    suggested = list(dict.fromkeys(suggested or []))
    phrases = sorted({c.strip() for t in pool for c in _CLAUSE.split(t) if 1 < len(c.split()) <= 8})
    repeats = repeated_neighbours(words)
    capitalise_first = not words or not words[0][:1].islower()  # keep a lower-case text's convention
    end = closing_mark(words)  # "village." -> "."
    out: dict[str, None] = {}
    attempts = 0
    while len(out) < n and attempts < 20 * n:
        attempts += 1
        op = rng.integers(5)
        i = int(rng.integers(len(words))) if words else 0
        source = suggested if suggested and op < 2 and rng.integers(2) else vocab
        # a word or phrase placed inside the text loses its closing mark; one that ends the text takes the text's
        if op == 0 and words and source:  # substitute a word
            placed = with_closing([source[rng.integers(len(source))]], end if i == len(words) - 1 else "")
            new = words[:i] + placed + words[i + 1:]
        elif op == 1 and source:  # insert a word
            placed = with_closing([source[rng.integers(len(source))]], "")
            new = words[:i] + placed + words[i:]
        elif op == 2 and len(words) > 1:  # delete a word
            placed = []
            new = words[:i] + words[i + 1:] if i < len(words) - 1 else with_closing(words[:i], end)
        elif op == 3 and words and phrases:  # replace a span with a phrase
            span = int(rng.integers(1, 5))
            placed = with_closing(phrases[rng.integers(len(phrases))].split(), end if i + span >= len(words) else "")
            new = words[:i] + placed + words[i + span:]
        elif op == 4 and phrases:  # append a phrase, inside the text's closing punctuation
            placed = with_closing(phrases[rng.integers(len(phrases))].split(), end)
            head = with_closing(words, "")
            i = len(head)
            new = head + placed
        else:
            continue
        # the words placed, the word after them (first before an insertion at 0) and the first word
        new = fit_case(new, {0, *range(i, i + len(placed) + 1)}, capitalise_first=capitalise_first)
        if repeated_neighbours(new) > repeats:
            continue
        candidate = " ".join(new)
        if candidate and candidate != text:
            out[candidate] = None
    return list(out)


class JudgeCost:
    """What judging costs here, learned from the judging calls themselves: ``fixed + per_unit x units`` seconds,
    where a call's units are its texts x its longest text's tokens, as the encoder counts them (a batch is padded
    to its longest text; the fluency forward, in the generator's tokens, follows about the same).

    Fitted by least squares over every call recorded, each new call weighing ``1 / forget`` times the one before
    it (``forget=0.95``: about the last 20 calls count), so the price follows the machine as its load changes.
    Until two calls of different sizes are known, or when the fit is not physical (a negative price), a call's
    fixed cost is taken as ``_CALL_UNITS`` units. A share fixed in advance fits one CPU only: on a CPU with bf16
    instructions, where encoding is ~3x faster and the fixed cost a larger part of a call, it under-priced small
    calls, and the second's last call overran (README, the hybrid decoder's bullets)."""

    def __init__(self, forget: float = 0.95) -> None:
        self.forget = forget
        self.calls = 0
        self._sums = np.zeros(5)  # weights, units, seconds, units^2, units x seconds
        self.fixed, self.per_unit = 0.0, 0.0
        self._misses: collections.deque[float] = collections.deque(maxlen=_MISSES_KEPT)  # seconds / estimate, recent calls
        self.margin = 1.0

    @property
    def known(self) -> bool:
        return self.calls > 0

    def estimate(self, count: int, longest: int) -> float:
        """The fit's seconds to judge ``count`` texts in one batch whose longest has ``longest`` tokens (0 before any
        call is known)."""
        return self.fixed + self.per_unit * count * max(longest, 1)

    def __call__(self, count: int, longest: int) -> float:
        """The seconds to plan for: :meth:`estimate` x ``margin``, the 90th percentile of recent calls' time over their
        estimate (1 until ``_MISSES_NEEDED`` are known). A call's last batch is its largest, and a budget planned on
        the estimate alone ran over by its error, a third of a second at worst."""
        return self.estimate(count, longest) * self.margin

    def record(self, count: int, longest: int, seconds: float) -> None:
        units = count * max(longest, 1)
        if self.calls:
            self._misses.append(seconds / max(self.estimate(count, longest), 1e-9))
            if len(self._misses) >= _MISSES_NEEDED:
                self.margin = max(float(np.percentile(self._misses, 90)), 1.0)
        self._sums = self.forget * self._sums + np.array([1.0, units, seconds, units * units, units * seconds])
        self.calls += 1
        w, u, s, uu, us = self._sums
        spread = w * uu - u * u  # w^2 x the weighted variance of the units
        fixed, per_unit = -1.0, 0.0
        if spread > 1e-9 * w * uu:
            per_unit = (w * us - u * s) / spread
            fixed = (s - per_unit * u) / w
        if per_unit <= 0:  # too little spread in size to fit, or noise: the fixed cost as a share of the price
            per_unit = s / (u + _CALL_UNITS * w)
            fixed = _CALL_UNITS * per_unit
        elif fixed < 0:  # the fit's line crosses zero cost above zero size: a call costs its units alone
            fixed, per_unit = 0.0, us / uu
        self.fixed, self.per_unit = float(fixed), float(per_unit)


class _Judge:
    """The encoder as the judge of one query: scores texts in batches, remembers every score, keeps the best
    (with its vector, for regeneration from the residual) and records what each batch cost in ``cost`` (a
    :class:`JudgeCost` the decoder carries from call to call), which prices the next.

    A text's merit is its cosine to the query plus ``fluency_weight`` times ``fluency(texts)`` (the generator's mean
    token log-probability given the query) when there is a generator: among texts that embed about as close, the
    one the generator finds likelier wins, and an edit that buys cosine with broken grammar has to buy enough."""

    def __init__(self, encoder: "TextEncoder", query: np.ndarray, cfg: HybridConfig, start: float,
                 fluency: "Callable[[list[str]], np.ndarray] | None" = None, cost: JudgeCost | None = None) -> None:
        self.encoder, self.query, self.cfg, self.start = encoder, query, cfg, start
        self.cost = cost if cost is not None else JudgeCost()
        self.fluency = fluency if fluency is not None and cfg.fluency_weight > 0 else None
        self.known: dict[str, float] = {}  # text -> cosine
        self.merit: dict[str, float] = {}  # text -> cosine + fluency_weight * log-likelihood (the cosine without fluency)
        self.calls, self.seconds = 0, 0.0
        self.best, self.best_score, self.best_vector = "", -np.inf, np.zeros_like(query)
        self._sizes: dict[str, int] = {}  # text -> its tokens, as the encoder counts them

    def sizes(self, texts: Sequence[str]) -> list[int]:
        """Each text's tokens as the encoder counts them: what it costs in a padded batch. Characters are not: the
        garbled text a small generator writes can hold twice the tokens per character of plain prose."""
        new = [t for t in dict.fromkeys(texts) if t not in self._sizes]
        self._sizes.update((t, 0) for t in new if not t.strip())  # never judged
        new = [t for t in new if t.strip()]
        if new:
            self._sizes.update(zip(new, self.encoder.token_lengths(new)))
        return [self._sizes[t] for t in texts]

    @property
    def best_merit(self) -> float:
        return self.merit.get(self.best, -np.inf)

    def time_left(self) -> float:
        if self.cfg.max_seconds is None:
            return float("inf")
        return self.cfg.max_seconds - (_clock() - self.start)

    def affordable(self, longest: int) -> int:
        """How many texts, none longer than ``longest`` tokens, the time left pays for judging in one batch."""
        if self.cfg.max_seconds is None:  # no time limit: the count limits (edits_per_step, ...) apply alone
            return sys.maxsize
        unit = self.cost(1, longest) - self.cost(0, 0)
        return int((self.time_left() - self.cost(0, 0)) / unit) if unit > 0 else self.cfg.edits_per_step

    def fitting(self, texts: list[str], judged_with: Sequence[str] = ()) -> list[str]:
        """The longest head of ``texts`` that the time left pays for judging in one batch with ``judged_with``, as
        priced so far, by the texts' real lengths (all of them without a time limit)."""
        if self.cfg.max_seconds is None:
            return texts
        left, longest = self.time_left(), max(self.sizes(judged_with), default=0)
        for n, size in enumerate(self.sizes(texts)):
            longest = max(longest, size)
            if self.cost(len(judged_with) + n + 1, longest) > left:
                return texts[:n]
        return texts

    def _take(self, texts: list[str], scores: np.ndarray, vectors: np.ndarray) -> bool:
        """Record cosines (and merits) of new texts; True when one of them beats the best so far."""
        merits = scores + self.cfg.fluency_weight * self.fluency(texts) if self.fluency is not None else scores
        self.known.update(zip(texts, map(float, scores)))
        self.merit.update(zip(texts, map(float, merits)))
        top = int(np.argmax(merits))
        if merits[top] <= self.best_merit + 1e-5:
            return False
        self.best, self.best_score, self.best_vector = texts[top], float(scores[top]), vectors[top]
        return True

    def __call__(self, texts: list[str]) -> bool:
        """Judge the texts not judged before, in one batch; True when one of them beats the best so far."""
        texts = [t for t in dict.fromkeys(texts) if t.strip() and t not in self.known]
        if not texts:
            return False
        t = _clock()
        # bf16 re-encoding is ~3x faster on CPUs with bf16 instructions, cosine >= 0.9999 to fp32
        vectors = self.encoder.encode(texts, precision=self.cfg.judge_precision)
        better = self._take(texts, vectors @ self.query, vectors)  # the fluency term is part of judging: timed with it
        seconds = _clock() - t
        self.calls, self.seconds = self.calls + 1, self.seconds + seconds
        self.cost.record(len(texts), max(self.sizes(texts)), seconds)
        return better

    def accept(self, texts: list[str], scores: list[float], vectors: np.ndarray) -> None:
        """Take exact cosines known without encoding, with the texts' vectors."""
        new = [i for i, text in enumerate(texts) if text not in self.known]
        if new:
            self._take([texts[i] for i in new], np.asarray(scores, dtype=np.float32)[new], vectors[new])


# Generation cost as a multiple of the greedy time of the same call (which follows the length of the sentence),
# before this decoder has measured its own (shipped small model, 1 thread: 4 beams ~2.2x, 4 samples ~2.5x).
_PRIOR_COST = {"beam": 0.55, "sample": 0.65}  # per returned sequence
# How far below the exact cosine a compressed bank's approximate score may fall (python bench/approximate_scores.py):
# on the shipped bank (IVF1024,PQ96, 380,928 sentences) a query's own sentence, exact cosine 1, scored as low as 0.675,
# so at 0.15 the best hits of 89 of 300 in-bank queries missed the fast path's early judging, at 0.25 two, at 0.30 none
_APPROXIMATE_MARGIN = 0.30
_EDIT_GROWTH = 10  # tokens an edit may add to the text it edits (a word, or a phrase of up to 8 words)
# A judging call's fixed cost, in units of a token of a padded batch, until JudgeCost can fit it: measured on an AVX2
# CPU, a call of one 100-character text took ~120 ms and five took ~300 ms, ~60 ms a call on top of 0.5 ms a character
# (~2.3 ms a token, at ~4.5 characters a token of English prose)
_CALL_UNITS = 25
_MISSES_KEPT, _MISSES_NEEDED = 50, 10  # JudgeCost's margin: from the last 50 calls' misses, once 10 are known
_SOURCES = ("bank", "greedy", "beam", "sample", "bank_rest")  # the pool's sources, in the order details list them


class HybridDecoder(TextDecoder):
    """Phrase bank + generator, re-ranked and corrected with the encoder as the judge."""

    def __init__(self, phrase_decoder: "PhraseBankDecoder", generative_decoder: "GenerativeDecoder | None",
                 encoder: "TextEncoder", config: HybridConfig | None = None, screen: "EmbeddingScreen | None" = None) -> None:
        for name, dim in (("phrase decoder", phrase_decoder.embedding_dim),
                          ("generative decoder", generative_decoder.embedding_dim if generative_decoder else encoder.dimension)):
            if dim != encoder.dimension:
                raise IncompatibleArtifact(f"{name} reads {dim}-D vectors; encoder {encoder.name} makes {encoder.dimension}-D")
        if getattr(generative_decoder, "runtime", "torch") != "torch":  # a duck-typed generator counts as torch
            raise ConfigError(f"the hybrid samples, runs beams and scores texts with its generator, which needs the torch runtime; "
                              f"this generator was loaded with runtime={generative_decoder.runtime!r}")
        if screen is not None and (screen.dimension != encoder.dimension or screen.encoder_name != encoder.name):
            raise IncompatibleArtifact(f"the screen was trained for {screen.encoder_name} ({screen.dimension}-D); "
                                       f"the encoder is {encoder.name} ({encoder.dimension}-D)")
        self.phrase, self.generator, self.encoder, self.screen = phrase_decoder, generative_decoder, encoder, screen
        if screen is not None:
            screen.prepare_suggestions()  # ~1 s once: not inside the first call's time budget
        self.config = config or HybridConfig()
        self.embedding_dim = encoder.dimension
        self.monitor = PerformanceMonitor()
        self._generation_ratio: dict[tuple[str, int], float] = {}  # beams' or samples' time / greedy's, last measured
        self.judge_cost = JudgeCost()  # what judging costs, fitted to every call's judging so far

    def __repr__(self) -> str:
        return (f"HybridDecoder(bank={len(self.phrase.bank)} entries, generator={'yes' if self.generator else 'no'}, "
                f"screen={'yes' if self.screen else 'no'})")

    def generate(self, vectors: np.ndarray, **overrides: Any) -> DecodeResult | list[DecodeResult]:
        """Decode with detail: route, steps, encoder calls, the bank's best cosine, the cosine after the
        candidate ranking and after each correction step (``details["cosine_per_step"]``), what ended the
        correction (``details["stopped_by"]``: ``num_steps``, ``converged``, ``no_edits``, ``max_encoder_calls``,
        ``max_seconds``, or ``fast_path`` when there was none), which candidate sources went into the pool
        (``details["pool"]``), which the budget left out (``details["skipped"]``), how many correction
        steps a regeneration from the residual won (``details["residual_steps"]``), and how many texts the
        screen ranked (``details["screened"]``, 0 without one).

        ``overrides`` are :class:`HybridConfig` fields for this call (e.g. ``num_steps=20``).
        """
        cfg = self.config.replace(**overrides) if overrides else self.config
        queries, single = as_query_matrix(vectors, self.embedding_dim)
        start = _clock()
        results = [self._one(q, cfg) for q in queries]
        self.monitor.record(_clock() - start, n=len(results))
        return results[0] if single else results

    def candidates(self, query: np.ndarray, kind: str, n: int, cfg: HybridConfig | None = None) -> list[str]:
        """The generator's candidates for ``query`` as the pool asks for them: ``kind`` ``"greedy"`` (one text),
        ``"beam"`` (``n`` beams) or ``"sample"`` (``n`` samples at ``cfg``'s temperature, top_p and seed)."""
        cfg = cfg or self.config
        if kind == "beam":
            result = self.generator.generate(query, rescore=False, num_beams=n, num_return_sequences=n, do_sample=False)
        elif kind == "sample":
            result = self.generator.generate(query, rescore=False, do_sample=True, temperature=cfg.temperature,
                                             top_p=cfg.top_p, num_return_sequences=n, seed=cfg.seed, num_beams=1)
        else:
            result = self.generator.generate(query, rescore=False, num_beams=1, do_sample=False, num_return_sequences=1)
        return [c.text for c in result.candidates]

    def _generated(self, query: np.ndarray, kind: str, n: int, cfg: HybridConfig, greedy_s: float = 0.0) -> tuple[list[str], float]:
        """:meth:`candidates` and the seconds they took; beams and samples record that time as a multiple of
        ``greedy_s`` (this call's greedy time) for the next call's plan."""
        t = _clock()
        texts = self.candidates(query, kind, n, cfg)
        seconds = _clock() - t
        if kind != "greedy":
            self._generation_ratio[(kind, n)] = seconds / max(greedy_s, 1e-6)
        return texts, seconds

    def _affords(self, judge: _Judge, kind: str, n: int, greedy: tuple[str, float], waiting: list[str]) -> bool:
        """Whether the time left pays for making ``n`` texts of ``kind`` (this call's greedy time x the ratio last
        measured, else a prior) and judging them, about as long as the greedy text, in one batch with ``waiting``."""
        if n < 1:
            return False
        text, seconds = greedy
        making = seconds * self._generation_ratio.get((kind, n), _PRIOR_COST[kind] * n)
        return making + judge.cost(len(waiting) + n, max(judge.sizes([text, *waiting]))) <= judge.time_left()

    def _screened(self, texts: list[str], query: np.ndarray, keep: int, cfg: HybridConfig) -> tuple[list[str], int]:
        """The ``keep`` texts the screen ranks closest to ``query``, best first, and how many it ranked (0 when all of
        them fit into ``keep``, without a screen, or with ``screen_proposals`` 0: then the first ``keep`` as given)."""
        if self.screen is None or cfg.screen_proposals < 1 or len(texts) <= keep:
            return texts[:keep], 0
        order = np.argsort(-self.screen.scores(texts, query), kind="stable")[:keep]
        return [texts[i] for i in order], len(texts)

    def _bank_hits(self, query: np.ndarray, cfg: HybridConfig) -> list[Hit]:
        if len(self.phrase.bank) == 0:
            if self.generator is None:
                raise EmptyBank("the phrase bank is empty and there is no generator: nothing to decode with")
            return []
        return self.phrase.bank.search(query, k=cfg.bank_k)[0]

    def _one(self, query: np.ndarray, cfg: HybridConfig) -> DecodeResult:
        start = _clock()
        rng = np.random.default_rng(cfg.seed)
        hits = self._bank_hits(query, cfg)
        bank_texts = [h.text for h in hits]
        fluency = (lambda texts: self.generator.log_likelihood(texts, query)) if self.generator is not None else None
        judge = _Judge(self.encoder, query, cfg, start, fluency, cost=self.judge_cost)
        # 1. the bank: exact scores are taken as they are; of approximate ones (PQ, SQ), the best few are judged
        # first only if they could take the fast path (or the bank is all there is), else with step 2's later candidates
        if hits and self.phrase.bank.vectors_exact:
            judge.accept(bank_texts, [h.score for h in hits], self.phrase.bank.vector([h.id for h in hits]))
        elif hits and (self.generator is None or hits[0].score >= cfg.tau - _APPROXIMATE_MARGIN):
            judge(bank_texts[:cfg.judge_k])
        ranked = sorted(judge.known.items(), key=lambda kv: -kv[1])  # the bank's judged hits, closest first
        timings = {"bank_ms": (_clock() - start) * 1000.0}
        if ranked and ranked[0][1] >= cfg.tau:
            timings["total_ms"] = timings["bank_ms"]
            return DecodeResult(ranked[0][0], ranked[0][1], "hybrid", [Candidate(text, s, "bank") for text, s in ranked],
                                timings, details={"route": "fast_path", "steps": 0, "encoder_calls": judge.calls, "bank_score": ranked[0][1],
                                                  "cosine_per_step": [ranked[0][1]], "stopped_by": "fast_path",
                                                  "pool": ["bank"], "skipped": [], "residual_steps": 0, "screened": 0})
        # 2. the generator's greedy output, with its beams if the time left pays for them, in one batch; then the
        # bank's hits not judged yet and the samples (if paid for): in the first correction round's batch, or
        # without correction in a batch of their own, as many as the time left pays for judging
        generate_s, greedy_s, used = 0.0, 0.0, set()
        if self.generator is not None and judge.calls < cfg.max_encoder_calls:
            first, greedy_s = self._generated(query, "greedy", 1, cfg)
            generate_s, used = greedy_s, {"greedy"}
            if not judge.cost.known and judge.calls + 1 < cfg.max_encoder_calls:
                judge(first)  # judging not priced yet (the decoder's first call): price it on the greedy text alone
            if self._affords(judge, "beam", cfg.num_beams, (first[0], greedy_s), waiting=first):
                beams, seconds = self._generated(query, "beam", cfg.num_beams, cfg, greedy_s)
                first, generate_s = first + beams, generate_s + seconds
                used.add("beam")
            judge(first)
        more = [t for t in bank_texts if t not in judge.known]
        if ("greedy" in used and judge.calls < cfg.max_encoder_calls
                and self._affords(judge, "sample", cfg.num_samples, (first[0], greedy_s), waiting=more)):
            samples, seconds = self._generated(query, "sample", cfg.num_samples, cfg, greedy_s)
            more, generate_s = more + samples, generate_s + seconds
            used.add("sample")
        more = [t for t in dict.fromkeys(more) if t not in judge.known]
        pool = list(judge.known) + more  # the edits' source of words and phrases, judged or not
        screened = 0
        if cfg.num_steps > 0 and judge.calls < cfg.max_encoder_calls:
            tail = more  # judged in the first correction round's batch, where the screen weighs them against its edits
        else:  # no correction: when the budget cannot judge them all, the screen picks which (else the order above)
            more, screened = self._screened(more, query, max(judge.affordable(max(judge.sizes(more), default=0)), 0), cfg)
            if more and judge.calls < cfg.max_encoder_calls:
                judge(more)
            tail = []
        trace = [judge.best_score]  # all judged in one precision, so the trace is comparable step to step
        # 3. correction: edits of the current best, and a regeneration from the residual between target and best
        route, steps, residual_steps, stop = "rerank", 0, 0, "num_steps"
        for _ in range(cfg.num_steps):
            if judge.calls >= cfg.max_encoder_calls:
                stop = "max_encoder_calls"
                break
            regenerated = []
            regenerate = self.generator is not None and cfg.residual_alpha > 0
            # greedy_s: the last greedy generation of this call (correction runs only after the pool's greedy output)
            if regenerate and judge.time_left() > greedy_s + judge.cost(1, judge.sizes([judge.best])[0]):
                shifted = query + cfg.residual_alpha * (query - judge.best_vector)
                regenerated, greedy_s = self._generated(shifted / np.linalg.norm(shifted), "greedy", 1, cfg)
                generate_s += greedy_s
            # a round judges as many edits as the time left pays for, so max_seconds bounds the call
            # (up to the error of the cost estimate) instead of being checked only between rounds
            # a regeneration may repeat a judged text, or take longer than planned and leave no time to judge it
            regenerated = judge.fitting([p for p in regenerated if p not in judge.known])
            # an edit is priced as long as the best plus what an edit may add
            affordable = judge.affordable(judge.sizes([judge.best])[0] + _EDIT_GROWTH) - len(regenerated)
            if affordable < 1 and not regenerated:
                stop = "max_seconds"
                break
            screening = self.screen is not None and cfg.screen_proposals > 0
            wanted = max(cfg.screen_proposals, cfg.edits_per_step) if screening else cfg.edits_per_step
            suggested = self.screen.suggest_words(judge.best, query, cfg.screen_words) if screening else []
            edits = [e for e in propose_edits(judge.best, pool, rng, wanted, suggested) if e not in judge.known]
            # judge the ones the screen ranks best (the first round: with the pool's texts not judged yet), not the first few
            edits = list(dict.fromkeys(tail + edits))
            edits, ranked = self._screened(edits, query, min(cfg.edits_per_step + len(tail), max(affordable, 0)), cfg)
            screened += ranked
            # the count above assumed each edit at most _EDIT_GROWTH longer than the best, and the screen took time:
            # keep the edits (best first) that the time now left pays for, at their real lengths
            paid = judge.fitting(edits, regenerated)
            if edits and not paid and not regenerated:
                stop = "max_seconds"
                break
            if not paid and not regenerated:
                stop = "no_edits"
                break
            if not judge(regenerated + paid):
                stop = "converged"
                break  # nothing proposed helps: a local optimum
            if judge.best in tail:  # a candidate of the pool won, not a correction: it is the ranking's best
                trace[0] = judge.best_score
            else:
                residual_steps += judge.best in regenerated
                steps += 1
                route = "corrected"
                trace.append(judge.best_score)
            tail = []
        top, rest = bank_texts[:cfg.judge_k], bank_texts[cfg.judge_k:]
        used |= {name for name, texts in (("bank", top), ("bank_rest", rest)) if any(t in judge.known for t in texts)}
        wanted = {"bank": len(top), "bank_rest": len(rest)}
        if self.generator is not None:
            wanted.update(greedy=1, beam=cfg.num_beams, sample=cfg.num_samples)
        sources = [name for name in _SOURCES if name in used]
        skipped = [name for name in _SOURCES if wanted.get(name, 0) > 0 and name not in used]
        judged_bank = [judge.known[t] for t in bank_texts if t in judge.known]
        bank_score = max(judged_bank) if judged_bank else None
        timings.update(generate_ms=generate_s * 1000.0, judge_ms=judge.seconds * 1000.0, total_ms=(_clock() - start) * 1000.0)
        ranked = sorted(judge.known.items(), key=lambda kv: -judge.merit[kv[0]])[:20]  # in the judge's order
        return DecodeResult(judge.best, judge.best_score, "hybrid", [Candidate(text, s, "judged") for text, s in ranked], timings,
                            details={"route": route, "steps": steps, "encoder_calls": judge.calls, "bank_score": bank_score,
                                     "cosine_per_step": trace, "stopped_by": stop, "pool": sources, "skipped": skipped,
                                     "residual_steps": residual_steps, "screened": screened})

    def health(self) -> dict[str, Any]:
        cost = self.judge_cost  # how the budget is being planned: what judging has cost here lately
        return {"status": "ok", "decoder": "hybrid", "bank_size": len(self.phrase.bank),
                "generator": self.generator is not None, **self.monitor.stats(),
                "judge_cost": {"calls": cost.calls, "fixed_ms": round(cost.fixed * 1000, 2),
                               "per_token_ms": round(cost.per_unit * 1000, 4), "margin": round(cost.margin, 3)}}
