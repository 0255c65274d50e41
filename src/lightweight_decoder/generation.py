"""Decoding strategies for :class:`~lightweight_decoder.model.PrefixLM`, with a KV cache.

Argument names and meanings follow transformers' ``GenerationConfig``: ``max_new_tokens``, ``num_beams``,
``do_sample``, ``temperature``, ``top_k``, ``top_p``, ``repetition_penalty``, ``no_repeat_ngram_size``,
``length_penalty``, ``num_return_sequences``. Impossible combinations raise; ignored settings warn.

>>> GenerationConfig(num_beams=4, num_return_sequences=2).validate()
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .config import GenerationConfig
from .decoding import Hypothesis, block_repeated_ngrams, extend_histories

if TYPE_CHECKING:  # pragma: no cover
    from .model import PrefixLM

__all__ = ["GenerationConfig", "Hypothesis", "generate"]


def _penalise(logits: torch.Tensor, histories: list[list[int]], cfg: GenerationConfig, never: tuple[int, ...],
              seen: torch.Tensor | None) -> torch.Tensor:
    """Repetition penalty (CTRL) and n-gram blocking on (N, V) logits, in place; ``never`` ids are masked.

    ``seen`` (N, S) int64 (:func:`_history_ids`, None without a repetition penalty) holds each row's tokens so
    far, padded with ``never[0]``: the penalty gathers and scatters those S entries per row, for the whole
    batch at once, instead of passing over the vocabulary. A token seen twice gets the penalty once (both
    copies gather the same value), and the padding stays at minus infinity.
    """
    logits[:, list(never)] = float("-inf")
    if seen is not None:
        values = logits.gather(1, seen)
        logits.scatter_(1, seen, torch.where(values > 0, values / cfg.repetition_penalty, values * cfg.repetition_penalty))
    block_repeated_ngrams(logits, histories, cfg.no_repeat_ngram_size)
    return logits


def _history_ids(rows: int, steps: int, cfg: GenerationConfig, pad_id: int) -> torch.Tensor | None:
    """(rows, steps) token ids generated so far, all ``pad_id`` at first, when the repetition penalty needs them."""
    return torch.full((rows, steps), pad_id, dtype=torch.long) if cfg.repetition_penalty != 1.0 else None


def _sample(logits: torch.Tensor, cfg: GenerationConfig, generator: torch.Generator | None) -> torch.Tensor:
    logits = logits / cfg.temperature
    if cfg.top_k > 0:
        kth = torch.topk(logits, min(cfg.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) > cfg.top_p  # keep the smallest set reaching top_p
        logits = logits.scatter(1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]


@torch.no_grad()
def generate(model: "PrefixLM", cond: torch.Tensor, config: GenerationConfig | None = None,
             memory: torch.Tensor | None = None) -> list[list[Hypothesis]]:
    """Generate for a batch of embeddings ``cond`` (B, E); per row, ``num_return_sequences`` hypotheses, best first.

    ``memory`` (B, memory_len) holds each row's retrieved token ids for a model with memory slots (None: empty)."""
    cfg = config or GenerationConfig()
    cfg.validate()
    for setting in cfg.ignored_settings():
        warnings.warn(f"generation setting {setting} has no effect with do_sample={cfg.do_sample}, num_beams={cfg.num_beams}", UserWarning, stacklevel=2)
    model.eval()
    if cfg.num_beams > 1:
        return _beam_search(model, cond, cfg, memory)
    return _greedy_or_sample(model, cond, cfg, memory)


