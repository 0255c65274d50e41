"""What an embedding leaks: the share of each dev sentence's names and numbers that the shipped decoders read back
from its all-mpnet-base-v2 embedding alone.

    python bench/leakage.py [--limit 100] [--files wikipedia_dev ...]

A name is a capitalised word that does not start a sentence, a number a run of digits (``quality.particulars``);
one counts as recovered when the output spells it exactly. Each decoder runs as ``decode --decoder KIND`` does,
with its shipped model and default settings (the hybrid: 1 s a sentence). The ``chance`` row gives each sentence the phrase
decoder's output for the next sentence instead: what a text that knows nothing of the input recovers by luck.
Writes bench/results/leakage.json.
"""

from __future__ import annotations

import argparse

from _common import command, dev_files, dev_sentences, machine, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=100, help="sentences per dev file")
    parser.add_argument("--files", nargs="+", help="dev files by name (default: every *_dev.txt)")
    args = parser.parse_args()

    from lightweight_decoder.loading import load_decoder
    from lightweight_decoder.quality import RoundTrip, output_cosines, particulars, roundtrip, summarize

    phrase, encoder = load_decoder("phrase")
    decoders = {"phrase": phrase, **{kind: load_decoder(kind, encoder=encoder)[0] for kind in ("generative", "hybrid")}}
    paths = dev_files(args.files)
    keep = ["n", "names_recovered", "numbers_recovered", "token_f1", "bleu", "cosine", "ms_per_sentence"]
    rows = []
    for path in paths:
        texts = dev_sentences(path.name, n=args.limit)
        targets = encoder.encode(texts)
        found = [particulars(t) for t in texts]
        counts = {"names": sum(len(names) for names, _ in found), "numbers": sum(len(numbers) for _, numbers in found)}
        outputs = {}
        for name, decoder in decoders.items():
            trips = list(roundtrip(texts, encoder, decoder.decode, vectors=targets))
            outputs[name] = [t.output for t in trips]
            summary = summarize(trips)
            rows.append({"file": path.name, "decoder": name, **counts, **{k: summary[k] for k in keep}})
            print(rows[-1], flush=True)
        shifted = outputs["phrase"][1:] + outputs["phrase"][:1]  # each sentence read as the next one's decoding
        cosines = output_cosines(encoder, shifted, targets)
        summary = summarize([RoundTrip(t, o, float(c), 0.0) for t, o, c in zip(texts, shifted, cosines)])
        rows.append({"file": path.name, "decoder": "chance", **counts, **{k: summary[k] for k in keep}, "ms_per_sentence": None})
        print(rows[-1], flush=True)
    path = write_result("leakage", {"command": command(), "machine": machine(), "limit": args.limit,
                                    "max_seconds": decoders["hybrid"].config.max_seconds, "results": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
