"""Hybrid decoder: on every dev file, BLEU / exact match / cosine / ms per sentence for the phrase,
generative and hybrid decoders, the hybrid at 0, 1, 5 and 20 correction steps.

    python bench/hybrid.py [--limit 40] [--steps 0 1 5 20]

Uses the shipped bank and (when shipped) generative model. Writes bench/results/hybrid.json and
bench/results/hybrid_budget.png.
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import RESULTS, SHARED, command, dev_sentences, machine, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=40, help="sentences per dev file")
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 1, 5, 20])
    parser.add_argument("--max-seconds", type=float, default=5.0, help="per-sentence time budget of the hybrid")
    args = parser.parse_args()

    from lightweight_decoder.decoders.hybrid import HybridConfig, HybridDecoder
    from lightweight_decoder.errors import ModelNotFound
    from lightweight_decoder.loading import load_decoder
    from lightweight_decoder.quality import plot_quality_vs_budget, roundtrip, summarize

    phrase, encoder = load_decoder("phrase")
    decoders = {"phrase": phrase}
    try:
        decoders["generative"], _ = load_decoder("generative", encoder=encoder)
    except ModelNotFound as exc:
        print(f"generative decoder not shipped: {exc}")
    hybrid = HybridDecoder(phrase, decoders.get("generative"), encoder)
    rows = []
    for path in sorted((SHARED / "eval").glob("*_dev.txt")):
        texts = dev_sentences(path.name, n=args.limit)
        targets = encoder.encode(texts)
        for name, decoder in decoders.items():
            rows.append({"file": path.name, "decoder": name, "num_steps": None, "encoder_calls": None,
                         **summarize(list(roundtrip(texts, encoder, decoder.decode, vectors=targets)))})
            print(rows[-1], flush=True)
        for steps in args.steps:
            # the pool takes up to three encoder calls (a compressed bank's best few, the greedy output, then what the
            # time left pays for), each correction round one more
            hybrid.config = HybridConfig(num_steps=steps, max_encoder_calls=steps + 3, max_seconds=args.max_seconds)
            details = []

            def decode(v: np.ndarray) -> str:
                result = hybrid.generate(v)
                details.append(result.details)
                return result.text

            rows.append({"file": path.name, "decoder": "hybrid", "num_steps": steps,
                         **summarize(list(roundtrip(texts, encoder, decode, vectors=targets))),
                         "encoder_calls": round(float(np.mean([d["encoder_calls"] for d in details])), 2),
                         "steps_taken": round(float(np.mean([d["steps"] for d in details])), 2),
                         "pool_cut_share": round(float(np.mean([bool(d["skipped"]) for d in details])), 2)})
            print(rows[-1], flush=True)
    plot_quality_vs_budget([r for r in rows if r["decoder"] == "hybrid"], str(RESULTS / "hybrid_budget.png"))
    path = write_result("hybrid", {"command": command(), "machine": machine(), "limit": args.limit,
                                   "generator": "generative" in decoders, "results": rows, "plot": "hybrid_budget.png"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
