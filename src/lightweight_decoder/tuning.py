"""GenerationParameterOptimizer: evolutionary search over decoding parameters against a dev-set objective.

A population of parameter sets is scored; each generation keeps the best (elitism), picks parents by
tournament, mixes them (uniform crossover) and mutates the children. Seeded, so a run repeats exactly.

>>> space = {"x": Param("float", 0.0, 1.0)}
>>> opt = GenerationParameterOptimizer(space, lambda p: -(p["x"] - 0.3) ** 2, population=6, generations=8)
>>> round(opt.run().params["x"], 1)
0.3
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

import numpy as np

from .errors import ConfigError

__all__ = ["Param", "GenerationParameterOptimizer", "TuningResult", "SEARCH_SPACES", "config_class", "apply_config", "current_config"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Param:
    """One dimension of the search: ``int`` or ``float`` in [low, high], or one of ``choices``."""

    kind: str
    low: float = 0.0
    high: float = 1.0
    choices: tuple = ()

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "choice":
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.kind == "int":
            return int(rng.integers(int(self.low), int(self.high) + 1))
        return float(rng.uniform(self.low, self.high))

    def mutate(self, value: Any, rng: np.random.Generator) -> Any:
        if self.kind == "choice":
            return self.sample(rng)
        if self.kind == "int":
            step = max(1, round(0.2 * (self.high - self.low)))
            return int(np.clip(value + rng.integers(-step, step + 1), self.low, self.high))
        return float(np.clip(value + rng.normal(0, 0.2 * (self.high - self.low)), self.low, self.high))


SEARCH_SPACES: dict[str, dict[str, Param]] = {
    "phrase": {"method": Param("choice", choices=("greedy", "weighted")), "top_k": Param("int", 2, 40),
               "consensus_weight": Param("float", 0.0, 0.8)},
    "generative": {"num_beams": Param("int", 1, 8), "repetition_penalty": Param("float", 1.0, 1.6),
                   "no_repeat_ngram_size": Param("choice", choices=(0, 2, 3, 4)), "length_penalty": Param("float", 0.5, 2.0)},
    "hybrid": {"tau": Param("float", 0.85, 1.0), "num_steps": Param("int", 0, 20), "num_beams": Param("int", 0, 8),
               "num_samples": Param("int", 0, 8), "temperature": Param("float", 0.3, 1.5), "top_p": Param("float", 0.5, 1.0),
               "residual_alpha": Param("float", 0.0, 1.5), "fluency_weight": Param("float", 0.0, 0.2),
               "screen_words": Param("int", 0, 64)},
}


def config_class(kind: str) -> Any:
    """The config dataclass a decoder kind reads from ``--config``."""
    if kind == "phrase":
        from .config import PhraseDecoderConfig

        return PhraseDecoderConfig
    if kind == "generative":
        from .generation import GenerationConfig

        return GenerationConfig
    if kind == "hybrid":
        from .decoders.hybrid import HybridConfig

        return HybridConfig
    raise ConfigError(f"unknown decoder kind {kind!r}")


def current_config(decoder: Any, kind: str) -> Any:
    """The config object a loaded decoder runs with."""
    return decoder.generation_config if kind == "generative" else decoder.config


def apply_config(decoder: Any, kind: str, config: Any) -> None:
    """Make a loaded decoder run with ``config`` (phrase decoders also drop their result cache)."""
    if kind == "generative":
        decoder.generation_config = config
    else:
        decoder.config = config
    if kind == "phrase":
        decoder.cache.clear()


@dataclasses.dataclass
class TuningResult:
    params: dict[str, Any]
    score: float
    history: list[dict[str, float]]
    evaluations: int


class GenerationParameterOptimizer:
    """Seeded evolutionary search maximising ``objective(params)``."""

    def __init__(self, space: dict[str, Param], objective: Callable[[dict[str, Any]], float], *, population: int = 8,
                 generations: int = 5, elite: int = 2, tournament: int = 3, mutation_rate: float = 0.3, seed: int = 0,
                 initial: list[dict[str, Any]] | None = None) -> None:
        if population < 2 or generations < 1 or not 0 < elite < population:
            raise ConfigError("need population >= 2, generations >= 1 and 0 < elite < population")
        self.space, self.objective = space, objective
        self.population, self.generations, self.elite = population, generations, elite
        self.tournament, self.mutation_rate = tournament, mutation_rate
        self.rng = np.random.default_rng(seed)
        self.initial = [dict(p) for p in (initial or [])]
        self._scores: dict[tuple, float] = {}

    def _score(self, params: dict[str, Any]) -> float:
        key = tuple(sorted(params.items()))
        if key not in self._scores:
            self._scores[key] = float(self.objective(params))
            logger.info("score %.4f for %s", self._scores[key], params)
        return self._scores[key]

    def _child(self, ranked: list[tuple[float, dict]]) -> dict[str, Any]:
        def pick() -> dict[str, Any]:
            contenders = self.rng.choice(len(ranked), min(self.tournament, len(ranked)), replace=False)
            return ranked[int(min(contenders))][1]  # ranked best first: the lowest index wins

        a, b = pick(), pick()
        child = {k: (a[k] if self.rng.random() < 0.5 else b[k]) for k in self.space}  # uniform crossover
        for name, param in self.space.items():
            if self.rng.random() < self.mutation_rate:
                child[name] = param.mutate(child[name], self.rng)
        return child

    def run(self, show_progress_bar: bool = False) -> TuningResult:
        from tqdm.auto import tqdm

        members = [{k: p.get(k, s.sample(self.rng)) for k, s in self.space.items()} for p in self.initial][: self.population]
        members += [{k: s.sample(self.rng) for k, s in self.space.items()} for _ in range(self.population - len(members))]
        history = []
        bar = tqdm(total=self.generations, desc="tuning", unit="generation", disable=not show_progress_bar)
        for generation in range(self.generations):
            ranked = sorted(((self._score(m), m) for m in members), key=lambda sm: -sm[0])
            history.append({"generation": generation, "best": ranked[0][0], "mean": float(np.mean([s for s, _ in ranked]))})
            bar.update(1)
            bar.set_postfix(best=f"{ranked[0][0]:.3f}")
            if generation == self.generations - 1:
                break
            members = [m for _, m in ranked[: self.elite]] + [self._child(ranked) for _ in range(self.population - self.elite)]
        bar.close()
        best_score, best = ranked[0]
        return TuningResult(params=best, score=best_score, history=history, evaluations=len(self._scores))
