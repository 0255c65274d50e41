"""Hybrid decoder: on every dev file, BLEU / exact match / cosine / ms per sentence for the phrase,
generative and hybrid decoders, the hybrid at 0, 1, 5 and 20 correction steps.

    python bench/hybrid.py [--limit 40] [--steps 0 1 5 20] [--max-seconds 5 | none] [--edits-per-step N]
                           [--screen DIR | none] [--fluency-weight W] [--quantize fp16 | int8] [--files wikipedia_dev ...]
                           [--out hybrid]

Uses the shipped bank, (when shipped) generative model and screen (``--screen none``: correction judges
unscreened random edits, as before the screen existed). Writes bench/results/<out>.json and
bench/results/<out>_budget.png. ``--max-seconds none`` removes the time limit: the hybrid is then bounded
by its rounds and edits alone, and its texts do not depend on the machine's speed.
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import RESULTS, command, dev_files, dev_sentences, machine, write_result


def _seconds(value: str) -> float | None:
    return None if value.lower() == "none" else float(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=40, help="sentences per dev file")
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 1, 5, 20])
    parser.add_argument("--max-seconds", type=_seconds, default=5.0, help="per-sentence time budget of the hybrid, or none")
    parser.add_argument("--edits-per-step", type=int, help="edits judged per correction round (default: HybridConfig's)")
    parser.add_argument("--screen", default=None, help="screen folder, or none (default: the shipped screen)")
    parser.add_argument("--fluency-weight", type=float, help="HybridConfig.fluency_weight (default: HybridConfig's; 0: cosine alone)")
    parser.add_argument("--quantize", choices=["fp16", "int8"], help="the generator's weights for inference (default: as saved, fp32)")
    parser.add_argument("--files", nargs="+", help="dev files by name (default: every *_dev.txt)")
    parser.add_argument("--out", default="hybrid", help="result name: bench/results/<out>.json and <out>_budget.png")
    args = parser.parse_args()

    from lightweight_decoder.decoders.hybrid import HybridConfig, HybridDecoder
    from lightweight_decoder.errors import ModelNotFound
    from lightweight_decoder.loading import load_decoder, load_screen
    from lightweight_decoder.quality import plot_quality_vs_budget, roundtrip, summarize

    phrase, encoder = load_decoder("phrase")
    decoders = {"phrase": phrase}
    try:
        decoders["generative"], _ = load_decoder("generative", encoder=encoder, quantize=args.quantize)
    except ModelNotFound as exc:
        print(f"generative decoder not shipped: {exc}")
    screen = None if args.screen == "none" else load_screen(args.screen, encoder)
    hybrid = HybridDecoder(phrase, decoders.get("generative"), encoder, screen=screen)
    rows = []
    paths = dev_files(args.files)
    rounds = {} if args.edits_per_step is None else {"edits_per_step": args.edits_per_step}
    if args.fluency_weight is not None:
        rounds["fluency_weight"] = args.fluency_weight
    for path in paths:
        texts = dev_sentences(path.name, n=args.limit)
        targets = encoder.encode(texts)
        for name, decoder in decoders.items():
            rows.append({"file": path.name, "decoder": name, "num_steps": None, "encoder_calls": None,
                         **summarize(list(roundtrip(texts, encoder, decoder.decode, vectors=targets)))})
            print(rows[-1], flush=True)
        for steps in args.steps:
            # the pool takes up to three encoder calls (a compressed bank's best few, the greedy output, then what the
            # time left pays for), each correction round one more
            hybrid.config = HybridConfig(num_steps=steps, max_encoder_calls=steps + 3, max_seconds=args.max_seconds, **rounds)
            details = []

            def decode(v: np.ndarray) -> str:
                result = hybrid.generate(v)
                details.append({**result.details, "own_ms": result.timings["total_ms"]})
                return result.text

            rows.append({"file": path.name, "decoder": "hybrid", "num_steps": steps,
                         **summarize(list(roundtrip(texts, encoder, decode, vectors=targets))),
                         "encoder_calls": round(float(np.mean([d["encoder_calls"] for d in details])), 2),
                         "steps_taken": round(float(np.mean([d["steps"] for d in details])), 2),
                         "pool_cut_share": round(float(np.mean([bool(d["skipped"]) for d in details])), 2),
                         "own_ms_p50": round(float(np.median([d["own_ms"] for d in details])), 1),
                         "own_ms_max": round(float(np.max([d["own_ms"] for d in details])), 1),
                         "screened": round(float(np.mean([d["screened"] for d in details])), 1)})
            print(rows[-1], flush=True)
    plot = f"{args.out}_budget.png"
    plot_quality_vs_budget([r for r in rows if r["decoder"] == "hybrid"], str(RESULTS / plot))
    path = write_result(args.out, {"command": command(), "machine": machine(), "limit": args.limit, "max_seconds": args.max_seconds,
                                   "edits_per_step": hybrid.config.edits_per_step, "fluency_weight": hybrid.config.fluency_weight,
                                   "generator": "generative" in decoders, "quantize": args.quantize,
                                   "screen": None if screen is None else {"path": args.screen or "shipped", **screen.metrics},
                                   "results": rows, "plot": plot})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
