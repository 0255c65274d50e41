"""Quality metrics and the round-trip evaluation harness.

BLEU is sacrebleu corpus BLEU (0-100); ROUGE-L is rouge-score's F-measure; token F1 is SQuAD-style
bag-of-tokens F1; cosine compares the input's embedding with the re-encoded output's. What a decoder reads
out of an embedding that matters most when the text was private, its names and numbers, is counted by
:func:`particulars`: the share of the input's names (capitalised words that do not start a sentence) and numbers
that the output spells exactly. For a generative decoder, :func:`likelihood` measures how well it predicts the
true text from its embedding (nats per token).

>>> round(token_f1("the cat sat", "the cat sat down"), 3)
0.857
"""

from __future__ import annotations

import collections
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .decoders.generative import GenerativeDecoder
    from .encoder import TextEncoder

__all__ = ["bleu", "exact_match", "token_f1", "rouge_l", "particulars", "RoundTrip", "roundtrip", "output_cosines", "summarize", "likelihood"]

_TOKEN = re.compile(r"\w+|[^\w\s]")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus BLEU, 0-100."""
    import sacrebleu

    if not hypotheses:
        return 0.0
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def exact_match(hypothesis: str, reference: str) -> float:
    """1.0 when the texts are equal after trimming whitespace."""
    return float(" ".join(hypothesis.split()) == " ".join(reference.split()))


def token_f1(hypothesis: str, reference: str) -> float:
    """F1 over lower-cased word and punctuation tokens, counted with multiplicity."""
    hyp, ref = _tokens(hypothesis), _tokens(reference)
    if not hyp or not ref:
        return float(hyp == ref)
    common = sum((collections.Counter(hyp) & collections.Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(hyp), common / len(ref)
    return 2 * precision * recall / (precision + recall)


_NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
_SENTENCE_END = {".", "!", "?"}
# a full stop after one of these (or after a single letter, as in "U.S.") does not end a sentence
_ABBREVIATIONS = {"Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "Mt", "Ft", "Lt", "Gen", "Col", "Capt", "Prof", "Rev", "Gov", "Sen",
                  "Rep", "No", "vs", "etc", "Inc", "Co", "Ltd", "Corp", "Bros", "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug",
                  "Sep", "Sept", "Oct", "Nov", "Dec"}


def _words_and_numbers(text: str) -> tuple[list[str], set[str]]:
    """The tokens of ``text`` with its numbers taken out, and its distinct numbers: names are read from the one,
    and an output's words matched against them, the same way."""
    return _TOKEN.findall(_NUMBER.sub(" ", text)), set(_NUMBER.findall(text))


def particulars(text: str) -> tuple[set[str], set[str]]:
    """The distinct names and numbers of ``text``. A name is a capitalised word that does not start a sentence
    (nor is "I"): a proxy for proper nouns that needs no tagger, so it misses a name that opens a sentence.

    >>> names, numbers = particulars("In 1912 the Titanic left Southampton. It sank, and 1,503 died.")
    >>> sorted(names), sorted(numbers)
    (['Southampton', 'Titanic'], ['1,503', '1912'])
    """
    names, starts, previous = set(), True, ""
    tokens, numbers = _words_and_numbers(text)
    for token in tokens:
        if token in _SENTENCE_END:
            starts = starts or not (token == "." and (len(previous) == 1 and previous.isalpha() or previous in _ABBREVIATIONS))
        elif token[0].isalpha():
            if not starts and token[0].isupper() and token != "I":
                names.add(token)
            starts = False
        previous = token
    return names, numbers


def _recovered(outputs: Sequence[str], inputs: Sequence[str]) -> tuple[float | None, float | None]:
    """Shares of the inputs' names and numbers that their outputs hold (pooled over all rows; None when none)."""
    found, total = np.zeros(2), np.zeros(2)
    for output, text in zip(outputs, inputs):
        out_words, out_numbers = _words_and_numbers(output)  # a name counts wherever the output has it, sentence start included
        names, numbers = particulars(text)
        found += (len(names & set(out_words)), len(numbers & out_numbers))
        total += (len(names), len(numbers))
    return tuple(round(float(f / t), 4) if t else None for f, t in zip(found, total))  # type: ignore[return-value]


