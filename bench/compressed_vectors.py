"""How much of a sentence survives vector compression: the generative decoder reads dev-set embeddings
exactly, and after a round trip through the codecs a vector store might keep them in (float16, 8-bit
and 4-bit scalar quantisation, binary quantisation (the signs), the shipped bank's IVF1024,PQ96 product
quantisation).

For each codec: the mean cosine of the decoded vector to the exact one, and the decoder's BLEU / exact
match / token F1 / cosine (re-encoded output against the exact embedding) on the same sentences. This
is what `train --bank` on a bank without vectors trains from, and what an embedding kept in a
compressed store still gives away.

    python bench/compressed_vectors.py [--model models/default/generative] [--limit 200]

Writes bench/results/compressed_vectors.json.
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import REPO, command, dev_sentences, machine, write_result

from lightweight_decoder.quality import RoundTrip, markdown_table, output_cosines, summarize

FILES = ("wikipedia_dev.txt", "dialogue_dev.txt")


def _codecs(dimension: int, bank_index) -> dict:
    """name -> function from unit vectors [N, D] to their decoded unit vectors [N, D]."""
    import faiss

    def unit(x: np.ndarray) -> np.ndarray:
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def scalar(kind: int):
        def roundtrip(x: np.ndarray) -> np.ndarray:
            # per-dimension ranges from the vectors themselves: the best case for a scalar quantiser
            quantiser = faiss.IndexScalarQuantizer(dimension, kind, faiss.METRIC_INNER_PRODUCT)
            quantiser.train(x)
            return unit(quantiser.sa_decode(quantiser.sa_encode(x)))
        return roundtrip

    return {
        "exact (float32)": lambda x: x,
        "float16": lambda x: unit(x.astype(np.float16).astype(np.float32)),
        f"SQ8 ({dimension} bytes)": scalar(faiss.ScalarQuantizer.QT_8bit),
        f"SQ4 ({dimension // 2} bytes)": scalar(faiss.ScalarQuantizer.QT_4bit),
        f"binary, signs only ({dimension // 8} bytes)": lambda x: unit(np.where(x >= 0, 1.0, -1.0)),
        "shipped bank's IVF1024,PQ96 (96 bytes)": lambda x: unit(bank_index.sa_decode(bank_index.sa_encode(x))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "models" / "default" / "generative"))
    parser.add_argument("--bank", default=str(REPO / "models" / "default" / "bank"))
    parser.add_argument("--limit", type=int, default=200, help="first N sentences of each dev file")
    args = parser.parse_args()

    from lightweight_decoder.decoders.generative import GenerativeDecoder
    from lightweight_decoder.encoder import TextEncoder
    from lightweight_decoder.phrasebank import PhraseBank

    encoder = TextEncoder()
    decoder = GenerativeDecoder.load(args.model)
    bank = PhraseBank.load(args.bank, encoder_name=encoder.name, dimension=encoder.dimension)
    codecs = _codecs(encoder.dimension, bank.index)
    rows = []
    for name in FILES:
        texts = dev_sentences(name, args.limit)
        exact = encoder.encode(texts)
        for codec, roundtrip in codecs.items():
            vectors = roundtrip(exact)
            outputs = [r.text for r in decoder.generate(vectors, batch_size=64, num_beams=1, do_sample=False)]
            cosines = output_cosines(encoder, outputs, exact)  # against the exact embedding
            summary = summarize([RoundTrip(t, o, float(c), 0.0) for t, o, c in zip(texts, outputs, cosines)])
            summary.pop("ms_per_sentence", None)
            rows.append({"file": name, "codec": codec, "vector_cosine": round(float(np.mean(np.sum(vectors * exact, axis=1))), 5),
                         **summary})
            print(rows[-1], flush=True)
    path = write_result("compressed_vectors", {
        "command": command(), "machine": machine(), "model": args.model, "bank": args.bank, "limit": args.limit, "results": rows,
    })
    print(markdown_table(rows, ["file", "codec", "vector_cosine", "n", "bleu", "exact_match", "token_f1", "cosine"]))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
