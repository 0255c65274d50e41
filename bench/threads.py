"""Sharing the CPU: generation and encoding speed with 1 thread and with the default (one per core), on an
otherwise idle machine and beside another busy process.

    python bench/threads.py [--sentences 20] [--rounds 2] [--threads 1 2]

The busy process is a child that multiplies matrices in a loop with torch's default thread count, as another
numeric program on the same laptop would. Measured in this process, for each setting: the shipped generator's
default decoding of 64 wikipedia_dev sentences' embeddings, one at a time (batch 1, the first ``--sentences``) and
all at once (batch 64), without re-encoding its outputs, with the torch runtime and with the numpy runtime
(whose products run in NumPy's BLAS library); and the encoder on the same 64 sentences (precision ``auto``: bf16
on a CPU with bf16 instructions). The thread count is set as ``--threads`` sets it, in torch and in the BLAS
library alike (:func:`lightweight_decoder.threads.set_threads`). Each measurement is repeated ``--rounds`` times
and the best counts. Writes bench/results/threads.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from _common import best_time, command, dev_sentences, machine, write_result

_BUSY = "import torch\nx = torch.randn(768, 768)\nwhile True:\n    x = torch.tanh(x @ x)\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=20, help="sentences decoded one at a time per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", help="thread counts to compare (default: 1 and one per core)")
    args = parser.parse_args()

    import torch

    from lightweight_decoder.decoders.generative import GenerativeDecoder
    from lightweight_decoder.loading import load_decoder
    from lightweight_decoder.paths import default_paths
    from lightweight_decoder.quality import markdown_table
    from lightweight_decoder.threads import set_threads

    default_threads = torch.get_num_threads()
    thread_counts = args.threads or sorted({1, default_threads})
    texts = dev_sentences("wikipedia_dev.txt", n=64)
    generator, encoder = load_decoder("generative")
    generator.encoder = None  # generation alone: no re-encoding of its outputs
    vectors = encoder.encode(texts)
    numpy_generator = GenerativeDecoder.load(default_paths()["generative"], runtime="numpy")
    generator.decode(vectors[:2])  # warm-up
    numpy_generator.decode(vectors[:2])
    rows = []
    for busy in (False, True):
        child = subprocess.Popen([sys.executable, "-c", _BUSY]) if busy else None
        try:
            if child is not None:
                time.sleep(3)  # the child imports torch and starts spinning
            for threads in thread_counts:
                set_threads(threads)
                row = {"threads": threads, "beside": "a busy process" if busy else "nothing"}
                for runtime, decoder in (("generate", generator), ("numpy", numpy_generator)):
                    one = best_time(lambda: [decoder.decode(v) for v in vectors[:args.sentences]], args.rounds)
                    batch = best_time(lambda: decoder.decode(vectors), args.rounds)
                    row[f"{runtime}_batch1_ms"] = round(one / args.sentences * 1000, 1)
                    row[f"{runtime}_batch64_per_s"] = round(len(vectors) / batch, 1)
                enc = best_time(lambda: encoder.encode(texts, precision="auto"), args.rounds)
                row["encode_batch64_per_s"] = round(len(texts) / enc, 1)
                rows.append(row)
                print(row, flush=True)
        finally:
            if child is not None:
                child.kill()
                child.wait()
    set_threads(default_threads)
    columns = ["beside", "threads", "generate_batch1_ms", "generate_batch64_per_s", "numpy_batch1_ms", "numpy_batch64_per_s",
               "encode_batch64_per_s"]
    print(markdown_table(rows, columns))
    path = write_result("threads", {"command": command(), "machine": machine(), "sentences": args.sentences,
                                    "rounds": args.rounds, "default_threads": default_threads,
                                    "busy_process": _BUSY, "columns": columns, "results": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
