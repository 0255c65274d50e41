"""What storing a generative decoder's weights in fp16 costs: file size, and how many greedy texts change.

    python bench/weight_storage.py [--model models/default/generative] [--limit 200]

Saves the model again with ``weights="fp16"`` (into a temporary folder), loads both, and decodes the
first ``--limit`` sentences of wikipedia_dev and dialogue_dev with each. Writes bench/results/weight_storage.json.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import REPO, command, dev_sentences, machine, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/default/generative", help="a decoder folder (relative: to the repository)")
    parser.add_argument("--limit", type=int, default=200, help="sentences per dev file")
    args = parser.parse_args()

    from lightweight_decoder.decoders.generative import GenerativeDecoder
    from lightweight_decoder.encoder import TextEncoder
    from lightweight_decoder.quality import bleu

    model = REPO / args.model  # an absolute --model stays as it is
    fp32 = GenerativeDecoder.load(model)
    encoder = TextEncoder(fp32.encoder_name)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32.save(Path(tmp) / "fp16", weights="fp16")
        fp16 = GenerativeDecoder.load(Path(tmp) / "fp16")
        sizes = {w: (Path(d) / "model.safetensors").stat().st_size for w, d in (("fp32", model), ("fp16", Path(tmp) / "fp16"))}
    for name in ("wikipedia_dev.txt", "dialogue_dev.txt"):
        texts = dev_sentences(name, n=args.limit)
        vectors = encoder.encode(texts)
        out32, out16 = fp32.decode(vectors), fp16.decode(vectors)
        rows.append({"file": name, "n": len(texts), "same_text": round(sum(a == b for a, b in zip(out32, out16)) / len(texts), 3),
                     "bleu_fp32": round(bleu(out32, texts), 2), "bleu_fp16": round(bleu(out16, texts), 2)})
        print(rows[-1], flush=True)
    path = write_result("weight_storage", {"command": command(), "machine": machine(), "model": args.model,
                                           "file_bytes": sizes, "results": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
