"""What the hybrid's correction gains from the screen, its word suggestions and the fluency term, one at a time.

    python bench/hybrid_ablation.py [--limit 40] [--offset 500] [--steps 3] [--edits-per-step 16]
                                    [--fluency-weight 0.05] [--files dialogue_dev wikipedia_dev] [--out hybrid_ablation]

Five hybrids on the same sentences (lines offset.. of each dev file, not the ones bench/hybrid.py reports), with
no time limit, so the texts do not depend on the machine's speed: the pool, then ``--steps`` correction rounds
that each re-encode ``--edits-per-step`` edits, chosen either at random or by the screen from 256 proposals, and
judged either by cosine alone or by cosine + fluency weight x the generator's mean token log-probability; the
edits place words from the pool only, except in the fifth (the default), where they also place the words the screen
suggests for the current best (``screen_words``, 32).
Writes bench/results/hybrid_ablation.json (``--out`` names another file).
"""

from __future__ import annotations

import argparse

from _common import command, dev_sentences, machine, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=40, help="sentences per dev file")
    parser.add_argument("--offset", type=int, default=500, help="first line of each dev file used")
    parser.add_argument("--steps", type=int, default=3, help="correction rounds")
    parser.add_argument("--edits-per-step", type=int, default=16, help="edits re-encoded per round")
    parser.add_argument("--fluency-weight", type=float, default=0.05, help="the fluency weight of the variants that use one")
    parser.add_argument("--files", nargs="+", default=["dialogue_dev", "wikipedia_dev"])
    parser.add_argument("--out", default="hybrid_ablation", help="results file name under bench/results (no .json)")
    args = parser.parse_args()

    from lightweight_decoder.decoders.hybrid import HybridConfig, HybridDecoder
    from lightweight_decoder.loading import load_decoder, load_screen
    from lightweight_decoder.quality import roundtrip, summarize

    phrase, encoder = load_decoder("phrase")
    generator, _ = load_decoder("generative", encoder=encoder)
    screen = load_screen(None, encoder)
    default_words = HybridConfig().screen_words
    variants = [("random edits", None, 0.0, 0), ("screened edits", screen, 0.0, 0),
                ("random edits", None, args.fluency_weight, 0), ("screened edits", screen, args.fluency_weight, 0),
                (f"screened edits + {default_words} suggested words", screen, args.fluency_weight, default_words)]
    rows = []
    for name in args.files:
        texts = dev_sentences(name + ".txt", n=args.offset + args.limit)[args.offset:]
        targets = encoder.encode(texts)
        for edits, variant_screen, weight, words in variants:
            config = HybridConfig(num_steps=args.steps, max_encoder_calls=args.steps + 3, max_seconds=None,
                                  edits_per_step=args.edits_per_step, fluency_weight=weight, screen_words=words)
            hybrid = HybridDecoder(phrase, generator, encoder, config, screen=variant_screen)
            rows.append({"file": f"{name}.txt", "edits": edits, "judged_by": f"cosine + {weight} x log-likelihood" if weight else "cosine",
                         **summarize(list(roundtrip(texts, encoder, hybrid.decode, vectors=targets)))})
            print(rows[-1], flush=True)
    path = write_result(args.out, {"command": command(), "machine": machine(), "limit": args.limit, "offset": args.offset,
                                   "steps": args.steps, "edits_per_step": args.edits_per_step, "results": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
