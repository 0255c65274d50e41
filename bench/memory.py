"""Retrieval memory: how many of a sentence's content words the bank's nearest texts hold, and how many a decoder writes.

    python bench/memory.py --decoder DIR [--baseline DIR] [--limit 300] [--files wikipedia_dev simple_wikipedia_dev ...]

``--decoder`` is a generative decoder with memory slots (``train --memory-len``); ``--baseline`` (default: the shipped
decoder) is decoded on the same sentences. Per dev file (first ``--limit`` lines), over the reference's content
tokens (its token ids minus the memory's ``skip_ids``: punctuation, "the", frequent pieces):

- memory_recall: the share the decoder's memory holds (what it could copy);
- recall: the share the decoder's greedy output holds; baseline_recall: the baseline's;
- copied_share: of the decoder's output content tokens, the share that came from its memory;
- copied_precision: of those copied tokens, the share that are in the reference.

Writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import command, dev_sentences, machine, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decoder", required=True, help="generative decoder folder with memory slots")
    parser.add_argument("--baseline", help="decoder to compare with (default: the shipped one)")
    parser.add_argument("--limit", type=int, default=300, help="sentences per dev file")
    parser.add_argument("--files", nargs="+", default=["wikipedia_dev", "simple_wikipedia_dev", "dialogue_dev"])
    args = parser.parse_args()

    from lightweight_decoder.loading import load_decoder

    decoder, encoder = load_decoder("generative", generative_path=args.decoder)
    baseline, _ = load_decoder("generative", generative_path=args.baseline, encoder=encoder)
    if decoder.retriever is None:
        raise SystemExit(f"{args.decoder} has no memory slots: train one with `lightweight-decoder train --memory-len N`")
    retriever, tokenizer = decoder.retriever, decoder.tokenizer
    pad = decoder.model.config.pad_id
    rows = []
    for name in args.files:
        texts = dev_sentences(name + ".txt", n=args.limit)
        vectors = encoder.encode(texts)
        memory = retriever(vectors)
        outputs = [r.text for r in decoder.generate(vectors, rescore=False)]
        base = [r.text for r in baseline.generate(vectors, rescore=False)]

        def content(text: str) -> set[int]:
            return set(tokenizer.encode(text).ids) - retriever.skip

        refs = [content(t) for t in texts]
        mems = [set(row.tolist()) - {pad} for row in memory]
        outs, bases = [content(t) for t in outputs], [content(t) for t in base]
        total = sum(len(r) for r in refs)
        copied = [o & m for o, m in zip(outs, mems)]
        rows.append({
            "file": name + ".txt", "n": len(texts),
            "memory_recall": round(sum(len(r & m) for r, m in zip(refs, mems)) / total, 3),
            "recall": round(sum(len(r & o) for r, o in zip(refs, outs)) / total, 3),
            "baseline_recall": round(sum(len(r & b) for r, b in zip(refs, bases)) / total, 3),
            "copied_share": round(sum(map(len, copied)) / max(sum(map(len, outs)), 1), 3),
            "copied_precision": round(sum(len(c & r) for c, r in zip(copied, refs)) / max(sum(map(len, copied)), 1), 3),
            "memory_slots_filled": round(float(np.mean(memory != pad)), 3),
        })
        print(rows[-1], flush=True)
    write_result("memory", {"command": command(), "machine": machine(), "decoder": args.decoder,
                            "baseline": args.baseline or "models/default/generative",
                            "memory": {**retriever.config.to_dict(), "skip_ids": len(retriever.skip), "slots": retriever.length},
                            "rows": rows})


if __name__ == "__main__":
    main()
