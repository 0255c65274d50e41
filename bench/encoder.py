"""Module 1 speed: sentences per second at batch 1 and 64, fp32 (baseline) and bf16, median of runs.

    python bench/encoder.py [--runs 3] [--model all-mpnet-base-v2] [--tag NAME]

Writes bench/results/encoder.json (encoder_NAME.json with --tag, to keep another machine's results beside it).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from _common import command, dev_sentences, machine, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default="all-mpnet-base-v2")
    parser.add_argument("--n-batch1", type=int, default=32, help="sentences encoded one by one per run")
    parser.add_argument("--n-batch64", type=int, default=256, help="sentences encoded in batches of 64 per run")
    parser.add_argument("--tag", help="suffix of the result file, e.g. the kind of CPU")
    args = parser.parse_args()

    from lightweight_decoder.encoder import TextEncoder

    encoder = TextEncoder(args.model)
    sentences = dev_sentences(n=max(args.n_batch1, args.n_batch64))
    encoder.encode(sentences[:8])  # warm-up
    rows = []
    for precision in ("fp32", "bf16"):
        for batch_size, n in ((1, args.n_batch1), (64, args.n_batch64)):
            texts = sentences[:n]
            rates = []
            for _ in range(args.runs):
                start = time.perf_counter()
                if batch_size == 1:
                    for text in texts:
                        encoder.encode(text, precision=precision)
                else:
                    encoder.encode(texts, batch_size=batch_size, precision=precision)
                rates.append(len(texts) / (time.perf_counter() - start))
            rows.append({"precision": precision, "batch_size": batch_size, "sentences": len(texts),
                         "sentences_per_s": round(statistics.median(rates), 2), "runs": [round(r, 2) for r in rates]})
            print(f"{precision} batch {batch_size:>2}: {statistics.median(rates):7.1f} sentences/s (median of {args.runs})")
    full = encoder.encode(sentences[:64], precision="fp32")
    half = encoder.encode(sentences[:64], precision="bf16")
    agreement = np.sum(full * half, axis=1)
    baseline = {r["batch_size"]: r["sentences_per_s"] for r in rows if r["precision"] == "fp32"}
    for r in rows:
        r["speedup_vs_fp32"] = round(r["sentences_per_s"] / baseline[r["batch_size"]], 2)
    path = write_result(f"encoder_{args.tag}" if args.tag else "encoder", {
        "command": command(),
        "model": encoder.name,
        "dimension": encoder.dimension,
        "input": "first sentences of shared/data/eval/wikipedia_dev.txt",
        "machine": machine(),
        "results": rows,
        "bf16_vs_fp32_cosine": {"min": round(float(agreement.min()), 6), "mean": round(float(agreement.mean()), 6)},
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