def _greedy_or_sample(model: "PrefixLM", cond: torch.Tensor, cfg: GenerationConfig, memory: torch.Tensor | None) -> list[list[Hypothesis]]:
    mc = model.config
    n = cfg.num_return_sequences
    cond = cond.repeat_interleave(n, dim=0)
    memory = None if memory is None else memory.repeat_interleave(n, dim=0)
    N = cond.shape[0]
    generator = torch.Generator().manual_seed(cfg.seed) if cfg.seed is not None else None
    steps = min(cfg.max_new_tokens, mc.max_len)
    state = model.conditioning(cond, memory)
    logits, cache = model.start(cond, torch.full((N,), mc.bos_id, dtype=torch.long), memory, state, steps)
    position = mc.context_len + 1
    histories: list[list[int]] = [[] for _ in range(N)]
    scores = torch.zeros(N)
    # rows still generating; logits, cache and state hold only these, so a finished row costs nothing more
    active = torch.arange(N)
    seen = _history_ids(N, steps, cfg, mc.pad_id)  # rows in step with ``active``
    for step in range(steps):
        logits = _penalise(logits.float(), [histories[row] for row in active.tolist()], cfg, (mc.pad_id, mc.bos_id), seen)
        token = _sample(logits, cfg, generator) if cfg.do_sample else logits.argmax(-1)
        scores[active] += logits.gather(1, token[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)  # the token's log-probability
        ended = token == mc.eos_id
        if seen is not None:
            seen[:, step] = token
        extend_histories(histories, active.tolist(), token.tolist(), ended.tolist())
        if bool(ended.all()) or step == steps - 1:
            break
        if bool(ended.any()):
            keep = (~ended).nonzero()[:, 0]
            active, token = active[keep], token[keep]
            cache = cache.select(keep)
            state = None if state is None else state.index_select(0, keep)
            seen = None if seen is None else seen.index_select(0, keep)
        logits, cache = model.step(token, cache, position, state)
        position += 1
    hyps = [Hypothesis(h, float(s)) for h, s in zip(histories, scores)]
    out = [hyps[i * n:(i + 1) * n] for i in range(N // n)]
    return [sorted(group, key=lambda h: -h.score) for group in out]


def _beam_search(model: "PrefixLM", cond: torch.Tensor, cfg: GenerationConfig, memory: torch.Tensor | None) -> list[list[Hypothesis]]:
    mc = model.config
    B, nb = cond.shape[0], cfg.num_beams
    cond = cond.repeat_interleave(nb, dim=0)
    memory = None if memory is None else memory.repeat_interleave(nb, dim=0)
    steps = min(cfg.max_new_tokens, mc.max_len)
    state = model.conditioning(cond, memory)  # a reordered beam stays within its sentence's rows, so this never needs reordering
    logits, cache = model.start(cond, torch.full((B * nb,), mc.bos_id, dtype=torch.long), memory, state, steps)
    position = mc.context_len + 1
    beam_scores = torch.zeros(B, nb)
    beam_scores[:, 1:] = float("-inf")  # all beams start identical: expand only the first
    beams: list[list[int]] = [[] for _ in range(B * nb)]
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    done = [False] * B
    seen = _history_ids(B * nb, steps, cfg, mc.pad_id)  # per beam, reordered with the beams

    def normalised(score: float, length: int) -> float:
        return score / (max(length, 1) ** cfg.length_penalty)

    for step in range(steps):
        logprobs = F.log_softmax(_penalise(logits.float(), beams, cfg, (mc.pad_id, mc.bos_id), seen), dim=-1)  # (B*nb, V)
        V = logprobs.shape[-1]
        totals = (beam_scores.view(-1, 1) + logprobs).view(B, nb * V)
        top_scores, top_ids = torch.topk(totals, 2 * nb, dim=1)
        next_tokens = torch.full((B * nb,), mc.pad_id, dtype=torch.long)
        next_source = torch.arange(B * nb)
        new_scores = torch.full((B, nb), float("-inf"))
        new_beams: list[list[int]] = [[] for _ in range(B * nb)]
        for b in range(B):
            if done[b]:
                continue
            slot = 0
            for rank in range(2 * nb):
                score, flat = float(top_scores[b, rank]), int(top_ids[b, rank])
                if score == float("-inf"):
                    break
                src, token = b * nb + flat // V, flat % V
                if token == mc.eos_id:
                    if rank < nb:  # an EOS outside the best nb is not a competitive hypothesis
                        finished[b].append(Hypothesis(list(beams[src]), normalised(score, len(beams[src]) + 1)))
                    continue
                dst = b * nb + slot
                next_tokens[dst], next_source[dst] = token, src
                new_scores[b, slot] = score
                new_beams[dst] = beams[src] + [token]
                slot += 1
                if slot == nb:
                    break
            # stop this row once no running beam can beat the worst kept hypothesis
            if len(finished[b]) >= nb:
                worst = sorted(h.score for h in finished[b])[-nb]
                best_running = normalised(float(new_scores[b].max()), step + 1)
                done[b] = best_running <= worst
        beam_scores, beams = new_scores, new_beams
        if all(done) or step == steps - 1:
            break
        if seen is not None:  # a finished sentence's slots carry pad, which is never generated anyway
            seen = seen.index_select(0, next_source)
            seen[:, step] = next_tokens
        cache = cache.select(next_source)
        logits, cache = model.step(next_tokens, cache, position, state)
        position += 1
    results = []
    for b in range(B):
        if not done[b]:  # out of steps: running beams count as hypotheses
            for j in range(nb):
                if beam_scores[b, j] > float("-inf"):
                    finished[b].append(Hypothesis(beams[b * nb + j], normalised(float(beam_scores[b, j]), len(beams[b * nb + j]))))
        results.append(sorted(finished[b], key=lambda h: -h.score)[: cfg.num_return_sequences])
    return results
