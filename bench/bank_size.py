"""How close a phrase bank's nearest sentence comes to held-out text, by the number of sentences it holds.

    python bench/bank_size.py [--cache DIR] [--limit 300] [--smallest 4096]

DIR is an all-mpnet-base-v2 embedding cache (written by `lightweight-decoder bank build`, `bank add` or `train`;
each prints its folder; default: the first one under the cache home, as bench/phrasebank.py): its texts are a
seeded shuffle of the corpus, so its first n entries are a random sample of n corpus sentences. For n = smallest,
2 x smallest, ... and the whole cache, each dev sentence's nearest entry by exact cosine (exact search, as
bench/phrasebank.py's recall baseline: the numbers measure what the bank holds, not how an index searches it)
is taken as its decoding. Reported per dev file: BLEU, exact match and token F1 against the sentence, and
the cosine between the sentence's embedding and that entry's (the cosine of the re-encoded output, since an
entry's vector is its text's embedding). Each row also gives the gain per doubling of the bank, a
least-squares slope of the metric against log2(n).

Writes bench/results/bank_size.json and bench/results/bank_size.png.
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import RESULTS, command, dev_sentences, machine, write_result
from phrasebank import default_cache, exact_top1

DEV_FILES = ("wikipedia_dev.txt", "simple_wikipedia_dev.txt", "sts_dev.txt", "dialogue_dev.txt")


def sizes_up_to(total: int, smallest: int) -> list[int]:
    """smallest, 2 x smallest, ... below ``total``, then ``total``."""
    if total < 1:
        raise SystemExit("the embedding cache is empty")
    sizes, n = [], smallest
    while n < total:
        sizes.append(n)
        n *= 2
    return sizes + [total]


def per_doubling(rows: list[dict], metric: str) -> float:
    """The slope of ``metric`` against log2(size): what doubling the bank added, on average."""
    x = np.log2([r["size"] for r in rows])
    y = np.array([r[metric] for r in rows])
    return float(np.polyfit(x, y, 1)[0]) if len(rows) > 1 else 0.0


def _plot(rows: list[dict], path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name in dict.fromkeys(r["file"] for r in rows):
        points = [r for r in rows if r["file"] == name]
        for ax, metric in zip(axes, ("cosine", "bleu")):
            ax.plot([r["size"] for r in points], [r[metric] for r in points], marker="o", label=name.removesuffix(".txt"))
    sizes = sorted({r["size"] for r in rows})
    for ax, label in zip(axes, ("mean cosine of the nearest entry", "BLEU of the nearest entry")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [f"{n / 1000:.0f}k" for n in sizes])
        ax.minorticks_off()
        ax.set_xlabel("sentences in the bank")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Nearest bank sentence to held-out text, by bank size (exact search)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", help="all-mpnet-base-v2 embedding cache folder (default: the first under the cache home)")
    parser.add_argument("--limit", type=int, default=300, help="sentences of each dev file")
    parser.add_argument("--smallest", type=int, default=4096, help="the smallest bank measured; each next one is twice as large")
    args = parser.parse_args()

    from lightweight_decoder.data import EmbeddingCache
    from lightweight_decoder.encoder import TextEncoder
    from lightweight_decoder.quality import bleu, exact_match, token_f1

    folder = args.cache or default_cache()
    cache = EmbeddingCache.open(folder)
    encoder = TextEncoder()
    if cache.config["encoder"] != encoder.name:
        raise SystemExit(f"{folder} holds {cache.config['encoder']} vectors; this benchmark measures {encoder.name}")
    texts, vectors = cache.load()
    vectors = vectors.astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sizes = sizes_up_to(len(texts), args.smallest)
    rows: list[dict] = []
    for name in DEV_FILES:
        references = dev_sentences(name, n=args.limit)
        queries = encoder.encode(references, precision="auto")
        for n in sizes:
            where = exact_top1(vectors[:n], queries)
            cosine = np.einsum("ij,ij->i", vectors[where], queries)  # unit vectors: the inner product is the cosine
            outputs = [texts[i] for i in where]
            rows.append({"file": name, "n": len(references), "size": n, "bleu": round(bleu(outputs, references), 3),
                         "exact_match": round(float(np.mean([exact_match(o, r) for o, r in zip(outputs, references)])), 3),
                         "token_f1": round(float(np.mean([token_f1(o, r) for o, r in zip(outputs, references)])), 3),
                         "cosine": round(float(cosine.mean()), 4)})
            print(rows[-1], flush=True)
    slopes = [{"file": name, **{f"{m}_per_doubling": round(per_doubling([r for r in rows if r["file"] == name], m), 4)
                                for m in ("bleu", "token_f1", "cosine")}} for name in DEV_FILES]
    plot = _plot(rows, RESULTS / "bank_size.png")
    path = write_result("bank_size", {"command": command(), "machine": machine(), "encoder": encoder.name,
                                      "cache": {"entries": len(texts), "precision": cache.config["precision"]},
                                      "rows": rows, "per_doubling": slopes, "plot": plot})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
