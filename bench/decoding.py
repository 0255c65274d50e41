"""Decoding settings of the generative decoder compared on the same sentences: greedy, greedy with
no_repeat_ngram_size or repetition_penalty, beam search. BLEU / exact match / token F1 / cosine of the
re-encoded output, and generation time per sentence at batch 64.

    python bench/decoding.py [--model models/default/generative] [--offset 500] [--limit 100]

The sentences are a slice of each held-out dev file that bench/generative.py does not report on (it reads
the first 300), so a setting chosen here is not chosen on the sentences it is then measured on.

Writes bench/results/decoding.json.
"""

from __future__ import annotations

import argparse
import time

from _common import REPO, command, dev_files, dev_sentences, machine, write_result

from lightweight_decoder.quality import RoundTrip, markdown_table, output_cosines, summarize

# every setting is spelled out in full, so the model folder's own generation defaults do not leak in
PLAIN = {"num_beams": 1, "do_sample": False, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "length_penalty": 1.0}
SETTINGS = {
    "greedy": {},
    "greedy, no_repeat_ngram_size 2": {"no_repeat_ngram_size": 2},
    "greedy, no_repeat_ngram_size 3": {"no_repeat_ngram_size": 3},
    "greedy, repetition_penalty 1.2": {"repetition_penalty": 1.2},
    "greedy, no_repeat_ngram_size 3, repetition_penalty 1.1": {"no_repeat_ngram_size": 3, "repetition_penalty": 1.1},
    "beam 4": {"num_beams": 4},
    "beam 4, no_repeat_ngram_size 3": {"num_beams": 4, "no_repeat_ngram_size": 3},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "models" / "default" / "generative"))
    parser.add_argument("--offset", type=int, default=500, help="first line of each dev file to use")
    parser.add_argument("--limit", type=int, default=100, help="sentences per dev file")
    args = parser.parse_args()

    from lightweight_decoder.decoders.generative import GenerativeDecoder
    from lightweight_decoder.encoder import TextEncoder

    encoder = TextEncoder()
    decoder = GenerativeDecoder.load(args.model)  # no encoder: with one return sequence nothing is re-ranked
    rows = []
    for path in dev_files():
        texts = dev_sentences(path.name)[args.offset:args.offset + args.limit]
        if not texts:
            continue
        targets = encoder.encode(texts)
        for name, overrides in SETTINGS.items():
            start = time.perf_counter()
            outputs = [r.text for r in decoder.generate(targets, batch_size=64, **{**PLAIN, **overrides})]
            ms = (time.perf_counter() - start) * 1000.0 / len(texts)
            cosines = output_cosines(encoder, outputs, targets)
            summary = summarize([RoundTrip(t, o, float(c), ms) for t, o, c in zip(texts, outputs, cosines)])
            rows.append({"file": path.name, "setting": name, **summary})
            print(rows[-1], flush=True)
    path = write_result("decoding", {
        "command": command(), "machine": machine(),
        "model": args.model, "offset": args.offset, "limit": args.limit,
        "settings": {name: {**PLAIN, **o} for name, o in SETTINGS.items()}, "results": rows,
    })
    print(markdown_table(rows, ["file", "setting", "n", "bleu", "exact_match", "token_f1", "cosine", "ms_per_sentence"]))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