_ROUGE = None


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F-measure (rouge-score, with stemming)."""
    global _ROUGE
    if _ROUGE is None:
        from rouge_score import rouge_scorer

        _ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return float(_ROUGE.score(reference, hypothesis)["rougeL"].fmeasure)


@dataclass
class RoundTrip:
    """One input's round trip: text -> vector -> decoded text, and the cosine of the two vectors."""

    input: str
    output: str
    cosine: float
    ms: float

    def to_dict(self) -> dict[str, float | str]:
        return {"input": self.input, "output": self.output, "cosine": round(self.cosine, 6), "ms": round(self.ms, 3)}


def output_cosines(encoder: "TextEncoder", outputs: Sequence[str], targets: np.ndarray) -> np.ndarray:
    """Cosine of each re-encoded output to its row of ``targets`` (unit vectors ``[N, D]``), encoded in one batch;
    an empty output scores 0 (it has no embedding).

    >>> output_cosines(encoder, ["A cat sat.", ""], encoder.encode(["The cat sat.", "x"]))   # doctest: +SKIP
    array([0.87, 0.  ], dtype=float32)
    """
    cosines = np.zeros(len(outputs), np.float32)
    keep = [i for i, o in enumerate(outputs) if o.strip()]
    if keep:
        cosines[keep] = np.sum(encoder.encode([outputs[i] for i in keep]) * np.asarray(targets, np.float32)[keep], axis=1)
    return cosines


def roundtrip(
    texts: Sequence[str],
    encoder: "TextEncoder",
    decode: Callable[[np.ndarray], str],
    *,
    vectors: np.ndarray | None = None,
) -> Iterator[RoundTrip]:
    """Encode each text, decode its vector (timed), re-encode the output, yield the round trip.

    ``vectors`` replaces the encoded inputs (e.g. after Module 2 transformed them); the cosine is then
    taken against those vectors.
    """
    targets = encoder.encode(list(texts)) if vectors is None else np.asarray(vectors, dtype=np.float32)
    for text, target in zip(texts, targets):
        start = time.perf_counter()
        output = decode(target)
        ms = (time.perf_counter() - start) * 1000.0
        yield RoundTrip(text, output, float(output_cosines(encoder, [output], target[None])[0]), ms)


def summarize(rows: Sequence[RoundTrip]) -> dict[str, float | int | None]:
    """Corpus metrics over round trips: n, bleu, exact_match, token_f1, rouge_l, cosine, names_recovered and
    numbers_recovered (see :func:`particulars`; None when the inputs have none), ms_per_sentence."""
    if not rows:
        return {"n": 0, "bleu": 0.0, "exact_match": 0.0, "token_f1": 0.0, "rouge_l": 0.0, "cosine": 0.0,
                "names_recovered": None, "numbers_recovered": None, "ms_per_sentence": 0.0}
    outputs, inputs = [r.output for r in rows], [r.input for r in rows]
    names, numbers = _recovered(outputs, inputs)
    return {
        "n": len(rows),
        "bleu": round(bleu(outputs, inputs), 3),
        "exact_match": round(float(np.mean([exact_match(o, i) for o, i in zip(outputs, inputs)])), 4),
        "token_f1": round(float(np.mean([token_f1(o, i) for o, i in zip(outputs, inputs)])), 4),
        "rouge_l": round(float(np.mean([rouge_l(o, i) for o, i in zip(outputs, inputs)])), 4),
        "cosine": round(float(np.mean([r.cosine for r in rows])), 4),
        "names_recovered": names,
        "numbers_recovered": numbers,
        "ms_per_sentence": round(float(np.mean([r.ms for r in rows])), 3),
    }


