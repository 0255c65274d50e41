"""How weight averaging (`lightweight-decoder average`) moves a generative decoder's dev nll.

    python bench/averaging.py NAME=DIR [NAME=DIR ...] [--limit 200] [--file wikipedia_dev]

Each DIR is a decoder folder (a training folder's decoder, a shipped model, or one `average` wrote). Every one is
scored on the same first ``--limit`` lines of a dev file: nll, the mean negative log-likelihood per token (nats) of
the true sentence given its embedding, as `train --dev` logs it and `lightweight-decoder eval --decoder generative`
reports it. nll does not depend on decoding, so it separates models with far fewer sentences than BLEU does. Each
row also lists what the folder was averaged from (``averaged_from`` in its config.json), if anything.
Writes bench/results/averaging.json.
"""

from __future__ import annotations

import argparse
from _common import command, dev_sentences, machine, mean_of, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("decoders", nargs="+", metavar="NAME=DIR", help="a name for the table and a decoder folder")
    parser.add_argument("--limit", type=int, default=200, help="dev lines scored (the first N)")
    parser.add_argument("--file", default="wikipedia_dev", help="dev file (in ../shared/data/eval, without .txt)")
    args = parser.parse_args()
    named = []
    for item in args.decoders:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            parser.error(f"{item!r} is not NAME=DIR")
        named.append((name, folder))

    from lightweight_decoder.decoders.generative import GenerativeDecoder
    from lightweight_decoder.encoder import TextEncoder
    from lightweight_decoder.lineage import steps_in_all
    from lightweight_decoder.quality import likelihood

    texts = dev_sentences(args.file + ".txt", n=args.limit)
    vectors = TextEncoder("all-mpnet-base-v2").encode(texts)
    rows = []
    for name, folder in named:
        decoder = GenerativeDecoder.load(folder)
        nll = likelihood(decoder, texts, vectors, mismatched=False)["nll"]
        rows.append({"decoder": name, "averaged_from": mean_of(decoder.metadata.get("averaged_from") or []) or "-",
                     "steps_in_all": steps_in_all(decoder.metadata), "nll": round(nll, 4)})
        print(f"{name:<28} {rows[-1]['nll']:.4f}  {rows[-1]['averaged_from']}", flush=True)
    write_result("averaging", {"command": command(), "machine": machine(), "file": args.file, "n": len(texts), "rows": rows})


if __name__ == "__main__":
    main()
