"""What the generative model's two runtimes share, without torch: the hypothesis type, the n-gram rule and the
bookkeeping of each row's generated tokens.

:mod:`lightweight_decoder.generation` decodes with the torch model (every strategy);
:mod:`lightweight_decoder.numpy_model` decodes greedily with NumPy alone. Both block repeated n-grams with
:func:`block_repeated_ngrams`, so the two cannot drift apart on that rule.

>>> sorted(banned_by_ngrams([5, 6, 7, 5, 6], 3))   # "5 6" was followed by 7 before
[7]
"""

from __future__ import annotations

import dataclasses

__all__ = ["Hypothesis", "banned_by_ngrams", "block_repeated_ngrams", "extend_histories"]


@dataclasses.dataclass
class Hypothesis:
    """One generated sequence (without BOS/EOS) and its score (sum of log-probs; length-normalised for beams)."""

    tokens: list[int]
    score: float


def extend_histories(histories: list[list[int]], rows: list[int], tokens: list[int], ended: list[bool]) -> None:
    """Greedy and sampling's bookkeeping: each row in ``rows`` that did not just end gains its new token."""
    for row, token, end in zip(rows, tokens, ended):
        if not end:
            histories[row].append(token)


def block_repeated_ngrams(logits, histories: list[list[int]], n: int) -> None:
    """``no_repeat_ngram_size=n`` on logits (N, V), in place: row i's tokens that would repeat an n-gram of
    ``histories[i]`` get minus infinity. ``logits`` is a NumPy array or a torch tensor (both index the same way)."""
    if n <= 0:
        return
    for row, history in enumerate(histories):
        banned = banned_by_ngrams(history, n)
        if banned:
            logits[row, list(banned)] = float("-inf")


def banned_by_ngrams(history: list[int], n: int) -> set[int]:
    """Tokens that would repeat an n-gram of ``history`` if written next (``no_repeat_ngram_size=n``; 0: none)."""
    if n <= 0 or len(history) + 1 < n:
        return set()
    prefix = tuple(history[len(history) - n + 1:]) if n > 1 else ()
    return {history[i + n - 1] for i in range(len(history) - n + 1) if tuple(history[i:i + n - 1]) == prefix}
