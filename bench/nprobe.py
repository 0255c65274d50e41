"""Phrase bank at 1M entries: recall@1 and latency against ``nprobe``, the number of IVF lists a search
visits (``PhraseBank.set_search``, ``--nprobe`` on the CLI).

    python bench/nprobe.py [--size 1000000] [--nprobe 8 16 32 64 128] [--cache DIR]

The vectors and queries are built as in bench/phrasebank.py's scale rows: real all-mpnet-base-v2 corpus
embeddings from an embedding cache, topped up with perturbed copies; held-out dev sentences as queries;
recall@1 against exact search in the same run. Each index is built once and searched at every nprobe.
Writes bench/results/nprobe.json and bench/results/nprobe.png (recall@1 against p50 latency).
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np

from _common import RESULTS, command, dev_sentences, machine, write_result
from phrasebank import exact_top1, measure_search, scale_vectors


def _plot(rows: list[dict]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for index in dict.fromkeys(r["index"] for r in rows):
        points = [r for r in rows if r["index"] == index]
        ax.plot([r["p50_ms"] for r in points], [r["recall_at_1"] for r in points], marker="o", label=index)
        for r in points:
            ax.annotate(str(r["nprobe"]), (r["p50_ms"], r["recall_at_1"]), textcoords="offset points", xytext=(4, -10), fontsize=8)
    ax.axhline(0.95, color="grey", linestyle="--", linewidth=1, label="recall target 0.95")
    ax.set_xscale("log")
    ax.set_xlabel("p50 single-query decode latency (ms)")
    ax.set_ylabel("recall@1 against exact search")
    ax.set_title(f"{rows[0]['size']:,} entries: recall and latency by nprobe (labels)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "nprobe.png", dpi=100)
    plt.close(fig)
    return "nprobe.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--nlist", type=int, default=1024, help="IVF lists (the shipped bank and bench/phrasebank.py use 1024 at 1M)")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    parser.add_argument("--codecs", nargs="+", default=["SQ8", "PQ96"], help="IVF codecs to measure")
    parser.add_argument("--queries", type=int, default=200, help="dev sentences used as queries")
    parser.add_argument("--cache", help="embedding cache folder (default: the all-mpnet-base-v2 corpus cache)")
    args = parser.parse_args()

    from lightweight_decoder.config import PhraseBankConfig
    from lightweight_decoder.encoder import TextEncoder
    from lightweight_decoder.phrasebank import PhraseBank

    encoder = TextEncoder()
    queries = encoder.encode(dev_sentences(n=args.queries), precision="auto")
    texts, vectors, real = scale_vectors(args.cache, args.size, np.random.default_rng(0))
    truth = exact_top1(vectors, queries)
    rows = []
    for codec in args.codecs:
        factory = f"IVF{args.nlist},{codec}"
        start = time.perf_counter()
        bank = PhraseBank.from_vectors(texts, vectors, encoder_name=encoder.name,
                                       config=PhraseBankConfig(index_factory=factory, vector_dtype="none"))
        build_s = round(time.perf_counter() - start, 1)
        for nprobe in args.nprobe:
            bank.set_search(nprobe=nprobe)
            rows.append({"size": args.size, "real_vectors": min(real, args.size), "index": factory, "nprobe": nprobe,
                         "build_s": build_s, **measure_search(bank, queries, truth)})
            print(rows[-1], flush=True)
        del bank
        gc.collect()
    path = write_result("nprobe", {"command": command(), "machine": machine(), "rows": rows, "plot": _plot(rows)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