def likelihood(decoder: "GenerativeDecoder", texts: Sequence[str], vectors: np.ndarray, *, seed: int = 0,
               mismatched: bool = True, outputs: Sequence[str] | None = None) -> dict[str, float | None]:
    """How well a generative decoder predicts each true text from its embedding, over the whole corpus.

    - ``nll``: mean negative log-likelihood per token (nats; every token of the corpus weighs alike, the end of
      each text included), the texts read under their own embeddings. Lower is better; unlike BLEU it does not
      depend on a decoding strategy, so it compares training runs smoothly.
    - ``perplexity``: ``exp(nll)``.
    - ``nll_mismatched``: the same texts, each read under another text's embedding (a seeded derangement; None
      with one text: there is no other). The gap to ``nll`` shows how much the predictions rest on the right
      embedding. It is larger than what the embedding alone tells the decoder: a wrong embedding also misleads.
      ``mismatched=False`` leaves it out (one pass over the texts instead of two).

    With ``outputs``, the texts the decoder wrote for the same vectors, it also tells model errors from search
    errors (as Stahlberg and Byrne did for translation):

    - ``nll_output``: the mean negative log-likelihood per token of the decoder's own outputs (far below ``nll``:
      decoding picks likely text);
    - ``search_errors``: the share of texts the model finds more likely in total than the output it wrote. Those
      are failures of the search (greedy, beams), which a better search could fix; the rest are the model's: it
      prefers what it wrote to the truth. An empty output (end of text first) is left out of both. Both are
      scored by the model alone: a search with ``repetition_penalty`` or ``no_repeat_ngram_size`` optimises the
      scores after those rules, so some of these "search errors" are the rules' doing, not the search's.

    >>> likelihood(decoder, ["The cat sat."], encoder.encode(["The cat sat."]))   # doctest: +SKIP
    {'nll': 2.1, 'perplexity': 8.17, 'nll_mismatched': None}
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(texts):
        raise ValueError(f"give one vector per text: {len(texts)} texts, vectors of shape {vectors.shape}")
    if not len(texts):
        return {"nll": None, "perplexity": None, **({"nll_mismatched": None} if mismatched else {}),
                **({"nll_output": None, "search_errors": None} if outputs is not None else {})}
    sums, counts = decoder.sequence_log_probs(list(texts), vectors)
    nll = float(-sums.sum() / counts.sum())
    out: dict[str, float | None] = {"nll": round(nll, 4), "perplexity": round(float(np.exp(nll)), 3)}
    if mismatched:
        out["nll_mismatched"] = None
        if len(texts) > 1:
            order = np.random.default_rng(seed).permutation(len(texts))
            other = np.empty(len(texts), dtype=np.int64)
            other[order] = np.roll(order, -1)  # text order[i] reads vector order[i + 1]: nobody reads their own
            wrong, _ = decoder.sequence_log_probs(list(texts), vectors[other])
            out["nll_mismatched"] = round(float(-wrong.sum() / counts.sum()), 4)
    if outputs is not None:
        if len(outputs) != len(texts):
            raise ValueError(f"give one output per text: {len(texts)} texts, {len(outputs)} outputs")
        written = [i for i, o in enumerate(outputs) if o.strip()]
        out["nll_output"] = out["search_errors"] = None
        if written:
            own, own_counts = decoder.sequence_log_probs([outputs[i] for i in written], vectors[written])
            out["nll_output"] = round(float(-own.sum() / own_counts.sum()), 4)
            out["search_errors"] = round(float(np.mean(sums[written] > own)), 4)
    return out


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A markdown table of dict rows; a missing or None value is an empty cell."""
    def fmt(value: object) -> str:
        return "" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def plot_quality_vs_budget(rows: Sequence[dict], path: str, *, x: str = "num_steps") -> None:
    """Save a PNG of BLEU and cosine against a budget column (``num_steps`` or ``encoder_calls``), one line per file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_bleu, ax_cos) = plt.subplots(1, 2, figsize=(10, 4))
    for name in dict.fromkeys(r["file"] for r in rows):
        points = sorted((r for r in rows if r["file"] == name), key=lambda r: r[x])
        ax_bleu.plot([r[x] for r in points], [r["bleu"] for r in points], marker="o", label=name)
        ax_cos.plot([r[x] for r in points], [r["cosine"] for r in points], marker="o", label=name)
    for ax, label in ((ax_bleu, "BLEU"), (ax_cos, "cosine of re-encoded output")):
        ax.set_xlabel(x.replace("_", " "))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax_bleu.legend(fontsize=8)
    fig.suptitle("HybridDecoder quality against correction budget")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
